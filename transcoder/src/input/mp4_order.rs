//! Puts an MP4/QuickTime file's index (`moov`) before its media data (`mdat`) while streaming.
//!
//! The transcoder starts ffmpeg before an upload has finished downloading from S3 and feeds
//! it the source on stdin. A pipe cannot seek, and ffmpeg's mov demuxer needs `moov` before the
//! samples it indexes: given `mdat` first, it skips the media, finds `moov`, then cannot go back
//! and reads no packets at all. "Faststart" files already have `moov` first and stream as they
//! are. Most cameras, phones and ffmpeg's default muxer write `moov` at the end; for those the
//! caller fetches the tail of the object first (a ranged GET) and streams a reordered file, the
//! way qt-faststart does: the boxes before the media, the rewritten `moov`, then the media.
//! The media moves later by exactly the size of `moov`, so every chunk offset (`stco`/`co64`)
//! pointing into it grows by that size.
//!
//! Uploads are hostile: every size is checked against its container and the caps below, and
//! anything we do not fully understand is an `Err`. The caller then downloads the whole file
//! first, which is slower but always correct.

use std::ops::Range;

/// The largest `moov` we rewrite (it is copied into memory); bigger means fall back.
pub const MAX_INDEX_BYTES: u64 = 64 << 20;

/// The most head bytes `read_head` asks for: real files put only small boxes before the
/// first `moov` or `mdat`, so needing more means something odd is going on.
pub const MAX_HEAD_BYTES: u64 = 1 << 20;

/// The largest tail (`[tail_start, size)`) we accept, since the caller holds it in memory.
/// Real tails are the `moov` plus perhaps a little metadata.
pub const MAX_TAIL_BYTES: u64 = 2 * MAX_INDEX_BYTES;

/// Box types a QuickTime or ISO BMFF file may plausibly start with.
const FIRST_BOX_TYPES: [&[u8; 4]; 7] = [
    b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot",
];

/// Fragmented files keep offsets in `moof` boxes, which we do not rewrite.
const FRAGMENTED: &str = "fragmented mp4 (moof)";

/// The boxes leading from `moov` down to the sample tables that hold the chunk offsets.
const PATH_TO_SAMPLE_TABLE: [&[u8; 4]; 4] = [b"trak", b"mdia", b"minf", b"stbl"];

/// What the first bytes of an object say about how to stream it to a demuxer that cannot seek.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HeadVerdict {
    /// Not an ISO BMFF / QuickTime file (no known top-level box with a sane size at offset 0):
    /// stream it as it is (the caller decides by other means).
    NotMp4,
    /// `moov` comes before any `mdat`: the object can be streamed as it is.
    IndexFirst,
    /// `mdat` comes first: fetch bytes `[tail_start, size)` and call [`faststart_order`].
    IndexAtEnd {
        /// The end of the first `mdat`; the tail from here holds the `moov`.
        tail_start: u64,
    },
    /// The head is too short to tell (a box header straddles its end): fetch the first
    /// `head_len` bytes (at most [`MAX_HEAD_BYTES`]) and ask again.
    NeedMore {
        /// How many leading bytes of the object will do.
        head_len: u64,
    },
}

/// One piece of the stream to send, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece {
    /// Bytes `[start, end)` of the original object.
    Object {
        /// First byte, inclusive.
        start: u64,
        /// Last byte, exclusive.
        end: u64,
    },
    /// Bytes we made (the rewritten `moov`).
    Made(Vec<u8>),
}

/// Why an object cannot be streamed in faststart order; the caller falls back to a full download.
#[derive(Debug, thiserror::Error)]
pub enum LayoutError {
    /// A box's size or contents contradict its container or the object.
    #[error("malformed box at byte {offset}: {problem}")]
    Malformed {
        /// Where the box starts in the object.
        offset: u64,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// No `moov` where one must be: after the media data, or anywhere in a file without media.
    #[error("no moov box found")]
    NoIndex,
    /// Something we would have to hold in memory is over its cap.
    #[error("{what} is {len} bytes, more than the {max} we allow")]
    TooLarge {
        /// Which part of the object.
        what: &'static str,
        /// Its size.
        len: u64,
        /// The cap.
        max: u64,
    },
    /// A valid feature we do not rewrite, such as fragments or compressed or encrypted indexes:
    /// they hold file offsets that would go stale.
    #[error("unsupported: {0}")]
    Unsupported(&'static str),
    /// A chunk offset points into the file header or the `moov`, not at media data.
    #[error("chunk offset {0} points outside the media data")]
    OffsetOutsideMedia(u64),
    /// A shifted offset no longer fits `stco`; promoting it to `co64` is not supported.
    #[error("chunk offset {offset} + {shift} does not fit a 32-bit stco entry")]
    OffsetOverflow {
        /// The offset as written in the file.
        offset: u64,
        /// How far the media moves.
        shift: u64,
    },
    /// The arguments do not describe one index-at-end object (a caller bug or a changed object).
    #[error("inconsistent arguments: {0}")]
    BadArguments(&'static str),
}

/// A parsed box header; all positions are absolute offsets in the object.
#[derive(Debug, Clone, Copy)]
pub(crate) struct BoxHeader {
    pub(crate) kind: [u8; 4],
    pub(crate) start: u64,
    pub(crate) body: u64,
    pub(crate) end: u64,
}

/// The result of reading a box header from bytes that may stop before it does.
enum Header {
    Complete(BoxHeader),
    /// Not all of the header is in the bytes; this many leading bytes of the object would do.
    Short(u64),
}

/// What walking the head found, keeping the first `mdat` for `faststart_order`.
enum HeadWalk {
    Verdict(HeadVerdict),
    FirstMdat(BoxHeader),
}

pub(crate) fn malformed(offset: u64, problem: &'static str) -> LayoutError {
    LayoutError::Malformed { offset, problem }
}

pub(crate) fn too_large(what: &'static str, len: u64, max: u64) -> LayoutError {
    LayoutError::TooLarge { what, len, max }
}

/// Where `[at, end)` lies in a buffer holding the object's bytes from offset `base`.
pub(crate) fn local_range(base: u64, at: u64, end: u64) -> Option<Range<usize>> {
    let start = usize::try_from(at.checked_sub(base)?).ok()?;
    let end = usize::try_from(end.checked_sub(base)?).ok()?;
    (start <= end).then_some(start..end)
}

/// The `N` bytes at offset `at`, if `bytes` (starting at offset `base`) holds them all.
pub(crate) fn array_at<const N: usize>(bytes: &[u8], base: u64, at: u64) -> Option<[u8; N]> {
    let range = local_range(base, at, at.checked_add(N as u64)?)?;
    bytes.get(range)?.try_into().ok()
}

/// Reads the header of the box at `at`, inside a container (or object) that ends at `limit`.
fn read_header(bytes: &[u8], base: u64, at: u64, limit: u64) -> Result<Header, LayoutError> {
    if limit.saturating_sub(at) < 8 {
        return Err(malformed(
            at,
            "box header runs past the end of its container",
        ));
    }
    // Ask for 16 bytes, not 8, so that a 64-bit `largesize` needs no second round trip.
    let short = Header::Short(at.saturating_add(16).min(limit));
    let (Some(size32), Some(kind)) = (array_at(bytes, base, at), array_at(bytes, base, at + 4))
    else {
        return Ok(short);
    };
    let (header_len, size) = match u32::from_be_bytes(size32) {
        0 => (8, limit - at), // "Extends to the end of the container".
        1 if limit - at < 16 => return Err(malformed(at, "64-bit box header is cut off")),
        1 => match array_at(bytes, base, at + 8) {
            Some(largesize) => (16, u64::from_be_bytes(largesize)),
            None => return Ok(short),
        },
        size => (8, u64::from(size)),
    };
    if size < header_len {
        return Err(malformed(at, "box size is smaller than its header"));
    }
    if size > limit - at {
        return Err(malformed(at, "box runs past the end of its container"));
    }
    let (start, body, end) = (at, at + header_len, at + size);
    Ok(Header::Complete(BoxHeader {
        kind,
        start,
        body,
        end,
    }))
}

/// Like `read_header`, for bytes that should hold the whole container.
pub(crate) fn read_whole_header(
    bytes: &[u8],
    base: u64,
    at: u64,
    end: u64,
) -> Result<BoxHeader, LayoutError> {
    match read_header(bytes, base, at, end)? {
        Header::Complete(header) => Ok(header),
        Header::Short(_) => Err(malformed(at, "box header is cut off")),
    }
}

/// Walks the top-level boxes from offset 0 until the first `moov` or `mdat`.
fn walk_head(head: &[u8], size: u64) -> Result<HeadWalk, LayoutError> {
    let verdict = |verdict| Ok(HeadWalk::Verdict(verdict));
    if head.len() as u64 > size {
        return Err(LayoutError::BadArguments("head is longer than the object"));
    }
    let mut at = 0;
    while at < size {
        let header = match read_header(head, 0, at, size) {
            Ok(Header::Complete(header)) => header,
            Ok(Header::Short(need)) if need > MAX_HEAD_BYTES => {
                return Err(too_large("head before moov/mdat", need, MAX_HEAD_BYTES));
            }
            Ok(Header::Short(need)) => return verdict(HeadVerdict::NeedMore { head_len: need }),
            // A bad first box means this is some other format, not a broken mp4.
            Err(_) if at == 0 => return verdict(HeadVerdict::NotMp4),
            Err(error) => return Err(error),
        };
        if at == 0 && !FIRST_BOX_TYPES.contains(&&header.kind) {
            return verdict(HeadVerdict::NotMp4);
        }
        match &header.kind {
            b"moov" => return verdict(HeadVerdict::IndexFirst),
            b"mdat" => return Ok(HeadWalk::FirstMdat(header)),
            b"moof" => return Err(LayoutError::Unsupported(FRAGMENTED)),
            _ => at = header.end,
        }
    }
    match size {
        0 => verdict(HeadVerdict::NotMp4),
        _ => Err(LayoutError::NoIndex),
    }
}

/// Where the tail holding `moov` starts, if a tail after `first_mdat` is there and not too big.
fn tail_start_after(first_mdat: &BoxHeader, size: u64) -> Result<u64, LayoutError> {
    match size - first_mdat.end {
        0 => Err(LayoutError::NoIndex),
        len if len > MAX_TAIL_BYTES => Err(too_large("the part after mdat", len, MAX_TAIL_BYTES)),
        _ => Ok(first_mdat.end),
    }
}

/// Tells from the first bytes of an object of `size` bytes how to stream it through a pipe.
pub fn read_head(head: &[u8], size: u64) -> Result<HeadVerdict, LayoutError> {
    match walk_head(head, size)? {
        HeadWalk::Verdict(verdict) => Ok(verdict),
        HeadWalk::FirstMdat(mdat) => {
            let tail_start = tail_start_after(&mdat, size)?;
            Ok(HeadVerdict::IndexAtEnd { tail_start })
        }
    }
}

/// The stream order for an index-at-end file: `head` is the object's first bytes (at least up
/// to the first `mdat`'s header), `tail` is bytes `[tail_start, size)`.
///
/// The order is `[0, first mdat)`, the rewritten `moov`, `[first mdat, moov)`, `[moov end, size)`;
/// it has exactly `size` bytes, as only `moov` moves.
pub fn faststart_order(
    head: &[u8],
    size: u64,
    tail_start: u64,
    tail: &[u8],
) -> Result<Vec<Piece>, LayoutError> {
    let first_mdat = first_mdat_for(head, size, tail_start, tail)?;
    let moov = find_index_in_tail(tail, tail_start, size)?;
    let moov_len = moov.end - moov.start;
    if moov_len > MAX_INDEX_BYTES {
        return Err(too_large("moov", moov_len, MAX_INDEX_BYTES));
    }
    let mut index = local_range(tail_start, moov.start, moov.end)
        .and_then(|range| tail.get(range))
        .ok_or(malformed(moov.start, "moov is not inside the tail"))?
        .to_vec();
    let shift = OffsetShift {
        moved: first_mdat.start..moov.start,
        unmoved: moov.end..size,
        by: moov_len,
    };
    patch_container(&mut index, moov.start, moov, 0, &shift)?;

    let object = |start, end| (start < end).then_some(Piece::Object { start, end });
    let pieces = [
        object(0, first_mdat.start),
        Some(Piece::Made(index)),
        object(first_mdat.start, moov.start),
        object(moov.end, size),
    ];
    Ok(pieces.into_iter().flatten().collect())
}

/// The first `mdat`, after checking that the arguments describe one index-at-end object.
fn first_mdat_for(
    head: &[u8],
    size: u64,
    tail_start: u64,
    tail: &[u8],
) -> Result<BoxHeader, LayoutError> {
    let bad = |why| Err(LayoutError::BadArguments(why));
    let HeadWalk::FirstMdat(first_mdat) = walk_head(head, size)? else {
        return bad("head does not show media data before the index");
    };
    if tail_start_after(&first_mdat, size)? != tail_start {
        return bad("tail_start is not the end of the first mdat");
    }
    if tail.len() as u64 != size - tail_start {
        return bad("tail is not bytes [tail_start, size)");
    }
    Ok(first_mdat)
}

/// Finds the one `moov` among the top-level boxes of the tail.
pub(crate) fn find_index_in_tail(
    tail: &[u8],
    tail_start: u64,
    size: u64,
) -> Result<BoxHeader, LayoutError> {
    let mut index: Option<BoxHeader> = None;
    let mut at = tail_start;
    while at < size {
        let header = read_whole_header(tail, tail_start, at, size)?;
        match (&header.kind, index) {
            // Two indexes: which one would the demuxer use?
            (b"moov", Some(_)) => return Err(malformed(at, "a second moov box")),
            (b"moov", None) => index = Some(header),
            (b"moof", _) => return Err(LayoutError::Unsupported(FRAGMENTED)),
            _ => {}
        }
        at = header.end;
    }
    index.ok_or(LayoutError::NoIndex)
}

/// Where chunk offsets may point, and how they change in the new order.
struct OffsetShift {
    /// Media between the first `mdat` and `moov`: it moves later by `by`.
    moved: Range<u64>,
    /// Boxes after `moov`: they keep their place.
    unmoved: Range<u64>,
    by: u64,
}

impl OffsetShift {
    fn apply(&self, offset: u64) -> Result<u64, LayoutError> {
        if self.moved.contains(&offset) {
            // Cannot overflow: `offset` < moov start, so the sum is < moov end <= the size.
            Ok(offset + self.by)
        } else if self.unmoved.contains(&offset) {
            Ok(offset)
        } else {
            Err(LayoutError::OffsetOutsideMedia(offset))
        }
    }

    fn apply_u32(&self, offset: u32) -> Result<u32, LayoutError> {
        let moved = self.apply(u64::from(offset))?;
        let overflow = || LayoutError::OffsetOverflow {
            offset: offset.into(),
            shift: self.by,
        };
        u32::try_from(moved).map_err(|_| overflow())
    }
}

/// Patches the chunk offsets below `container`, which sits `depth` steps along
/// `PATH_TO_SAMPLE_TABLE` (0 = `moov`). `buf` holds the object's bytes from `base`.
/// Only path boxes are entered, so the recursion is at most as deep as the path.
fn patch_container(
    buf: &mut [u8],
    base: u64,
    container: BoxHeader,
    depth: usize,
    shift: &OffsetShift,
) -> Result<(), LayoutError> {
    let mut chunk_offset_tables = 0;
    let mut at = container.body;
    while at < container.end {
        let child = read_whole_header(buf, base, at, container.end)?;
        match (PATH_TO_SAMPLE_TABLE.get(depth), &child.kind) {
            (Some(next), kind) if kind == *next => {
                patch_container(buf, base, child, depth + 1, shift)?;
            }
            (None, b"stco" | b"co64") => {
                patch_chunk_offsets(buf, base, child, shift)?;
                chunk_offset_tables += 1;
            }
            // Both hide offsets into the file that we would otherwise leave stale.
            (_, b"cmov") => return Err(LayoutError::Unsupported("compressed moov (cmov)")),
            (None, b"saio") => return Err(LayoutError::Unsupported("aux info offsets (saio)")),
            _ => {}
        }
        at = child.end;
    }
    if depth == PATH_TO_SAMPLE_TABLE.len() && chunk_offset_tables != 1 {
        return Err(malformed(
            container.start,
            "sample table without exactly one stco/co64",
        ));
    }
    Ok(())
}

/// Shifts every entry of an `stco` (32-bit) or `co64` (64-bit) box in place.
fn patch_chunk_offsets(
    buf: &mut [u8],
    base: u64,
    table: BoxHeader,
    shift: &OffsetShift,
) -> Result<(), LayoutError> {
    let bad = |problem| malformed(table.start, problem);
    let width: u64 = if &table.kind == b"co64" { 8 } else { 4 };
    // Body: version and flags (4 bytes), entry count (4 bytes), then the entries.
    let entries_start = table.body + 8;
    if entries_start > table.end {
        return Err(bad("chunk offset box is too short"));
    }
    let count = array_at(buf, base, table.body + 4).map(u32::from_be_bytes);
    let count = count.ok_or(bad("chunk offset box is cut off"))?;
    let entries_end = entries_start + u64::from(count) * width;
    if entries_end > table.end {
        return Err(bad("chunk offset count is larger than its box"));
    }
    let entries = local_range(base, entries_start, entries_end)
        .and_then(|range| buf.get_mut(range))
        .ok_or(bad("chunk offset box is cut off"))?;
    for entry in entries.chunks_exact_mut(width as usize) {
        if let Ok(bytes) = <[u8; 4]>::try_from(&*entry) {
            let moved = shift.apply_u32(u32::from_be_bytes(bytes))?;
            entry.copy_from_slice(&moved.to_be_bytes());
        } else if let Ok(bytes) = <[u8; 8]>::try_from(&*entry) {
            let moved = shift.apply(u64::from_be_bytes(bytes))?;
            entry.copy_from_slice(&moved.to_be_bytes());
        }
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use std::io::Write;
    use std::path::{Path, PathBuf};
    use std::process::{Command, Output, Stdio};

    /// A box with a 32-bit size.
    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let size = u32::try_from(8 + body.len()).unwrap();
        [&size.to_be_bytes()[..], kind, body].concat()
    }

    /// A box with a 64-bit `largesize`.
    fn large_bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let size = 16 + body.len() as u64;
        [&1u32.to_be_bytes()[..], kind, &size.to_be_bytes(), body].concat()
    }

    /// An `stco` (4-byte entries) or `co64` (8-byte entries) box.
    fn chunk_offsets<const N: usize>(entries: &[[u8; N]]) -> Vec<u8> {
        let count = (entries.len() as u32).to_be_bytes();
        let kind = if N == 8 { b"co64" } else { b"stco" };
        bx(kind, &[&[0; 4][..], &count, &entries.concat()].concat())
    }
    fn stco(offsets: &[u32]) -> Vec<u8> {
        chunk_offsets(&offsets.iter().map(|o| o.to_be_bytes()).collect::<Vec<_>>())
    }
    fn co64(offsets: &[u64]) -> Vec<u8> {
        chunk_offsets(&offsets.iter().map(|o| o.to_be_bytes()).collect::<Vec<_>>())
    }

    /// A moov with one track per chunk offset table, with some boxes to leave alone.
    /// Layout: moov(8) mvhd(28) trak(8) mdia(8) minf(8) stbl(8) stsz(20) table.
    fn moov(tables: &[Vec<u8>]) -> Vec<u8> {
        let trak = |table: &Vec<u8>| {
            let stbl = bx(b"stbl", &[bx(b"stsz", &[0; 12]), table.clone()].concat());
            bx(b"trak", &bx(b"mdia", &bx(b"minf", &stbl)))
        };
        let traks: Vec<u8> = tables.iter().flat_map(trak).collect();
        bx(b"moov", &[bx(b"mvhd", &[7; 20]), traks].concat())
    }

    fn ftyp() -> Vec<u8> {
        bx(b"ftyp", b"isom\0\0\x02\0isom")
    }

    /// `[ftyp][mdat of 100 bytes][moov]`, the moov's stco pointing at the given offsets.
    fn index_at_end(offsets: &[u32]) -> Vec<u8> {
        [ftyp(), bx(b"mdat", &[0xAB; 100]), moov(&[stco(offsets)])].concat()
    }
    const MOOV_AT: usize = 20 + 108; // In `index_at_end`.

    fn verdict(file: &[u8]) -> HeadVerdict {
        read_head(file, file.len() as u64).unwrap()
    }

    /// What a caller holding the whole `file` gets.
    fn order(file: &[u8]) -> Result<Vec<Piece>, LayoutError> {
        let size = file.len() as u64;
        match read_head(file, size)? {
            HeadVerdict::IndexAtEnd { tail_start } => {
                faststart_order(file, size, tail_start, &file[tail_start as usize..])
            }
            other => panic!("expected IndexAtEnd, got {other:?}"),
        }
    }

    fn object(start: usize, end: usize) -> Piece {
        let (start, end) = (start as u64, end as u64);
        Piece::Object { start, end }
    }

    fn made(pieces: &[Piece]) -> &[u8] {
        match &pieces[1] {
            Piece::Made(bytes) => bytes,
            other => panic!("expected the new moov, got {other:?}"),
        }
    }

    fn assemble(object: &[u8], pieces: &[Piece]) -> Vec<u8> {
        let piece_bytes = |piece: &Piece| match piece {
            Piece::Object { start, end } => object[*start as usize..*end as usize].to_vec(),
            Piece::Made(bytes) => bytes.clone(),
        };
        pieces.iter().flat_map(piece_bytes).collect()
    }

    fn last_u32(bytes: &[u8]) -> u32 {
        u32::from_be_bytes(bytes[bytes.len() - 4..].try_into().unwrap())
    }

    #[test]
    fn faststart_layout_is_index_first() {
        let media = bx(b"mdat", &[1; 50]);
        let file = [ftyp(), bx(b"free", &[]), moov(&[stco(&[100])]), media].concat();
        assert_eq!(verdict(&file), HeadVerdict::IndexFirst);
    }

    #[test]
    fn index_at_end_gives_the_end_of_the_first_mdat() {
        let media = bx(b"mdat", &[1; 50]);
        let file = [ftyp(), bx(b"free", &[]), media, moov(&[stco(&[60])])].concat();
        let tail_start = (ftyp().len() + 8 + 58) as u64;
        assert_eq!(verdict(&file), HeadVerdict::IndexAtEnd { tail_start });
        // A QuickTime file may even start with the media.
        let file = [bx(b"mdat", &[1; 50]), moov(&[stco(&[8])])].concat();
        let size = file.len() as u64;
        let at_end = HeadVerdict::IndexAtEnd { tail_start: 58 };
        assert_eq!(read_head(&file[..8], size).unwrap(), at_end);
        assert_eq!(order(&file).unwrap()[1..], [object(0, 58)]);
    }

    #[test]
    fn stco_entries_shift_by_the_moov_length_and_still_find_their_bytes() {
        let mut file = index_at_end(&[30, 60]);
        (file[30], file[60]) = (0x11, 0x22);
        let moov_len = file.len() - MOOV_AT;
        let pieces = order(&file).unwrap();
        assert_eq!(pieces.len(), 3);
        assert_eq!(
            (&pieces[0], &pieces[2]),
            (&object(0, 20), &object(20, MOOV_AT))
        );
        assert_eq!(made(&pieces).len(), moov_len);
        assert_eq!(last_u32(made(&pieces)) as usize, 60 + moov_len);
        let out = assemble(&file, &pieces);
        assert_eq!(out.len(), file.len());
        assert_eq!((out[30 + moov_len], out[60 + moov_len]), (0x11, 0x22));
        assert_eq!(verdict(&out), HeadVerdict::IndexFirst);
    }

    #[test]
    fn co64_entries_shift_and_offsets_after_moov_stay() {
        // [ftyp][mdat][free][mdat][moov][mdat]: the middle boxes move, the last one does not.
        let media = [
            bx(b"mdat", &[1; 40]),
            bx(b"free", &[]),
            bx(b"mdat", &[2; 40]),
        ]
        .concat();
        let before = ftyp().len() + media.len();
        let moov_len = moov(&[co64(&[0, 0]), stco(&[0])]).len();
        let (into_media, after) = ((before - 20) as u64, (before + moov_len + 8) as u64);
        let index = moov(&[co64(&[into_media, after]), stco(&[after as u32])]);
        let file = [ftyp(), media, index, bx(b"mdat", &[3; 40])].concat();
        let pieces = order(&file).unwrap();
        let new_co64 = [
            (into_media + moov_len as u64).to_be_bytes(),
            after.to_be_bytes(),
        ];
        assert!(made(&pieces).windows(16).any(|w| w == new_co64.concat()));
        assert_eq!(u64::from(last_u32(made(&pieces))), after);
        assert_eq!(pieces[3], object(before + moov_len, file.len()));
        assert_eq!(assemble(&file, &pieces)[after as usize], 3);
    }

    #[test]
    fn offsets_outside_the_media_are_rejected() {
        for bad in [0, 4, MOOV_AT as u32, MOOV_AT as u32 + 10, 100_000] {
            let result = order(&index_at_end(&[bad]));
            assert!(
                matches!(result, Err(LayoutError::OffsetOutsideMedia(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn shifted_stco_offset_over_u32_is_rejected() {
        // The head shows only the header of a 4 GiB mdat; the tail is the moov.
        let mdat_size: u64 = 1 << 32;
        let head = [
            ftyp(),
            large_bx(b"mdat", &[])[..8].to_vec(),
            mdat_size.to_be_bytes().to_vec(),
        ];
        let head = head.concat();
        let tail_start = ftyp().len() as u64 + mdat_size;
        let tail = moov(&[stco(&[u32::MAX - 10])]);
        let size = tail_start + tail.len() as u64;
        let at_end = HeadVerdict::IndexAtEnd { tail_start };
        assert_eq!(read_head(&head, size).unwrap(), at_end);
        let result = faststart_order(&head, size, tail_start, &tail);
        assert!(
            matches!(result, Err(LayoutError::OffsetOverflow { .. })),
            "{result:?}"
        );
        // The same offset in a co64 is fine.
        let tail = moov(&[co64(&[u64::from(u32::MAX) - 10])]);
        let size = tail_start + tail.len() as u64;
        assert!(faststart_order(&head, size, tail_start, &tail).is_ok());
    }

    #[test]
    fn largesize_boxes_are_understood() {
        let index = large_bx(b"moov", &moov(&[stco(&[40])])[8..]);
        let file = [ftyp(), large_bx(b"mdat", &[5; 30]), index].concat();
        let tail_start = (ftyp().len() + 46) as u64;
        assert_eq!(verdict(&file), HeadVerdict::IndexAtEnd { tail_start });
        let pieces = order(&file).unwrap();
        assert_eq!(last_u32(made(&pieces)) as usize, 40 + made(&pieces).len());
    }

    #[test]
    fn short_heads_ask_for_more() {
        let file = index_at_end(&[30]);
        for (head_len, wanted) in [(0, 16), (1, 16), (7, 16), (20, 36), (25, 36)] {
            let verdict = read_head(&file[..head_len], file.len() as u64).unwrap();
            assert_eq!(
                verdict,
                HeadVerdict::NeedMore { head_len: wanted },
                "{head_len}"
            );
        }
        // Objects too small to hold a box header.
        assert_eq!(verdict(&[]), HeadVerdict::NotMp4);
        assert_eq!(verdict(&file[..1]), HeadVerdict::NotMp4);
        let huge_free = [ftyp(), bx(b"free", &vec![0; MAX_HEAD_BYTES as usize])].concat();
        assert!(read_head(&huge_free, huge_free.len() as u64 + 100).is_err());
    }

    #[test]
    fn other_formats_are_not_mp4() {
        let mkv = [0x1A, 0x45, 0xDF, 0xA3, 0, 0, 0, 0, 0, 0];
        for file in [
            &b"#EXTM3U\n#EXT-X-VERSION:3\n"[..],
            &mkv,
            &bx(b"junk", &[0; 8]),
        ] {
            assert_eq!(verdict(file), HeadVerdict::NotMp4);
        }
    }

    #[test]
    fn lying_sizes_are_errors() {
        let file = index_at_end(&[30]);
        let with_size = |at: usize, size: u32| {
            let mut file = file.clone();
            file[at..at + 4].copy_from_slice(&size.to_be_bytes());
            file
        };
        // The first box lying means another format; a later one means a broken file.
        assert_eq!(verdict(&with_size(0, 4)), HeadVerdict::NotMp4);
        assert_eq!(verdict(&with_size(0, 1 << 30)), HeadVerdict::NotMp4);
        for size in [3, 1 << 30] {
            assert!(read_head(&with_size(20, size), file.len() as u64).is_err());
        }
        // moov, mvhd, trak and mdia claiming too little or more than their parent.
        for at in [MOOV_AT, MOOV_AT + 8, MOOV_AT + 36, MOOV_AT + 44] {
            for size in [1, 7, 5000, u32::MAX] {
                let result = order(&with_size(at, size));
                assert!(result.is_err(), "size {size} at {at}: {result:?}");
            }
        }
        let count_too_big = with_size(file.len() - 8, 2);
        let result = order(&count_too_big);
        assert!(
            matches!(result, Err(LayoutError::Malformed { .. })),
            "{result:?}"
        );
    }

    #[test]
    fn unsupported_layouts_are_errors() {
        let (index, mdat) = (moov(&[stco(&[30])]), bx(b"mdat", &[0; 100]));
        let to_the_end = [&0u32.to_be_bytes()[..], b"mdat", &[0; 100], &index].concat();
        let cases = [
            [mdat.clone(), index.clone(), index.clone()].concat(),
            [mdat.clone(), bx(b"moof", &[]), index.clone()].concat(),
            mdat.clone(),
            [mdat.clone(), bx(b"moov", &bx(b"cmov", &[0; 8]))].concat(),
            [mdat.clone(), moov(&[bx(b"stsz", &[0; 12])])].concat(),
            [bx(b"moof", &[]), index.clone()].concat(),
            to_the_end,
        ];
        for case in cases {
            let result = order(&[ftyp(), case].concat());
            assert!(result.is_err(), "{result:?}");
        }
    }

    #[test]
    fn inconsistent_arguments_are_errors() {
        let file = index_at_end(&[30]);
        let (size, tail_start) = (file.len() as u64, MOOV_AT as u64);
        let tail = &file[MOOV_AT..];
        assert!(faststart_order(&file, size, tail_start - 1, tail).is_err());
        assert!(faststart_order(&file, size, tail_start, &tail[1..]).is_err());
        assert!(faststart_order(&file[..24], size, tail_start, tail).is_err());
        assert!(faststart_order(&file, size - 1, tail_start, tail).is_err());
    }

    /// An ffmpeg-made 3 s test file, deleted on drop.
    struct Sample {
        path: PathBuf,
        bytes: Vec<u8>,
    }

    impl Sample {
        /// `None`, with a note, when ffmpeg cannot make one.
        fn generate(name: &str, extra_args: &[&str]) -> Option<Sample> {
            let path = format!("mp4_order_{}_{name}.mp4", std::process::id());
            let path = std::env::temp_dir().join(path);
            let made = Command::new("ffmpeg")
                .args([
                    "-v",
                    "error",
                    "-y",
                    "-f",
                    "lavfi",
                    "-i",
                    "testsrc2=s=320x240:r=25",
                ])
                .args(["-f", "lavfi", "-i", "sine", "-t", "3"])
                .args(["-c:v", "libx264", "-preset", "ultrafast", "-c:a", "aac"])
                .args(extra_args)
                .arg(&path)
                .stdin(Stdio::null())
                .output();
            match made {
                Ok(output) if output.status.success() => {
                    let bytes = std::fs::read(&path).unwrap();
                    Some(Sample { path, bytes })
                }
                failed => {
                    eprintln!("skipping the real-file check: ffmpeg could not run: {failed:?}");
                    None
                }
            }
        }
    }

    impl Drop for Sample {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.path);
        }
    }

    /// Per-packet checksums from ffmpeg reading `file`, or `stdin` through a pipe.
    fn framemd5(file: Option<&Path>, stdin: &[u8]) -> Output {
        let input = file.map_or("pipe:0".into(), |path| path.display().to_string());
        let mut child = Command::new("ffmpeg")
            .args([
                "-v", "error", "-f", "mp4", "-i", &input, "-map", "0", "-c", "copy",
            ])
            .args(["-f", "framemd5", "-"])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (mut pipe, bytes) = (child.stdin.take().unwrap(), stdin.to_vec());
        // ffmpeg may stop reading early, so a broken pipe here is expected, not a failure.
        let writer = std::thread::spawn(move || drop(pipe.write_all(&bytes)));
        let output = child.wait_with_output().unwrap();
        writer.join().unwrap();
        output
    }

    #[test]
    fn real_index_at_end_file_plays_from_a_pipe_after_the_rewrite() {
        let Some(sample) = Sample::generate("plain", &[]) else {
            return;
        };
        let (file, size) = (&sample.bytes, sample.bytes.len() as u64);
        let Ok(HeadVerdict::IndexAtEnd { tail_start }) = read_head(&file[..64], size) else {
            panic!("ffmpeg's default mp4 should have its index at the end");
        };
        let tail = &file[tail_start as usize..];
        let pieces = faststart_order(&file[..64], size, tail_start, tail).unwrap();
        let rewritten = assemble(file, &pieces);
        assert_eq!(rewritten.len(), file.len());

        let from_file = framemd5(Some(&sample.path), &[]);
        assert!(from_file.status.success() && from_file.stdout.len() > 1000);
        let from_pipe = framemd5(None, &rewritten);
        let errors = String::from_utf8_lossy(&from_pipe.stderr);
        assert!(from_pipe.status.success(), "{errors}");
        assert!(
            from_pipe.stdout == from_file.stdout,
            "the rewrite plays differently: {errors}"
        );

        // ffmpeg 5.1 reads no packets at all here (and still exits 0): the rewrite matters.
        let as_is = framemd5(None, file);
        let errors = String::from_utf8_lossy(&as_is.stderr);
        match as_is.stdout == from_file.stdout {
            true => eprintln!("note: ffmpeg coped with the index-at-end file on a pipe"),
            false => eprintln!("index-at-end file as is on a pipe: {}", errors.trim()),
        }
    }

    #[test]
    fn real_faststart_file_is_index_first_and_plays_from_a_pipe() {
        let Some(sample) = Sample::generate("faststart", &["-movflags", "+faststart"]) else {
            return;
        };
        let verdict = read_head(&sample.bytes[..64], sample.bytes.len() as u64).unwrap();
        assert_eq!(verdict, HeadVerdict::IndexFirst);
        let from_file = framemd5(Some(&sample.path), &[]);
        assert!(from_file.status.success() && from_file.stdout.len() > 1000);
        assert!(framemd5(None, &sample.bytes).stdout == from_file.stdout);
    }

    /// xorshift64: enough randomness for mutations, without a dependency.
    pub(crate) struct XorShift(pub(crate) u64);

    impl XorShift {
        pub(crate) fn below(&mut self, n: usize) -> usize {
            self.0 ^= self.0 << 13;
            self.0 ^= self.0 >> 7;
            self.0 ^= self.0 << 17;
            (self.0 % n.max(1) as u64) as usize
        }
    }

    /// Where boxes of the types we know start (their size field), found by type name.
    fn box_starts(file: &[u8]) -> Vec<usize> {
        let kinds = b"ftypfreemdatmoovmvhdtraktkhdedtsmdiamdhdhdlrminfstblstsdstcoudta";
        let known = |kind: &[u8]| kinds.chunks(4).any(|known| known == kind);
        (4..file.len().saturating_sub(4))
            .filter(|&i| known(&file[i..i + 4]))
            .map(|i| i - 4)
            .collect()
    }

    /// Runs a file through the calls the way the caller would; panics only on broken promises.
    fn exercise(file: &[u8], rng: &mut XorShift) {
        let size = file.len() as u64;
        let mut head_len = rng.below(64).min(file.len());
        loop {
            match read_head(&file[..head_len], size) {
                Ok(HeadVerdict::NeedMore { head_len: more }) => {
                    assert!(
                        more > head_len as u64 && more <= size,
                        "NeedMore must make progress"
                    );
                    head_len = more as usize;
                }
                Ok(HeadVerdict::IndexAtEnd { tail_start }) => {
                    let tail = &file[tail_start as usize..];
                    if let Ok(pieces) = faststart_order(&file[..head_len], size, tail_start, tail) {
                        assert_eq!(assemble(file, &pieces).len(), file.len());
                    }
                    let wrong = rng.below(file.len());
                    let _ = faststart_order(file, size, wrong as u64, &file[wrong..]);
                    return;
                }
                _ => return,
            }
        }
    }

    #[test]
    fn mutated_files_never_panic() {
        let sample = Sample::generate("fuzz", &[]);
        let original = sample.map_or_else(|| index_at_end(&[30, 60]), |s| s.bytes.clone());
        let starts = box_starts(&original);
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            let mut file = original.clone();
            for _ in 0..=rng.below(3) {
                let at = starts[rng.below(starts.len())];
                match rng.below(4) {
                    0 => file.truncate(rng.below(file.len() + 1)),
                    1 if at + 8 <= file.len() => file[at + rng.below(8)] ^= 1 << rng.below(8),
                    2 if at + 4 <= file.len() => {
                        let size = [0, 1, 7, 8, 9, u32::MAX, rng.below(1 << 20) as u32];
                        file[at..at + 4].copy_from_slice(&size[rng.below(7)].to_be_bytes());
                    }
                    _ => {
                        if let Some(byte) = file.get_mut(rng.below(original.len())) {
                            *byte = rng.below(256) as u8;
                        }
                    }
                }
            }
            exercise(&file, &mut rng);
        }
    }
}
