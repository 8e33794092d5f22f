//! Reading JSON lines from a plain or gzip-compressed stream, with a bound on
//! the length of one line so that memory stays bounded on any input.

use std::io::{BufRead, BufReader, Chain, Cursor, Read};

use flate2::read::MultiGzDecoder;

const BUFFER: usize = 1 << 20;

/// A line-oriented reader over plain or gzip-compressed input (detected by
/// the gzip magic bytes `1f 8b`, not by the file name).
///
/// A line that lies whole in the read buffer is handed out in place, without
/// a copy; only a line that straddles two reads is assembled in a scratch
/// buffer.
pub(crate) struct LineReader<'r> {
    inner: Box<dyn BufRead + 'r>,
    gzip: bool,
    max_line: usize,
    bytes: u64,
    /// Bytes of the buffer handed out by the last call, consumed by the next.
    pending: usize,
}

/// One line read by [`LineReader::next_line`].
pub(crate) enum Line<'b> {
    /// The line, without its `\n` (and without a `\r` before it).
    Text(&'b [u8]),
    /// The line was longer than the limit; it was skipped. Holds its length in bytes (without the `\n`).
    TooLong(u64),
}

impl<'r> LineReader<'r> {
    /// Wraps `reader`, looking at its first two bytes to detect gzip.
    pub(crate) fn new(mut reader: impl Read + 'r, max_line: usize) -> std::io::Result<Self> {
        let mut head = [0u8; 2];
        let mut n = 0;
        while n < 2 {
            match reader.read(&mut head[n..]) {
                Ok(0) => break,
                Ok(k) => n += k,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        let replay: Chain<Cursor<Vec<u8>>, _> = Cursor::new(head[..n].to_vec()).chain(reader);
        let gzip = n == 2 && head == [0x1f, 0x8b];
        let inner: Box<dyn BufRead + 'r> = if gzip {
            Box::new(BufReader::with_capacity(BUFFER, MultiGzDecoder::new(BufReader::with_capacity(BUFFER, replay))))
        } else {
            Box::new(BufReader::with_capacity(BUFFER, replay))
        };
        Ok(LineReader { inner, gzip, max_line: max_line.max(1), bytes: 0, pending: 0 })
    }

    /// Whether the input was gzip-compressed.
    pub(crate) fn gzip(&self) -> bool {
        self.gzip
    }

    /// Bytes of (decompressed) text read so far, newlines included.
    pub(crate) fn bytes(&self) -> u64 {
        self.bytes
    }

    /// The next line, in place or assembled in `scratch`. `None` at the end of the input.
    pub(crate) fn next_line<'b>(&'b mut self, scratch: &'b mut Vec<u8>) -> std::io::Result<Option<Line<'b>>> {
        if self.pending > 0 {
            self.inner.consume(self.pending);
            self.pending = 0;
        }
        let (len, newline) = {
            let buf = self.inner.fill_buf()?;
            (buf.len(), memchr::memchr(b'\n', buf))
        };
        if len == 0 {
            return Ok(None);
        }
        if let Some(i) = newline.filter(|&i| i <= self.max_line) {
            // The common case: the whole line is in the buffer.
            self.pending = i + 1;
            self.bytes += i as u64 + 1;
            let buf = self.inner.fill_buf()?;
            let line = &buf[..i];
            return Ok(Some(Line::Text(line.strip_suffix(b"\r").unwrap_or(line))));
        }
        self.assemble(scratch)
    }

    /// A line that is not whole in the buffer: copied into `scratch`, up to the limit.
    fn assemble<'b>(&'b mut self, buf: &'b mut Vec<u8>) -> std::io::Result<Option<Line<'b>>> {
        buf.clear();
        let limit = self.max_line as u64 + 1;
        let n = (&mut self.inner).take(limit).read_until(b'\n', buf)?;
        if n == 0 {
            return Ok(None);
        }
        self.bytes += n as u64;
        if buf.last() == Some(&b'\n') || (n as u64) < limit {
            // A complete line, or the last one without a newline.
            if buf.last() == Some(&b'\n') {
                buf.pop();
            }
            if buf.last() == Some(&b'\r') {
                buf.pop();
            }
            return Ok(Some(Line::Text(buf)));
        }
        // Too long: skip to the end of the line without keeping it.
        let mut total = n as u64;
        loop {
            let chunk = self.inner.fill_buf()?;
            if chunk.is_empty() {
                break;
            }
            match memchr::memchr(b'\n', chunk) {
                Some(i) => {
                    self.inner.consume(i + 1);
                    total += i as u64;
                    self.bytes += 1;
                    break;
                }
                None => {
                    let len = chunk.len();
                    self.inner.consume(len);
                    total += len as u64;
                }
            }
        }
        self.bytes += total - n as u64;
        buf.clear();
        Ok(Some(Line::TooLong(total)))
    }
}

#[cfg(test)]
mod tests {
    use std::io::Write;

    use super::*;

    fn lines(input: &[u8], max: usize) -> Vec<Result<String, u64>> {
        let mut r = LineReader::new(input, max).unwrap();
        let mut buf = Vec::new();
        let mut out = Vec::new();
        while let Some(l) = r.next_line(&mut buf).unwrap() {
            out.push(match l {
                Line::Text(t) => Ok(String::from_utf8(t.to_vec()).unwrap()),
                Line::TooLong(n) => Err(n),
            });
        }
        out
    }

    #[test]
    fn splits_lines_and_strips_crlf() {
        assert_eq!(lines(b"a\nb\r\n\nc", 100), vec![Ok("a".into()), Ok("b".into()), Ok("".into()), Ok("c".into())]);
        assert_eq!(lines(b"", 100), Vec::<Result<String, u64>>::new());
        assert_eq!(lines(b"x", 100), vec![Ok("x".into())]);
    }

    #[test]
    fn long_lines_are_skipped_whole() {
        assert_eq!(lines(b"abcdef\nxy\nabcd", 4), vec![Err(6), Ok("xy".into()), Ok("abcd".into())]);
        assert_eq!(lines(b"abcde", 4), vec![Err(5)]);
        assert_eq!(lines(b"abcd\n", 4), vec![Ok("abcd".into())]);
    }

    #[test]
    fn gzip_is_detected_by_magic_bytes_and_members_concatenate() {
        let gz = |s: &[u8]| {
            let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
            e.write_all(s).unwrap();
            e.finish().unwrap()
        };
        let mut both = gz(b"one\ntwo\n");
        both.extend(gz(b"three\n"));
        let mut r = LineReader::new(&both[..], 100).unwrap();
        assert!(r.gzip());
        let mut buf = Vec::new();
        let mut got = Vec::new();
        while let Some(Line::Text(t)) = r.next_line(&mut buf).unwrap() {
            got.push(String::from_utf8(t.to_vec()).unwrap());
        }
        assert_eq!(got, ["one", "two", "three"]);
        assert_eq!(r.bytes(), 14);
        // One byte of input is not gzip.
        assert!(!LineReader::new(&[0x1fu8][..], 10).unwrap().gzip());
    }

    #[test]
    fn corrupt_gzip_is_an_io_error_not_a_panic() {
        let mut r = LineReader::new(&[0x1f, 0x8b, 0, 1, 2, 3, 4][..], 100).unwrap();
        let mut buf = Vec::new();
        assert!(r.next_line(&mut buf).is_err());
    }
}
