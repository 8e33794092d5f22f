//! Checks of a Parquet file's footer and of its column chunks' page headers
//! before the `parquet` crate decodes them ([`check_footer`], [`check_chunk`]).
//!
//! The `parquet` crate sizes a dictionary from the count its page header
//! declares: for a fixed-width column it allocates and fills
//! `num_values × width` bytes before reading a single value. A 10 KB capture
//! whose header says 2³¹ values made it take 8 to 16 GiB (found by fuzzing).
//! A dictionary page is PLAIN-encoded, so its values need at least
//! `num_values × width` bytes (4 per value for byte arrays, their lengths; a
//! bit for booleans): [`check_chunk`] walks the chunk's page headers (read
//! a window at a time with `pread`) and refuses a dictionary page declaring
//! more values than its own size can hold. Everything else about a page is left to
//! the decoder, which reports it as a decoding error.
//!
//! The page header is Thrift's compact protocol (the Parquet format's
//! `PageHeader`); only the fields checked here are read, the others skipped.
//! The footer (`FileMetaData`) is only skipped, by the same bounded reader.

use std::fs::File;
use std::os::unix::fs::FileExt;

use parquet::basic::Type as PhysicalType;

/// `PageHeader.type` of a dictionary page (the format's `PageType`).
const DICTIONARY_PAGE: i32 = 2;
/// Nesting the header parser follows before calling the header corrupt
/// (PageHeader is 3 levels deep; statistics hold no nested structs).
const MAX_DEPTH: usize = 16;
/// Bytes read from a header on after a small page (under [`SMALL_PAGE`]
/// bytes), and after a large one. A header longer than the read (page
/// statistics of long strings) is read again whole, up to the chunk's end.
const READ_AHEAD: usize = 64 * 1024;
const SHORT_READ: usize = 1024;
const SMALL_PAGE: u64 = 16 * 1024;
/// The longest header the walk reads (real ones, statistics included, take
/// a few kilobytes at most); past it the walk ends and the decoder judges.
const MAX_HEADER: usize = 16 << 20;

/// The fields of a page header the check needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
struct PageHeader {
    kind: i32,
    uncompressed_size: i32,
    compressed_size: i32,
    /// `dictionary_page_header.num_values`, when the header has one.
    dictionary_values: Option<i32>,
    /// Bytes the header itself takes.
    len: usize,
}

/// Why the header could not be read from the bytes at hand.
#[derive(Debug, PartialEq, Eq)]
enum Parse {
    /// The bytes end inside the header: read more.
    Short,
    /// Not a header the format allows; the decoder will say so.
    Corrupt,
}

/// A dictionary page declaring more values than it can hold.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct OversizedDictionary {
    /// File offset of the page header.
    pub offset: u64,
    pub values: i64,
    pub bytes: i64,
}

/// Walks the page headers of the column chunk at `start..end` of `file`
/// (a column of physical type `physical`, `type_length` bytes wide for
/// fixed-length byte arrays) and returns the first dictionary page that
/// declares more values than its size can hold. A header that cannot be read
/// ends the walk quietly: decoding reports it.
pub(crate) fn check_chunk(
    file: &File,
    start: u64,
    end: u64,
    physical: PhysicalType,
    type_length: i32,
) -> std::io::Result<Option<OversizedDictionary>> {
    let mut offset = start;
    let mut window = Window { file, end, at: start, bytes: Vec::new() };
    // Small pages (dictionary keys, 20,000 rows a page as pyarrow writes them) have
    // many headers in one read ahead; before large pages, a short read is cheaper.
    let mut read = SHORT_READ;
    while offset < end {
        let Some(header) = window.header(offset, read)? else { return Ok(None) };
        if header.kind == DICTIONARY_PAGE {
            if let Some(values) = header.dictionary_values {
                let (values, bytes) = (i64::from(values), i64::from(header.uncompressed_size));
                if values < 0 || min_plain_bytes(physical, type_length, values) > bytes {
                    return Ok(Some(OversizedDictionary { offset, values, bytes }));
                }
            }
        }
        let (Ok(len), Ok(size)) = (u64::try_from(header.len), u64::try_from(header.compressed_size)) else {
            return Ok(None);
        };
        let step = len.saturating_add(size);
        read = if step < SMALL_PAGE { READ_AHEAD } else { SHORT_READ };
        offset = offset.saturating_add(step);
    }
    Ok(None)
}

/// A Parquet footer (the format's `FileMetaData`) that cannot be walked as
/// Thrift's compact protocol within its own bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct MalformedFooter {
    /// File offset of the footer's first byte.
    pub start: u64,
    /// Bytes the footer says it takes.
    pub len: u64,
    /// File offset where the walk stopped.
    pub at: u64,
    /// The footer ends inside a value, or a collection counts more elements
    /// than the footer's remaining bytes hold (otherwise: a type code or
    /// varint the protocol does not allow, or nesting past [`MAX_DEPTH`]).
    pub short: bool,
}

/// Walks the footer of the Parquet file `file` (`file_len` bytes) with the
/// bounded skipper below before the `parquet` crate decodes it. The crate's
/// own skipper of unknown fields steps over a list of booleans without
/// reading a byte per element, so a 7 KB footer declaring lists of 2³¹
/// booleans kept it busy for as long as the footer has lists (found by
/// fuzzing); a list of row groups declaring 2³¹ elements has it reserve
/// memory for all of them. Here every element takes a byte, so a walk is
/// bounded by the footer's length. A tail that is not a plain Parquet tail
/// (no `PAR1`, a length past the file's start) is left to the crate.
pub(crate) fn check_footer(file: &File, file_len: u64) -> std::io::Result<Option<MalformedFooter>> {
    let Some(tail_at) = file_len.checked_sub(8) else { return Ok(None) };
    let mut tail = [0u8; 8];
    file.read_exact_at(&mut tail, tail_at)?;
    let len = u64::from(u32::from_le_bytes([tail[0], tail[1], tail[2], tail[3]]));
    let Some(start) = tail_at.checked_sub(len).filter(|_| &tail[4..] == b"PAR1") else { return Ok(None) };
    let mut bytes = vec![0u8; len as usize];
    file.read_exact_at(&mut bytes, start)?;
    let mut r = Reader { bytes: &bytes, at: 0 };
    Ok(match r.skip(STRUCT, 0) {
        Ok(()) => None,
        Err(e) => Some(MalformedFooter { start, len, at: start + r.at as u64, short: e == Parse::Short }),
    })
}

/// Bytes of a column chunk read at once, from a page header on.
struct Window<'a> {
    file: &'a File,
    /// The chunk's end: nothing past it is read.
    end: u64,
    /// File offset of `bytes[0]`.
    at: u64,
    bytes: Vec<u8>,
}

impl Window<'_> {
    /// The header at `offset`, reading more when the window does not hold
    /// it whole. `None`: the header is corrupt or runs past the chunk.
    fn header(&mut self, offset: u64, read: usize) -> std::io::Result<Option<PageHeader>> {
        let mut want = read;
        loop {
            let held = offset >= self.at && offset < self.at + self.bytes.len() as u64;
            if held {
                let from = (offset - self.at) as usize;
                match parse_header(&self.bytes[from..]) {
                    Ok(h) => return Ok(Some(h)),
                    Err(Parse::Corrupt) => return Ok(None),
                    Err(Parse::Short) if self.at + self.bytes.len() as u64 >= self.end => return Ok(None),
                    Err(Parse::Short) => want = want.max((self.bytes.len() - from).saturating_mul(4)),
                }
                if want > MAX_HEADER {
                    return Ok(None);
                }
            }
            if !self.fill(offset, want)? {
                return Ok(None);
            }
        }
    }

    /// Reads up to `want` bytes from `offset` (not past the chunk's end);
    /// false when there is nothing to read.
    fn fill(&mut self, offset: u64, want: usize) -> std::io::Result<bool> {
        let want = want.min(usize::try_from(self.end.saturating_sub(offset)).unwrap_or(usize::MAX));
        self.at = offset;
        self.bytes.resize(want, 0);
        let mut got = 0;
        while got < want {
            match self.file.read_at(&mut self.bytes[got..], offset + got as u64) {
                Ok(0) => break,
                Ok(n) => got += n,
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        self.bytes.truncate(got);
        if got < want {
            // The file ends before the chunk does: what is here is all there is.
            self.end = offset + got as u64;
        }
        Ok(got > 0)
    }
}

/// The fewest bytes `values` PLAIN-encoded values of a column take.
fn min_plain_bytes(physical: PhysicalType, type_length: i32, values: i64) -> i64 {
    match physical {
        PhysicalType::BOOLEAN => values.saturating_add(7) / 8,
        PhysicalType::INT32 | PhysicalType::FLOAT => values.saturating_mul(4),
        PhysicalType::INT64 | PhysicalType::DOUBLE => values.saturating_mul(8),
        PhysicalType::INT96 => values.saturating_mul(12),
        // A length (4 bytes) before each value.
        PhysicalType::BYTE_ARRAY => values.saturating_mul(4),
        PhysicalType::FIXED_LEN_BYTE_ARRAY => values.saturating_mul(i64::from(type_length.max(0))),
    }
}

/// Parses a `PageHeader` from the start of `bytes`.
fn parse_header(bytes: &[u8]) -> Result<PageHeader, Parse> {
    let mut r = Reader { bytes, at: 0 };
    let mut h = PageHeader::default();
    let mut last = 0i16;
    while let Some((id, ty)) = r.field(&mut last)? {
        match (id, ty) {
            (1, I32) => h.kind = r.i32()?,
            (2, I32) => h.uncompressed_size = r.i32()?,
            (3, I32) => h.compressed_size = r.i32()?,
            (7, STRUCT) => {
                let mut last = 0i16;
                while let Some((id, ty)) = r.field(&mut last)? {
                    match (id, ty) {
                        (1, I32) => h.dictionary_values = Some(r.i32()?),
                        _ => r.skip(ty, 1)?,
                    }
                }
            }
            _ => r.skip(ty, 0)?,
        }
    }
    h.len = r.at;
    Ok(h)
}

// Thrift compact protocol type codes.
const TRUE: u8 = 1;
const FALSE: u8 = 2;
const BYTE: u8 = 3;
const I16: u8 = 4;
const I32: u8 = 5;
const I64: u8 = 6;
const DOUBLE: u8 = 7;
const BINARY: u8 = 8;
const LIST: u8 = 9;
const SET: u8 = 10;
const MAP: u8 = 11;
const STRUCT: u8 = 12;
const UUID: u8 = 13;

struct Reader<'a> {
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn byte(&mut self) -> Result<u8, Parse> {
        let b = *self.bytes.get(self.at).ok_or(Parse::Short)?;
        self.at += 1;
        Ok(b)
    }

    fn take(&mut self, n: u64) -> Result<(), Parse> {
        let n = usize::try_from(n).map_err(|_| Parse::Corrupt)?;
        let to = self.at.checked_add(n).ok_or(Parse::Corrupt)?;
        if to > self.bytes.len() {
            return Err(Parse::Short);
        }
        self.at = to;
        Ok(())
    }

    fn varint(&mut self) -> Result<u64, Parse> {
        let mut v = 0u64;
        for shift in (0..70).step_by(7) {
            let b = self.byte()?;
            if shift == 63 && b > 1 {
                return Err(Parse::Corrupt);
            }
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(Parse::Corrupt)
    }

    fn zigzag(&mut self) -> Result<i64, Parse> {
        let v = self.varint()?;
        Ok((v >> 1) as i64 ^ -((v & 1) as i64))
    }

    fn i32(&mut self) -> Result<i32, Parse> {
        i32::try_from(self.zigzag()?).map_err(|_| Parse::Corrupt)
    }

    /// The next field's id and type, `None` at the struct's end.
    fn field(&mut self, last: &mut i16) -> Result<Option<(i16, u8)>, Parse> {
        let b = self.byte()?;
        if b == 0 {
            return Ok(None);
        }
        let ty = b & 0x0f;
        let delta = i16::from(b >> 4);
        let id = if delta == 0 {
            i16::try_from(self.zigzag()?).map_err(|_| Parse::Corrupt)?
        } else {
            last.checked_add(delta).ok_or(Parse::Corrupt)?
        };
        *last = id;
        Ok(Some((id, ty)))
    }

    /// Skips a value of type `ty`, nested `depth` levels down.
    fn skip(&mut self, ty: u8, depth: usize) -> Result<(), Parse> {
        if depth > MAX_DEPTH {
            return Err(Parse::Corrupt);
        }
        match ty {
            TRUE | FALSE => Ok(()),
            BYTE => self.take(1),
            I16 | I32 | I64 => self.varint().map(|_| ()),
            DOUBLE => self.take(8),
            UUID => self.take(16),
            BINARY => {
                let n = self.varint()?;
                self.take(n)
            }
            LIST | SET => {
                let b = self.byte()?;
                let n = match b >> 4 {
                    15 => self.varint()?,
                    n => u64::from(n),
                };
                self.elements(n, b & 0x0f, depth)
            }
            MAP => {
                let n = self.varint()?;
                if n == 0 {
                    return Ok(());
                }
                let types = self.byte()?;
                let n = n.checked_mul(2).ok_or(Parse::Corrupt)?;
                self.fits(n)?;
                // Keys and values alternate.
                for i in 0..n {
                    let ty = if i % 2 == 0 { types >> 4 } else { types & 0x0f };
                    self.element(ty, depth)?;
                }
                Ok(())
            }
            STRUCT => {
                let mut last = 0i16;
                while let Some((_, ty)) = self.field(&mut last)? {
                    self.skip(ty, depth + 1)?;
                }
                Ok(())
            }
            _ => Err(Parse::Corrupt),
        }
    }

    /// Skips `n` list elements of type `ty`.
    fn elements(&mut self, n: u64, ty: u8, depth: usize) -> Result<(), Parse> {
        self.fits(n)?;
        for _ in 0..n {
            self.element(ty, depth)?;
        }
        Ok(())
    }

    /// Skips one element of a list or map: a boolean there is a byte of its
    /// own (in a struct, the field header holds it).
    fn element(&mut self, ty: u8, depth: usize) -> Result<(), Parse> {
        match ty {
            TRUE | FALSE => self.take(1),
            _ => self.skip(ty, depth + 1),
        }
    }

    /// Every element takes a byte at least: a count larger than the bytes
    /// left cannot be skipped here (read more, or the header lies), and the
    /// loops over elements stay bounded by the bytes at hand.
    fn fits(&self, n: u64) -> Result<(), Parse> {
        match n <= (self.bytes.len() - self.at) as u64 {
            true => Ok(()),
            false => Err(Parse::Short),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Compact-protocol bytes written by hand from the format's `PageHeader`
    /// definition (field ids 1-3, 7; `DictionaryPageHeader` 1-3).
    fn zz(n: i64) -> Vec<u8> {
        uleb(((n << 1) ^ (n >> 63)) as u64)
    }

    /// A Thrift varint (LEB128): lengths and collection sizes, unsigned.
    fn uleb(mut n: u64) -> Vec<u8> {
        let mut out = Vec::new();
        while n >= 0x80 {
            out.push((n as u8) | 0x80);
            n >>= 7;
        }
        out.push(n as u8);
        out
    }

    fn dictionary_header(values: i64, size: i64, with_crc: bool) -> Vec<u8> {
        let mut h = vec![0x15];
        h.extend(zz(2)); // type: DICTIONARY_PAGE
        h.push(0x15);
        h.extend(zz(size)); // uncompressed_page_size
        h.push(0x15);
        h.extend(zz(size)); // compressed_page_size
        if with_crc {
            h.push(0x15);
            h.extend(zz(-123_456_789)); // crc, skipped
            h.push(0x3c); // field 7 (4 + 3), struct
        } else {
            h.push(0x4c); // field 7 (3 + 4), struct
        }
        h.push(0x15);
        h.extend(zz(values)); // num_values
        h.push(0x15);
        h.extend(zz(0)); // encoding: PLAIN
        h.push(0x12); // is_sorted: false
        h.push(0x00); // end of DictionaryPageHeader
        h.push(0x00); // end of PageHeader
        h
    }

    #[test]
    fn a_dictionary_page_header_reads_as_the_format_defines_it() {
        for crc in [false, true] {
            let bytes = dictionary_header(5, 20, crc);
            let h = parse_header(&bytes).expect("parses");
            assert_eq!(
                h,
                PageHeader {
                    kind: 2,
                    uncompressed_size: 20,
                    compressed_size: 20,
                    dictionary_values: Some(5),
                    len: bytes.len()
                }
            );
            // Cut anywhere, the header asks for more bytes rather than misreading.
            for cut in 0..bytes.len() {
                assert_eq!(parse_header(&bytes[..cut]), Err(Parse::Short), "cut at {cut}");
            }
        }
    }

    #[test]
    fn a_data_page_header_with_statistics_is_skipped_whole() {
        // type DATA_PAGE (0), sizes, then data_page_header (field 5, delta 2 from 3):
        // num_values 7, encodings, and statistics (field 5) with max/min binaries.
        let mut h = vec![0x15];
        h.extend(zz(0));
        h.extend([0x15]);
        h.extend(zz(300));
        h.extend([0x15]);
        h.extend(zz(100));
        h.push(0x2c); // field 5, struct
        h.extend([0x15]);
        h.extend(zz(7)); // num_values
        h.extend([0x15, 0x00, 0x15, 0x06, 0x15, 0x06]); // encodings: PLAIN, RLE, RLE
        h.push(0x1c); // field 5 (statistics), struct
        h.push(0x18); // field 1 (max), binary
        h.push(3); // length 3
        h.extend(b"zzz");
        h.push(0x18); // field 2 (min), binary
        h.push(1);
        h.extend(b"a");
        h.push(0x00); // end of statistics
        h.push(0x00); // end of data page header
        h.push(0x00); // end of page header
        let got = parse_header(&h).expect("parses");
        assert_eq!((got.kind, got.uncompressed_size, got.compressed_size), (0, 300, 100));
        assert_eq!((got.dictionary_values, got.len), (None, h.len()));
    }

    /// A DATA_PAGE header whose statistics hold a `max` of `stat` bytes, for a body of `body` bytes.
    fn data_header(stat: usize, body: i64) -> Vec<u8> {
        let mut h = vec![0x15];
        h.extend(zz(0));
        for _ in 0..2 {
            h.push(0x15);
            h.extend(zz(body));
        }
        h.push(0x2c); // field 5, data_page_header
        h.push(0x15);
        h.extend(zz(1)); // num_values
        h.extend([0x15, 0x00, 0x15, 0x06, 0x15, 0x06]);
        h.push(0x1c); // statistics
        h.push(0x18); // max, binary
        h.extend(uleb(stat as u64));
        h.extend(std::iter::repeat_n(b'z', stat));
        h.extend([0x00, 0x00, 0x00]);
        h
    }

    #[test]
    fn the_walk_reads_past_long_headers_to_the_dictionary_page_that_lies() {
        // Pages: a data page whose header carries 100 KiB of statistics (longer than any
        // first read), a small data page, then a dictionary page of INT64 claiming 1,000
        // values in 80 bytes (10 values' worth). The walk must step over each page's body.
        let mut chunk = Vec::new();
        for (stat, body) in [(100 * 1024, 300), (3, 7)] {
            chunk.extend(data_header(stat, body));
            chunk.extend(std::iter::repeat_n(0xee, body as usize));
        }
        let lie_at = chunk.len() as u64;
        chunk.extend(dictionary_header(1000, 80, false));
        chunk.extend([0u8; 80]);
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("chunk.bin");
        // Some bytes before the chunk, as in a file.
        let mut file_bytes = vec![0xaa; 17];
        file_bytes.extend(&chunk);
        std::fs::write(&path, &file_bytes).expect("write");
        let file = File::open(&path).expect("open");
        let end = file_bytes.len() as u64;
        let found = check_chunk(&file, 17, end, PhysicalType::INT64, 0).expect("reads");
        assert_eq!(found, Some(OversizedDictionary { offset: 17 + lie_at, values: 1000, bytes: 80 }));
        // As INT32 it would hold 20 values, still not 1,000; as BOOLEAN, 640: still a lie.
        assert!(check_chunk(&file, 17, end, PhysicalType::BOOLEAN, 0).expect("reads").is_some());
        // The walk stops at the chunk's end: a chunk ending before the dictionary page has no lie.
        assert_eq!(check_chunk(&file, 17, 17 + lie_at, PhysicalType::INT64, 0).expect("reads"), None);
        // A header longer than the walk reads (a 17 MiB statistic) ends it quietly.
        let mut huge = data_header(17 << 20, 1);
        huge.push(0);
        huge.extend(dictionary_header(1000, 80, false));
        std::fs::write(&path, &huge).expect("write");
        let file = File::open(&path).expect("open");
        assert_eq!(check_chunk(&file, 0, huge.len() as u64, PhysicalType::INT64, 0).expect("reads"), None);
    }

    #[test]
    fn a_collection_of_billions_of_booleans_is_not_skipped_one_by_one() {
        // Found by the `parquet` fuzz target: a map of 2^40 (bool, bool) pairs in an unknown
        // field. A boolean in a map takes a byte, so these bytes cannot hold it: the parser
        // asks for more (and the walk gives up at its bound) instead of looping 2^41 times.
        let mut h = vec![0x15];
        h.extend(zz(2));
        h.push(0x1b); // field 2, map
        h.extend(uleb(1 << 40));
        h.push(0x11); // keys and values: bool
        h.extend([0x01, 0x01, 0x00]);
        assert_eq!(parse_header(&h), Err(Parse::Short));
        // The same with a list of 2^40 booleans (size nibble 15, then the count).
        let mut h = vec![0x19, 0xf1];
        h.extend(uleb(1 << 40));
        h.extend([0x01, 0x00]);
        assert_eq!(parse_header(&h), Err(Parse::Short));
        // A map (as field 1) of two (bool, i32) pairs skips whole, a byte per element, and
        // field 2 (uncompressed_page_size: 2) is read after it.
        let h = [0x1b, 0x02, 0x15, 0x01, 0x02, 0x00, 0x04, 0x15, 0x04, 0x00];
        let got = parse_header(&h).expect("parses");
        assert_eq!((got.kind, got.uncompressed_size, got.len), (0, 2, h.len()));
    }

    #[test]
    fn the_fewest_bytes_of_a_plain_dictionary_follow_the_physical_type() {
        assert_eq!(min_plain_bytes(PhysicalType::INT32, 0, 10), 40);
        assert_eq!(min_plain_bytes(PhysicalType::INT64, 0, 10), 80);
        assert_eq!(min_plain_bytes(PhysicalType::INT96, 0, 10), 120);
        assert_eq!(min_plain_bytes(PhysicalType::BOOLEAN, 0, 9), 2);
        assert_eq!(min_plain_bytes(PhysicalType::BYTE_ARRAY, 0, 10), 40);
        assert_eq!(min_plain_bytes(PhysicalType::FIXED_LEN_BYTE_ARRAY, 16, 10), 160);
        assert_eq!(min_plain_bytes(PhysicalType::INT64, 0, i64::from(i32::MAX)), 8 * i64::from(i32::MAX));
    }

    #[test]
    fn a_corrupt_header_is_corrupt_not_a_hang_or_a_panic() {
        // A field of type 14 (none), nesting deeper than the bound, a varint of eleven bytes.
        assert_eq!(parse_header(&[0x1e]), Err(Parse::Corrupt));
        let deep: Vec<u8> = std::iter::repeat_n(0x1c, 64).chain(std::iter::repeat_n(0, 65)).collect();
        assert_eq!(parse_header(&deep), Err(Parse::Corrupt));
        assert_eq!(
            parse_header(&[0x15, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(Parse::Corrupt)
        );
    }
}
