//! How values are named and shown to people, in one place for the CLI, the
//! Python module and the rules' explanations: event times, the access mode of
//! an open, and short container ids.

use chrono::DateTime;

/// Nanoseconds since the epoch for humans, in UTC, to the millisecond:
/// `2026-11-20 10:15:03.120`.
pub fn human_time(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).format("%Y-%m-%d %H:%M:%S%.3f").to_string()
}

/// Nanoseconds since the epoch as RFC 3339 in UTC with all nine fractional
/// digits, for machines: `2026-11-20T10:15:03.120000000Z`.
pub fn rfc3339(ns: i64) -> String {
    DateTime::from_timestamp_nanos(ns).format("%Y-%m-%dT%H:%M:%S%.9fZ").to_string()
}

/// Characters of a container id shown where space is short (as `docker ps` does).
pub const SHORT_CONTAINER_ID: usize = 12;

/// The first [`SHORT_CONTAINER_ID`] characters of a container id.
pub fn short_container_id(id: &str) -> String {
    id.chars().take(SHORT_CONTAINER_ID).collect()
}

/// The access mode of an open: the two low bits of its flags (`O_ACCMODE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum AccessMode {
    /// `O_RDONLY` (0).
    ReadOnly,
    /// `O_WRONLY` (1).
    WriteOnly,
    /// `O_RDWR` (2).
    ReadWrite,
    /// Access mode 3, which Linux reserves (no read, no write access; `ioctl`-only opens).
    Three,
}

impl AccessMode {
    /// The access mode of open flags.
    pub fn of(flags: i32) -> Self {
        match flags & 3 {
            0 => AccessMode::ReadOnly,
            1 => AccessMode::WriteOnly,
            2 => AccessMode::ReadWrite,
            _ => AccessMode::Three,
        }
    }

    /// Whether the open may read: `O_RDONLY` or `O_RDWR` (Tracee's `IsFileRead`).
    pub fn reads(self) -> bool {
        matches!(self, AccessMode::ReadOnly | AccessMode::ReadWrite)
    }

    /// Whether the open may write: `O_WRONLY` or `O_RDWR` (Tracee's `IsFileWrite`;
    /// Elastic Defend's `event.type: change`).
    pub fn writes(self) -> bool {
        matches!(self, AccessMode::WriteOnly | AccessMode::ReadWrite)
    }

    /// The word tables show: `read`, `write`, `read-write` or `mode 3`.
    pub fn word(self) -> &'static str {
        match self {
            AccessMode::ReadOnly => "read",
            AccessMode::WriteOnly => "write",
            AccessMode::ReadWrite => "read-write",
            AccessMode::Three => "mode 3",
        }
    }

    /// The C constant: `O_RDONLY`, `O_WRONLY` or `O_RDWR`; none for mode 3.
    pub fn constant(self) -> Option<&'static str> {
        match self {
            AccessMode::ReadOnly => Some("O_RDONLY"),
            AccessMode::WriteOnly => Some("O_WRONLY"),
            AccessMode::ReadWrite => Some("O_RDWR"),
            AccessMode::Three => None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_utc_calendar_dates() {
        // 1_700_000_000 s is 2023-11-14 22:13:20 UTC (date -u -d @1700000000).
        let ns = 1_700_000_000_123_456_789;
        assert_eq!(human_time(ns), "2023-11-14 22:13:20.123");
        assert_eq!(rfc3339(ns), "2023-11-14T22:13:20.123456789Z");
        // One nanosecond before the epoch is the last instant of 1969.
        assert_eq!(rfc3339(-1), "1969-12-31T23:59:59.999999999Z");
        // 2024-02-29 (a leap day) at midnight: 19782 days after the epoch.
        assert_eq!(human_time(19_782 * 86_400 * 1_000_000_000), "2024-02-29 00:00:00.000");
    }

    #[test]
    fn access_mode_follows_o_accmode() {
        // O_WRONLY|O_CREAT|O_TRUNC = 0o1101: access mode 1.
        assert_eq!(AccessMode::of(0o1101), AccessMode::WriteOnly);
        assert_eq!(AccessMode::of(0o100002), AccessMode::ReadWrite);
        assert!(AccessMode::of(0).reads() && !AccessMode::of(0).writes());
        assert!(AccessMode::of(2).reads() && AccessMode::of(2).writes());
        assert!(!AccessMode::of(3).reads() && !AccessMode::of(3).writes());
        assert_eq!(AccessMode::of(-1), AccessMode::Three);
    }

    #[test]
    fn container_ids_are_cut_to_twelve_characters() {
        assert_eq!(short_container_id("0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short_container_id("abc"), "abc");
    }
}
