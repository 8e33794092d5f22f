//! Decoding the raw ring buffer records of `src/bpf/recorder.h`.
//!
//! A record is the skeleton's [`types::record`] header followed by up to seven
//! byte strings (path, req, exe, args, tty, cgroup, cwd) whose lengths are in the header.
//! Decoding never trusts the kernel blindly: a record shorter than its header
//! says is an error, not a panic.

use crate::skel::types;

pub use types::record as RawHeader;

// SAFETY: `types::record` is a `#[repr(C)]` struct of integers, byte arrays
// and `#[repr(transparent)]` u32 newtypes: every bit pattern is a valid value.
unsafe impl plain::Plain for types::record {}

/// Record kinds (`enum record_kind`).
pub type Kind = types::record_kind;
/// Syscalls (`enum record_syscall`).
pub type Syscall = types::record_syscall;
/// Record flag bits (`enum record_flags`).
pub type Flags = types::record_flags;

/// Size of the fixed header.
pub const HEADER_LEN: usize = std::mem::size_of::<types::record>();

/// A record that cannot be decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DecodeError(pub String);

impl std::fmt::Display for DecodeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for DecodeError {}

/// One decoded record, borrowing the ring buffer's bytes.
#[derive(Debug, Clone)]
pub struct Record<'a> {
    /// The fixed header.
    pub hdr: RawHeader,
    /// Resolved path of the opened or executed file (`RF_PATH`).
    pub path: Option<&'a [u8]>,
    /// The path string the caller passed (`RF_REQ`).
    pub req: Option<&'a [u8]>,
    /// The process's executable path (`RF_EXE`).
    pub exe: Option<&'a [u8]>,
    /// argv, NUL-separated (`RF_ARGS`).
    pub args: Option<&'a [u8]>,
    /// Controlling terminal name as the kernel has it, e.g. `pts0` (`RF_TTY`).
    pub tty: Option<&'a [u8]>,
    /// The task's cgroup v2 directory names, innermost first, each followed
    /// by a NUL (`RF_CGROUP`; sent with the first record of each cgroup id).
    pub cgroup: Option<&'a [u8]>,
    /// The thread's working directory, resolved like `path` (`RF_CWD`; sent
    /// when it changed for this thread since it was last sent).
    pub cwd: Option<&'a [u8]>,
}

impl<'a> Record<'a> {
    /// Decodes one ring buffer record.
    pub fn parse(data: &'a [u8]) -> Result<Record<'a>, DecodeError> {
        if data.len() < HEADER_LEN {
            return Err(DecodeError(format!(
                "record of {} bytes is shorter than its {HEADER_LEN}-byte header",
                data.len()
            )));
        }
        let mut hdr = RawHeader::default();
        // copy_from_bytes: ring buffer data is 8-byte aligned, but copying
        // makes no assumption about it.
        plain::copy_from_bytes(&mut hdr, &data[..HEADER_LEN])
            .map_err(|e| DecodeError(format!("record header: {e:?}")))?;
        let mut rest = &data[HEADER_LEN..];
        let mut take = |present: bool, len: u16, what: &str| -> Result<Option<&'a [u8]>, DecodeError> {
            let len = len as usize;
            if !present {
                return Ok(None);
            }
            if len > rest.len() {
                return Err(DecodeError(format!(
                    "record says its {what} has {len} bytes but only {} remain",
                    rest.len()
                )));
            }
            let (head, tail) = rest.split_at(len);
            rest = tail;
            Ok(Some(head))
        };
        let f = hdr.rflags;
        let has = |bit: Flags| f & bit.0 != 0;
        let path = take(has(Flags::RF_PATH), hdr.path_len, "path")?;
        let req = take(has(Flags::RF_REQ), hdr.req_len, "requested path")?;
        let exe = take(has(Flags::RF_EXE), hdr.exe_len, "exe")?;
        let args = take(has(Flags::RF_ARGS), hdr.args_len, "argv")?;
        let tty = take(has(Flags::RF_TTY), hdr.tty_len, "tty")?;
        let cgroup = take(has(Flags::RF_CGROUP), hdr.cgroup_len, "cgroup")?;
        let cwd = take(has(Flags::RF_CWD), hdr.cwd_len, "working directory")?;
        Ok(Record { hdr, path, req, exe, args, tty, cgroup, cwd })
    }

    /// The cgroup's path below the cgroup2 root (`kubepods.slice/.../x.scope`)
    /// from the `cgroup` segment, and whether the kernel cut it at
    /// `CGROUP_MAX_DEPTH` levels (then it holds the innermost levels only).
    pub fn cgroup_path(&self) -> Option<(String, bool)> {
        let names = self.cgroup?;
        let names = names.strip_suffix(b"\0").unwrap_or(names);
        let mut parts: Vec<_> = if names.is_empty() { Vec::new() } else { names.split(|&b| b == 0).collect() };
        parts.reverse();
        let path = parts.iter().map(|p| String::from_utf8_lossy(p)).collect::<Vec<_>>().join("/");
        Some((path, self.has(Flags::RF_CGROUP_TRUNCATED)))
    }

    /// Whether a flag bit is set.
    pub fn has(&self, bit: Flags) -> bool {
        self.hdr.rflags & bit.0 != 0
    }

    /// The task's comm, up to its NUL.
    pub fn comm(&self) -> &[u8] {
        let bytes: &[u8] = bytemuck_i8(&self.hdr.comm);
        let end = bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len());
        &bytes[..end]
    }
}

fn bytemuck_i8(a: &[i8; 16]) -> &[u8] {
    // SAFETY: i8 and u8 have the same size and alignment; every bit pattern is valid for both.
    unsafe { std::slice::from_raw_parts(a.as_ptr().cast::<u8>(), a.len()) }
}

/// Encodes a header and its strings as the kernel side does (for tests and
/// benchmarks; `parts` must follow the header's flags and lengths).
pub fn encode(hdr: &RawHeader, parts: &[&[u8]]) -> Vec<u8> {
    // SAFETY: RawHeader is plain old data (see the Plain impl above); reading its bytes is sound.
    let head = unsafe { std::slice::from_raw_parts((hdr as *const RawHeader).cast::<u8>(), HEADER_LEN) };
    let mut v = head.to_vec();
    for p in parts {
        v.extend_from_slice(p);
    }
    v
}

#[cfg(test)]
mod tests {
    use super::*;

    fn comm(s: &str) -> [i8; 16] {
        let mut c = [0i8; 16];
        for (i, b) in s.bytes().take(15).enumerate() {
            c[i] = b as i8;
        }
        c
    }

    #[test]
    fn decodes_segments_in_order() {
        let hdr = RawHeader {
            kind: Kind::REC_OPEN_EXIT,
            rflags: (Flags::RF_PATH.0 | Flags::RF_EXE.0 | Flags::RF_TTY.0),
            path_len: 4,
            exe_len: 12,
            tty_len: 4,
            comm: comm("cat"),
            ..Default::default()
        };
        let data = encode(&hdr, &[b"/etc", b"/usr/bin/cat", b"pts3"]);
        let r = Record::parse(&data).unwrap();
        assert_eq!(r.path, Some(&b"/etc"[..]));
        assert_eq!(r.req, None);
        assert_eq!(r.exe, Some(&b"/usr/bin/cat"[..]));
        assert_eq!(r.args, None);
        assert_eq!(r.tty, Some(&b"pts3"[..]));
        assert_eq!(r.comm(), b"cat");
    }

    #[test]
    fn short_records_are_errors_not_panics() {
        assert!(Record::parse(&[0u8; 8]).unwrap_err().0.contains("shorter than"));
        let hdr = RawHeader { rflags: Flags::RF_PATH.0, path_len: 100, ..Default::default() };
        let data = encode(&hdr, &[b"/x"]);
        assert!(Record::parse(&data).unwrap_err().0.contains("path has 100 bytes but only 2 remain"));
    }

    #[test]
    fn cgroup_names_come_innermost_first() {
        let names = b"cri-containerd-ab.scope\0kubepods-pod1.slice\0kubepods.slice\0";
        let hdr = RawHeader {
            rflags: Flags::RF_TTY.0 | Flags::RF_CGROUP.0,
            tty_len: 4,
            cgroup_len: names.len() as u16,
            ..Default::default()
        };
        let data = encode(&hdr, &[b"pts1", names]);
        let r = Record::parse(&data).unwrap();
        assert_eq!(r.tty, Some(&b"pts1"[..]));
        assert_eq!(
            r.cgroup_path(),
            Some(("kubepods.slice/kubepods-pod1.slice/cri-containerd-ab.scope".to_string(), false))
        );
        // The root cgroup: present, empty.
        let root = RawHeader { rflags: Flags::RF_CGROUP.0, ..Default::default() };
        assert_eq!(Record::parse(&encode(&root, &[])).unwrap().cgroup_path(), Some((String::new(), false)));
        // Cut by the kernel: flagged.
        let deep = RawHeader {
            rflags: Flags::RF_CGROUP.0 | Flags::RF_CGROUP_TRUNCATED.0,
            cgroup_len: 2,
            ..Default::default()
        };
        assert_eq!(Record::parse(&encode(&deep, &[b"x\0"])).unwrap().cgroup_path(), Some(("x".to_string(), true)));
        // None without the flag.
        assert_eq!(Record::parse(&encode(&RawHeader::default(), &[])).unwrap().cgroup_path(), None);
    }

    #[test]
    fn the_cwd_comes_last() {
        let hdr = RawHeader {
            rflags: Flags::RF_PATH.0 | Flags::RF_CGROUP.0 | Flags::RF_CWD.0,
            path_len: 2,
            cgroup_len: 2,
            cwd_len: 5,
            ..Default::default()
        };
        let data = encode(&hdr, &[b"/x", b"c\0", b"/home"]);
        let r = Record::parse(&data).unwrap();
        assert_eq!((r.path, r.cwd), (Some(&b"/x"[..]), Some(&b"/home"[..])));
        assert_eq!(r.cgroup_path(), Some(("c".to_string(), false)));
        let short = RawHeader { rflags: Flags::RF_CWD.0, cwd_len: 9, ..Default::default() };
        assert!(Record::parse(&encode(&short, &[b"/"])).unwrap_err().0.contains("working directory has 9 bytes"));
    }

    #[test]
    fn a_full_comm_has_no_nul() {
        let hdr = RawHeader { comm: [b'a' as i8; 16], ..Default::default() };
        let data = encode(&hdr, &[]);
        assert_eq!(Record::parse(&data).unwrap().comm().len(), 16);
    }
}
