//! How raw capture events look to each rule's home system.
//!
//! * [`ecs`]: the Elastic Common Schema documents Defend for Containers would
//!   have produced, queried by EQL rules.
//! * [`tracee`]: the Tracee events (`security_file_open`, `sched_process_exec`)
//!   a Tracee signature would have received.

pub mod ecs;
pub mod tracee;
