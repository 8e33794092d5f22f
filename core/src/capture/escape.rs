//! Lossless text form of byte strings that are not valid UTF-8.
//!
//! Kernel paths and argv are bytes. The capture stores them as UTF-8 strings:
//! valid UTF-8 other than `\` is kept as is, a backslash is written `\\`, and
//! every byte that is not part of a valid UTF-8 sequence is written `\xNN`
//! (two lowercase hex digits). The mapping is injective, so
//! [`unescape_to_bytes`] recovers the original bytes exactly.

use std::borrow::Cow;

/// Encodes raw bytes as a capture string (see the module docs).
pub fn escape_bytes(bytes: &[u8]) -> Cow<'_, str> {
    if let Ok(s) = std::str::from_utf8(bytes) {
        if !s.contains('\\') {
            return Cow::Borrowed(s);
        }
    }
    let mut out = String::with_capacity(bytes.len() + 8);
    for chunk in bytes.utf8_chunks() {
        for ch in chunk.valid().chars() {
            if ch == '\\' {
                out.push_str("\\\\");
            } else {
                out.push(ch);
            }
        }
        for b in chunk.invalid() {
            out.push_str(&format!("\\x{b:02x}"));
        }
    }
    Cow::Owned(out)
}

/// Decodes a capture string back into the bytes the kernel saw.
///
/// Sequences other than `\\` and `\xNN` are kept literally, so a string that
/// was never escaped decodes to its own bytes.
pub fn unescape_to_bytes(s: &str) -> Vec<u8> {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            if b[i + 1] == b'\\' {
                out.push(b'\\');
                i += 2;
                continue;
            }
            if b[i + 1] == b'x' && i + 4 <= b.len() {
                let hex = &b[i + 2..i + 4];
                if let Some(v) = hex_byte(hex) {
                    out.push(v);
                    i += 4;
                    continue;
                }
            }
        }
        out.push(b[i]);
        i += 1;
    }
    out
}

fn hex_byte(h: &[u8]) -> Option<u8> {
    let d = |c: u8| (c as char).to_digit(16);
    Some((d(h[0])? * 16 + d(h[1])?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn valid_utf8_without_backslash_is_borrowed() {
        assert!(matches!(escape_bytes(b"/run/secrets/token"), Cow::Borrowed(_)));
    }

    #[test]
    fn round_trips_invalid_bytes_and_backslashes() {
        let cases: &[&[u8]] =
            &[b"/tmp/\xff\xfe", b"a\\b", b"\\x41", b"caf\xc3\xa9", b"\xc3", b"", b"\\", b"end\\", b"\x80\\x80"];
        for &c in cases {
            let e = escape_bytes(c);
            assert_eq!(unescape_to_bytes(&e), c, "via {e:?}");
        }
        assert_eq!(escape_bytes(b"/tmp/\xff"), "/tmp/\\xff");
        assert_eq!(escape_bytes(b"a\\b"), "a\\\\b");
        // A literal backslash-x stays distinguishable from an escaped byte.
        assert_ne!(escape_bytes(b"\\x41"), escape_bytes(b"A"));
    }
}
