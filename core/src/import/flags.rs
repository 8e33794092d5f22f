//! open(2) flags as names: Tracee's `--parse-arguments` output
//! (`O_RDONLY|O_LARGEFILE`) and back.
//!
//! Values are the x86_64 ones (`include/uapi/asm-generic/fcntl.h` as x86_64
//! uses it), whatever the values Tracee's own table holds: Tracee names
//! `O_PATH` after bit `040000000`, which is not `O_PATH` on x86_64
//! (`010000000`), and `O_TMPFILE` after `__O_TMPFILE` alone. The name is
//! what the text says, so the name decides the value here.

/// Every name [`parse_open_flags`] accepts, with its x86_64 value.
/// Aliases (`O_NDELAY`, `O_ASYNC`, `O_RSYNC`) and the kernel's internal
/// names (`__O_SYNC`, `__O_TMPFILE`) are included; `FASYNC` is spelled as
/// Tracee spells it.
pub const OPEN_FLAGS: &[(&str, u32)] = &[
    ("O_RDONLY", 0),
    ("O_WRONLY", 0o1),
    ("O_RDWR", 0o2),
    ("O_ACCMODE", 0o3),
    ("O_CREAT", 0o100),
    ("O_EXCL", 0o200),
    ("O_NOCTTY", 0o400),
    ("O_TRUNC", 0o1000),
    ("O_APPEND", 0o2000),
    ("O_NONBLOCK", 0o4000),
    ("O_NDELAY", 0o4000),
    ("O_DSYNC", 0o10000),
    ("FASYNC", 0o20000),
    ("O_ASYNC", 0o20000),
    ("O_DIRECT", 0o40000),
    ("O_LARGEFILE", 0o100000),
    ("O_DIRECTORY", 0o200000),
    ("O_NOFOLLOW", 0o400000),
    ("O_NOATIME", 0o1000000),
    ("O_CLOEXEC", 0o2000000),
    ("__O_SYNC", 0o4000000),
    ("O_SYNC", 0o4010000),
    ("O_RSYNC", 0o4010000),
    ("O_PATH", 0o10000000),
    ("__O_TMPFILE", 0o20000000),
    ("O_TMPFILE", 0o20200000),
];

/// The value of one flag name, if it is known.
pub fn open_flag_value(name: &str) -> Option<u32> {
    OPEN_FLAGS.iter().find(|(n, _)| *n == name).map(|(_, v)| *v)
}

/// Parses an open(2) flags string such as `O_RDONLY|O_LARGEFILE` into the
/// flags word (as the capture's signed 32-bit `flags` holds it).
///
/// Tokens are separated by `|` (spaces around them are ignored). A token is
/// a name from [`OPEN_FLAGS`] or an integer literal (decimal, or hex with
/// `0x`), which is how [`format_open_flags`] writes bits without a name. The
/// empty string is 0: Tracee writes nothing at all for flags 0 (`O_RDONLY`
/// with no other bit). An unknown name is an error naming it.
pub fn parse_open_flags(text: &str) -> Result<i32, String> {
    let mut value: u32 = 0;
    if text.trim().is_empty() {
        return Ok(0);
    }
    for token in text.split('|') {
        let token = token.trim();
        let bits = if let Some(v) = open_flag_value(token) {
            v
        } else if let Some(hex) = token.strip_prefix("0x").or_else(|| token.strip_prefix("0X")) {
            u32::from_str_radix(hex, 16).map_err(|_| format!("flags {text:?}: {token:?} is not a number"))?
        } else if !token.is_empty() && token.bytes().all(|b| b.is_ascii_digit()) {
            token.parse::<u32>().map_err(|_| format!("flags {text:?}: {token} does not fit in 32 bits"))?
        } else if token.is_empty() {
            return Err(format!("flags {text:?}: empty name between `|`"));
        } else {
            return Err(format!("flags {text:?}: unknown open flag `{token}`"));
        };
        value |= bits;
    }
    Ok(value as i32)
}

/// Names in the order [`format_open_flags`] writes them (after the access mode).
const ORDER: &[(&str, u32)] = &[
    ("O_CREAT", 0o100),
    ("O_EXCL", 0o200),
    ("O_NOCTTY", 0o400),
    ("O_TRUNC", 0o1000),
    ("O_APPEND", 0o2000),
    ("O_NONBLOCK", 0o4000),
    ("O_SYNC", 0o4010000),
    ("O_DSYNC", 0o10000),
    ("__O_SYNC", 0o4000000),
    ("FASYNC", 0o20000),
    ("O_DIRECT", 0o40000),
    ("O_LARGEFILE", 0o100000),
    ("O_DIRECTORY", 0o200000),
    ("O_NOFOLLOW", 0o400000),
    ("O_NOATIME", 0o1000000),
    ("O_CLOEXEC", 0o2000000),
    ("O_PATH", 0o10000000),
    ("__O_TMPFILE", 0o20000000),
];

/// Writes a flags word the way Tracee's `--parse-arguments` does
/// (`O_RDONLY|O_CLOEXEC|O_LARGEFILE`: the access mode first, then the other
/// bits), with two differences that make it lossless: access mode 3 is
/// written `O_ACCMODE` (Tracee writes `O_WRONLY`), and bits without a name
/// (e.g. the kernel-internal `__FMODE_EXEC`, `0x20`) are appended as one hex
/// literal instead of being dropped. [`parse_open_flags`] reads it back exactly.
pub fn format_open_flags(flags: i32) -> String {
    let mut rest = flags as u32;
    let mut out = String::from(crate::display::AccessMode::of(flags).constant().unwrap_or("O_ACCMODE"));
    rest &= !3;
    for (name, bits) in ORDER {
        if rest & bits == *bits {
            out.push('|');
            out.push_str(name);
            rest &= !bits;
        }
    }
    if rest != 0 {
        out.push_str(&format!("|0x{rest:x}"));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_numbers_parse() {
        assert_eq!(parse_open_flags("O_RDONLY|O_LARGEFILE"), Ok(32768));
        assert_eq!(parse_open_flags("O_RDONLY|O_CLOEXEC|O_LARGEFILE"), Ok(557056));
        assert_eq!(parse_open_flags("O_WRONLY|O_CREAT|O_TRUNC|O_LARGEFILE"), Ok(0o101101));
        assert_eq!(parse_open_flags(" O_RDWR | O_APPEND "), Ok(0o2002));
        assert_eq!(parse_open_flags(""), Ok(0));
        assert_eq!(parse_open_flags("O_RDONLY"), Ok(0));
        assert_eq!(parse_open_flags("O_RDONLY|0x20"), Ok(0x20));
        assert_eq!(parse_open_flags("32768"), Ok(32768));
        assert_eq!(parse_open_flags("O_PATH"), Ok(0o10000000));
        assert_eq!(parse_open_flags("O_TMPFILE|O_RDWR"), Ok(0o20200002));
        assert_eq!(parse_open_flags("O_SYNC"), Ok(0o4010000));
        assert_eq!(parse_open_flags("FASYNC"), Ok(0o20000));
        // A high bit keeps its bit pattern in the signed column.
        assert_eq!(parse_open_flags("0x80000000"), Ok(i32::MIN));
    }

    #[test]
    fn unknown_names_are_errors() {
        let e = parse_open_flags("O_RDONLY|O_BOGUS").unwrap_err();
        assert!(e.contains("unknown open flag `O_BOGUS`"), "{e}");
        assert!(parse_open_flags("O_RDONLY||O_CLOEXEC").is_err());
        assert!(parse_open_flags("o_rdonly").is_err());
        assert!(parse_open_flags("0xZZ").is_err());
        assert!(parse_open_flags("99999999999").is_err());
    }

    #[test]
    fn formatting_round_trips_every_bit() {
        assert_eq!(format_open_flags(32768), "O_RDONLY|O_LARGEFILE");
        assert_eq!(format_open_flags(557056), "O_RDONLY|O_LARGEFILE|O_CLOEXEC");
        assert_eq!(format_open_flags(32771), "O_ACCMODE|O_LARGEFILE");
        assert_eq!(format_open_flags(0), "O_RDONLY");
        assert_eq!(format_open_flags(0o4010001), "O_WRONLY|O_SYNC");
        assert_eq!(format_open_flags(0o10001), "O_WRONLY|O_DSYNC");
        assert_eq!(format_open_flags(0x20 | 0o100000), "O_RDONLY|O_LARGEFILE|0x20");
        for v in [0, 1, 2, 3, 32768, 557056, 624640, 33793, 0x20, -1, i32::MIN, 0o20200002, 0o4000000] {
            assert_eq!(parse_open_flags(&format_open_flags(v)), Ok(v), "{v:#x}");
        }
    }
}
