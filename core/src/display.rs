//! How values are named and shown to people, in one place for the CLI, the
//! Python module and the rules' explanations: event times, the access mode of
//! an open, short container ids, and the escaping of capture strings in
//! HTML and XML output.

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

/// Escapes text for HTML and XML element content and quoted attribute values:
/// `&`, `<`, `>`, `"` and `'` become references (`&#39;` for the apostrophe,
/// which both HTML and XML read), and C0 control characters other than tab,
/// line feed and carriage return (which XML 1.0 cannot carry literally) become
/// numeric character references. Every string from a capture goes through it
/// before it reaches markup: an attacker controls argv and paths.
pub fn escape_markup(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c if (c as u32) < 0x20 && !matches!(c, '\n' | '\t' | '\r') => {
                let _ = write!(out, "&#x{:x};", c as u32);
            }
            c => out.push(c),
        }
    }
    out
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
    fn markup_and_control_characters_are_escaped() {
        // XML 1.0 section 2.4 (markup characters), 4.1 (character references) and 2.2
        // (the Char production: no C0 controls other than tab, line feed and carriage return);
        // HTML reads the same references.
        assert_eq!(escape_markup("a<b & \"c\" 'd'>"), "a&lt;b &amp; &quot;c&quot; &#39;d&#39;&gt;");
        assert_eq!(escape_markup("x\u{1}y\tz\n"), "x&#x1;y\tz\n");
        assert_eq!(escape_markup("<script>alert(1)</script>"), "&lt;script&gt;alert(1)&lt;/script&gt;");
    }

    #[test]
    fn container_ids_are_cut_to_twelve_characters() {
        assert_eq!(short_container_id("0123456789abcdef0123"), "0123456789ab");
        assert_eq!(short_container_id("abc"), "abc");
    }
}
