//! Which bytes of an MP4 one peer needs to encode one time range of it.
//!
//! A long source is split into time ranges, each encoded by a different peer. Downloading the
//! whole object (gigabytes) to encode a few minutes of it wastes most of the transfer. Instead a
//! peer fetches the index (`moov`, with the other small top-level boxes and the `mdat` headers),
//! the bytes ffmpeg reads while probing the streams ([`probe_span`]: the first samples) and the
//! part of `mdat` holding every sample of every track its range needs ([`byte_span`]). It writes
//! them at their original offsets into a sparse file of the object's size and runs
//! `ffmpeg -ss SEEK -t LEN -i file`; ffmpeg seeks by the index and never reads the holes.
//!
//! The spans are deliberately generous: ffmpeg seeks every stream to the video keyframe before
//! the seek point, moves `-ss` by the file's start time, and reads past the end of the range
//! before it stops. Reading a hole would feed garbage to the decoder, so when in doubt we take
//! more bytes, and what we do not follow (fragments, several edits, compact sample sizes) is an
//! `Err`: the caller then downloads the whole object.
//!
//! Positions in `Malformed` errors from this module are offsets into the `moov` bytes.

use std::ops::Range;

use super::mp4_order::{
    array_at, find_index_in_tail, local_range, malformed, read_head, read_whole_header, too_large,
    BoxHeader, HeadVerdict, LayoutError, MAX_INDEX_BYTES,
};

type Res<T> = Result<T, LayoutError>;

/// How much earlier and later than strictly needed we take samples, in seconds: ffmpeg may pick
/// an earlier keyframe than we predict, decoders want audio pre-roll, and ffmpeg reads packets
/// past the end of `-t` (decoder delay, tracks interleaved by time) before it stops.
const MARGIN_S: f64 = 1.0;

/// The most samples, over all tracks, we walk (a few times). An hour at 60 fps is 216k video
/// samples; a constant-size `stsz` can claim four billion in a few bytes.
pub const MAX_SAMPLES: u64 = 10_000_000;

/// Where the `moov` box is in the object: `head` holds its first bytes (as many as [`read_head`]
/// asks for) and, when the index is at the end, `tail` holds bytes `[tail_start, size)`.
pub fn moov_location(
    head: &[u8],
    size: u64,
    tail_start: Option<u64>,
    tail: Option<&[u8]>,
) -> Res<Range<u64>> {
    let moov = match (read_head(head, size)?, tail_start.zip(tail)) {
        (HeadVerdict::IndexFirst, None) => {
            let object = BoxHeader {
                kind: *b"file",
                start: 0,
                body: 0,
                end: size,
            };
            child(head, &object, b"moov")?.ok_or(LayoutError::NoIndex)?
        }
        (HeadVerdict::IndexAtEnd { tail_start: at }, Some((start, tail)))
            if at == start && tail.len() as u64 == size - start =>
        {
            find_index_in_tail(tail, start, size)?
        }
        (HeadVerdict::NotMp4, _) => return Err(LayoutError::NoIndex),
        _ => return Err(LayoutError::BadArguments("does not fit read_head")),
    };
    Ok(moov.start..moov.end)
}

/// The first `mdat` box's body (after its header), from the object's head (as many bytes as
/// [`read_head`] asks for): ffmpeg walks every top-level box header, so a peer downloads
/// everything but the media, and only the media it needs.
pub fn first_media(head: &[u8], size: u64) -> Res<Range<u64>> {
    let object = BoxHeader {
        kind: *b"file",
        start: 0,
        body: 0,
        end: size,
    };
    let media = child(head, &object, b"mdat")?.ok_or(LayoutError::NoIndex)?;
    Ok(media.body..media.end)
}

/// The bytes of an MP4 a reader needs to decode `[start_s, end_s)` of every track after seeking
/// to `start_s` (`None`: to the end), given the whole `moov` box and the object's size.
///
/// One range from the lowest to the highest needed byte, so a badly interleaved file gives a
/// large span. The peer needs the [`probe_span`] too.
pub fn byte_span(moov: &[u8], start_s: f64, end_s: Option<f64>, size: u64) -> Res<Range<u64>> {
    let end_s = end_s.unwrap_or(f64::INFINITY);
    if !start_s.is_finite() || end_s.is_nan() || end_s < start_s {
        return Err(LayoutError::BadArguments("bad time range"));
    }
    let tracks = parse_moov(moov)?;
    let first_pts = tracks.iter().map(|t| t.first_pts);
    let start_time = first_pts.clone().fold(f64::INFINITY, f64::min);
    let latest_first = first_pts.fold(f64::NEG_INFINITY, f64::max);
    // ffmpeg seeks to `-ss` plus the file's start time (the earliest first timestamp), which
    // edit lists and composition offsets move either way; we widen the range both ways.
    let seek = start_s + start_time.min(0.0);
    // It seeks the video to its keyframe before that, then every other track to that keyframe's
    // time: all tracks start from the earliest of their keyframes.
    let (mut keyframe, mut shortest) = (f64::INFINITY, f64::INFINITY);
    for track in &tracks {
        keyframe = keyframe.min(track.key_before(seek)?);
        shortest = shortest.min(track.end()?);
    }
    // `-t` keeps LEN seconds after each stream's first frame after the seek point, which for a
    // stream starting late (an empty edit) is later than the seek point.
    let mut end = (start_s + start_time.max(0.0)).max(latest_first) + (end_s - start_s) + MARGIN_S;
    // A stream ending before that ends only at the end of the file, so ffmpeg reads on to it.
    if shortest < end {
        end = f64::INFINITY;
    }
    union(&tracks, keyframe - MARGIN_S, end, size)
}

/// The bytes ffmpeg reads before it seeks: while probing it reads packets from the start until
/// every track has one and the video has a decodable (sync) frame. Without them a sparse file
/// gives decode errors (and may give wrong stream parameters). Usually tens or hundreds of
/// kilobytes at the start of `mdat`.
pub fn probe_span(moov: &[u8], size: u64) -> Res<Range<u64>> {
    let tracks = parse_moov(moov)?;
    let mut first_key_end = f64::NEG_INFINITY;
    for track in &tracks {
        first_key_end = first_key_end.max(track.first_key_end()?);
    }
    union(&tracks, f64::NEG_INFINITY, first_key_end + MARGIN_S, size)
}

/// The union of every track's [`Track::needed`] bytes, clamped to the object.
fn union(tracks: &[Track], from: f64, to: f64, size: u64) -> Res<Range<u64>> {
    let (mut start, mut end) = (u64::MAX, 0);
    for track in tracks {
        let (first, last) = track.needed(from, to)?;
        (start, end) = (start.min(first), end.max(last));
    }
    Ok(start.min(end).min(size)..end.min(size))
}

/// `count` entries of `width` bytes, checked against their box.
#[derive(Debug, Clone, Copy)]
struct Table<'a> {
    entries: &'a [u8],
    width: usize,
    count: u32,
    /// Where the box starts in `moov`, for errors.
    at: u64,
}

impl Table<'_> {
    /// The `N` bytes at byte `field` of entry `i`, if there is such an entry.
    fn get<const N: usize>(&self, i: u32, field: usize) -> Option<[u8; N]> {
        let from = (i as usize).checked_mul(self.width)?.checked_add(field)?;
        let bytes = self.entries.get(from..from.checked_add(N)?)?;
        (i < self.count).then_some(bytes.try_into().ok()?)
    }

    fn u32(&self, i: u32, field: usize) -> Option<u32> {
        self.get(i, field).map(u32::from_be_bytes)
    }

    fn bad(&self, problem: &'static str) -> LayoutError {
        malformed(self.at, problem)
    }
}

/// A cursor through a run-length table of (count, value) entries (`stts`, `ctts`).
#[derive(Default)]
struct Run {
    entry: u32,
    left: u32,
    value: u32,
}

impl Run {
    fn next(&mut self, table: &Table) -> Res<u32> {
        // Bounded by the entry count: each turn moves to the next entry.
        while self.left == 0 {
            let count = table.u32(self.entry, 0);
            self.left = count.ok_or(table.bad("table covers fewer samples than stsz"))?;
            self.value = table.u32(self.entry, 4).unwrap_or(0);
            self.entry = self.entry.saturating_add(1);
        }
        self.left -= 1;
        Ok(self.value)
    }
}

/// One track's sample tables, borrowed from `moov`.
#[derive(Debug)]
struct Track<'a> {
    timescale: f64,
    /// Seconds to add to a media time to get the presentation time (from the edit list).
    shift: f64,
    /// Presentation time of the first sample, in seconds.
    first_pts: f64,
    count: u32,
    stts: Table<'a>,
    ctts: Option<Table<'a>>,
    stss: Option<Table<'a>>,
    stsc: Table<'a>,
    /// Sample sizes (`width` 0 when every sample has size `fixed_size`, then non-zero).
    sizes: Table<'a>,
    fixed_size: u32,
    /// `stco` (`width` 4) or `co64` (`width` 8) entries.
    chunks: Table<'a>,
}

/// What we need of one sample; times are presentation seconds.
struct Sample {
    /// The earlier of its decode and composition time.
    start: f64,
    /// The later of its decode and composition time, plus its duration.
    end: f64,
    decode: f64,
    bytes: (u64, u64),
    sync: bool,
}

impl Track<'_> {
    /// The start of the last sync sample at or before the first sample that ends after `t`:
    /// where a reader seeking this track to `t` starts decoding, or earlier.
    fn key_before(&self, t: f64) -> Res<f64> {
        let mut key = f64::INFINITY;
        self.walk(|sample| {
            if sample.sync || key.is_infinite() {
                key = sample.start;
            }
            sample.end <= t
        })?;
        Ok(key)
    }

    /// When the last sample ends.
    fn end(&self) -> Res<f64> {
        let mut end = f64::NEG_INFINITY;
        self.walk(|sample| {
            end = end.max(sample.end);
            true
        })?;
        Ok(end)
    }

    /// The end of the first sync sample (of the whole track if there is none).
    fn first_key_end(&self) -> Res<f64> {
        let mut end = f64::NEG_INFINITY;
        self.walk(|sample| {
            end = sample.end;
            !sample.sync
        })?;
        Ok(end)
    }

    /// The bytes of the samples from the last sync sample before the first one ending after
    /// `from`, through the first one decoded at or after `to`.
    fn needed(&self, from: f64, to: f64) -> Res<(u64, u64)> {
        let (mut span, mut started) = ((u64::MAX, 0), false);
        self.walk(|sample| {
            let (start, end) = sample.bytes;
            // Before the range, each sync sample is a new place to start decoding from.
            if !started && sample.sync {
                span = (start, end);
            }
            span = (span.0.min(start), span.1.max(end));
            started |= sample.end > from;
            !started || sample.decode < to
        })?;
        Ok(span)
    }

    /// Calls `more` with each sample in decode order while it returns true, reading the tables
    /// as it goes instead of materializing them.
    fn walk(&self, mut more: impl FnMut(&Sample) -> bool) -> Res<()> {
        let (mut stts, mut ctts, mut decode_time) = (Run::default(), Run::default(), 0u64);
        let (mut next_sync, mut stsc_entry) = (0u32, 0u32);
        // The current chunk's number (1-based), its samples left and its next sample's offset.
        let (mut chunk, mut chunk_left, mut offset) = (0u32, 0u32, 0u64);
        for index in 0..self.count {
            let duration = stts.next(&self.stts)?;
            // ffmpeg reads version 0 offsets as signed too; negative ones are real.
            let composition = match &self.ctts {
                Some(table) => f64::from(ctts.next(table)? as i32),
                None => 0.0,
            };
            let sync = self.stss.is_none_or(|stss| {
                let number = index + 1; // `count` <= MAX_SAMPLES: no overflow.
                while stss.u32(next_sync, 0).is_some_and(|n| n < number) {
                    next_sync = next_sync.saturating_add(1);
                }
                stss.u32(next_sync, 0) == Some(number)
            });
            while chunk_left == 0 {
                let at = match self.chunks.width {
                    8 => self.chunks.get(chunk, 0).map(u64::from_be_bytes),
                    _ => self.chunks.u32(chunk, 0).map(u64::from),
                };
                offset = at.ok_or(self.chunks.bad("more samples than chunks"))?;
                chunk += 1; // Below the chunk count: no overflow.
                let stsc = &self.stsc;
                let next_first = |entry: u32| stsc.u32(entry.saturating_add(1), 0);
                while next_first(stsc_entry).is_some_and(|first| first <= chunk) {
                    stsc_entry += 1;
                }
                chunk_left = stsc.u32(stsc_entry, 4).unwrap_or(0);
            }
            chunk_left -= 1;
            let size = match self.fixed_size {
                0 => self.sizes.u32(index, 0),
                fixed => Some(fixed),
            };
            let start = offset;
            let size = size.ok_or(self.sizes.bad("stsz is cut off"))?;
            offset = start
                .checked_add(size.into())
                .ok_or(self.chunks.bad("offset overflow"))?;
            // At most MAX_SAMPLES durations below 2^32: far from overflowing.
            let dts = decode_time as f64;
            decode_time += u64::from(duration);
            let seconds = |ticks: f64| ticks / self.timescale + self.shift;
            let sample = Sample {
                start: seconds(dts + composition.min(0.0)),
                end: seconds(dts + composition.max(0.0) + f64::from(duration)),
                decode: seconds(dts),
                bytes: (start, offset),
                sync,
            };
            if !more(&sample) {
                break;
            }
        }
        Ok(())
    }
}

/// The first child of `parent` of type `kind`, if any.
fn child(moov: &[u8], parent: &BoxHeader, kind: &[u8; 4]) -> Res<Option<BoxHeader>> {
    let mut at = parent.body;
    while at < parent.end {
        let header = read_whole_header(moov, 0, at, parent.end)?;
        if &header.kind == kind {
            return Ok(Some(header));
        }
        at = header.end;
    }
    Ok(None)
}

/// Like `child`, for a child a valid file must have.
fn must(moov: &[u8], parent: &BoxHeader, kind: &[u8; 4]) -> Res<BoxHeader> {
    let missing = malformed(parent.start, "a required box is missing");
    child(moov, parent, kind)?.ok_or(missing)
}

/// The `N` bytes at `at`, which must lie inside `header`'s box.
fn field<const N: usize>(moov: &[u8], header: &BoxHeader, at: u64) -> Res<[u8; N]> {
    let inside = at + N as u64 <= header.end; // Positions in `moov` plus a few bytes.
    let bytes = array_at(moov, 0, at).filter(|_| inside);
    bytes.ok_or(malformed(header.start, "box is too short for its fields"))
}

/// A full box's table: after version and flags, `skip` bytes, a u32 count, then the entries.
fn table<'a>(moov: &'a [u8], header: &BoxHeader, skip: u64, width: usize) -> Res<Table<'a>> {
    let count_at = header.body + 4 + skip;
    let count = u32::from_be_bytes(field(moov, header, count_at)?);
    let first = count_at + 4;
    let end = first + u64::from(count) * width as u64; // At most 2^32 * 20 past `first`.
    let entries = local_range(0, first, end).filter(|_| end <= header.end);
    let entries = entries.and_then(|range| moov.get(range));
    let entries = entries.ok_or(malformed(
        header.start,
        "entry count is larger than its box",
    ))?;
    let at = header.start;
    Ok(Table {
        entries,
        width,
        count,
        at,
    })
}

/// The timescale of an `mvhd` or `mdhd` (same layout up to it).
fn timescale(moov: &[u8], header: &BoxHeader) -> Res<f64> {
    let [version] = field(moov, header, header.body)?;
    let at = header.body + if version == 1 { 20 } else { 12 };
    match u32::from_be_bytes(field(moov, header, at)?) {
        0 => Err(malformed(header.start, "timescale is zero")),
        timescale => Ok(f64::from(timescale)),
    }
}

/// Seconds to add to a media time to get the presentation time: the leading empty edits minus
/// the first media edit's start. Trailing empty edits only pad the end; a second media edit
/// (cuts, repeats) or a rate other than 1 maps time in ways we do not follow.
fn edit_shift(moov: &[u8], elst: &BoxHeader, movie: Option<f64>, media: f64) -> Res<f64> {
    let [version] = field(moov, elst, elst.body)?;
    let long = version == 1;
    let edits = table(moov, elst, 0, if long { 20 } else { 12 })?;
    let (mut empty, mut media_time) = (0.0, None);
    for i in 0..edits.count {
        let (duration, time) = match long {
            true => (
                edits.get(i, 0).map(u64::from_be_bytes),
                edits.get(i, 8).map(i64::from_be_bytes),
            ),
            false => (
                edits.u32(i, 0).map(u64::from),
                edits.get(i, 4).map(|t| i32::from_be_bytes(t).into()),
            ),
        };
        let rate = edits.u32(i, if long { 16 } else { 8 });
        let (Some(duration), Some(time), Some(rate)) = (duration, time, rate) else {
            return Err(edits.bad("edit list is cut off"));
        };
        match (time, media_time) {
            (-1, None) => {
                let movie = movie.ok_or(malformed(0, "empty edit but no movie timescale"))?;
                empty += duration as f64 / movie;
            }
            (-1, Some(_)) => {}
            (_, Some(_)) => return Err(LayoutError::Unsupported("several media edits")),
            (_, None) if time < 0 || rate != 1 << 16 => {
                return Err(LayoutError::Unsupported("edit with a rate other than 1"));
            }
            (_, None) => media_time = Some(time),
        }
    }
    Ok(empty - media_time.unwrap_or(0) as f64 / media)
}

/// Every track with samples in `moov` (the whole box).
fn parse_moov(moov: &[u8]) -> Res<Vec<Track<'_>>> {
    let len = moov.len() as u64;
    if len > MAX_INDEX_BYTES {
        return Err(too_large("moov", len, MAX_INDEX_BYTES));
    }
    let root = read_whole_header(moov, 0, 0, len)?;
    if &root.kind != b"moov" || root.end != len {
        return Err(LayoutError::BadArguments("the bytes are not one moov box"));
    }
    let mvhd = child(moov, &root, b"mvhd")?;
    let movie = mvhd.map(|mvhd| timescale(moov, &mvhd)).transpose()?;
    let (mut tracks, mut samples, mut at) = (Vec::new(), 0, root.body);
    while at < root.end {
        let header = read_whole_header(moov, 0, at, root.end)?;
        match &header.kind {
            // Fragments keep their samples in `moof` boxes; cmov hides the tables.
            b"mvex" => return Err(LayoutError::Unsupported("fragmented mp4 (mvex)")),
            b"cmov" => return Err(LayoutError::Unsupported("compressed moov (cmov)")),
            b"trak" => {
                if let Some(track) = parse_track(moov, &header, movie)? {
                    samples += u64::from(track.count);
                    if samples > MAX_SAMPLES {
                        return Err(too_large("samples in moov", samples, MAX_SAMPLES));
                    }
                    tracks.push(track);
                }
            }
            _ => {}
        }
        at = header.end;
    }
    match tracks.is_empty() {
        true => Err(malformed(0, "moov has no samples")),
        false => Ok(tracks),
    }
}

/// One `trak`'s tables, or `None` if it has no samples.
fn parse_track<'a>(moov: &'a [u8], trak: &BoxHeader, movie: Option<f64>) -> Res<Option<Track<'a>>> {
    let mdia = must(moov, trak, b"mdia")?;
    let timescale = timescale(moov, &must(moov, &mdia, b"mdhd")?)?;
    let stbl = must(moov, &must(moov, &mdia, b"minf")?, b"stbl")?;
    let optional = |kind, width| -> Res<Option<Table<'a>>> {
        let header = child(moov, &stbl, kind)?;
        header
            .map(|header| table(moov, &header, 0, width))
            .transpose()
    };
    if child(moov, &stbl, b"stz2")?.is_some() {
        return Err(LayoutError::Unsupported("compact sample sizes (stz2)"));
    }
    let stsz = must(moov, &stbl, b"stsz")?;
    let fixed_size = u32::from_be_bytes(field(moov, &stsz, stsz.body + 4)?);
    let sizes = table(moov, &stsz, 4, if fixed_size == 0 { 4 } else { 0 })?;
    if sizes.count == 0 {
        return Ok(None);
    }
    let chunks = match (optional(b"stco", 4)?, optional(b"co64", 8)?) {
        (Some(chunks), None) | (None, Some(chunks)) => chunks,
        _ => return Err(malformed(stbl.start, "not exactly one stco/co64")),
    };
    let stsc = table(moov, &must(moov, &stbl, b"stsc")?, 0, 12)?;
    if stsc.u32(0, 0) != Some(1) {
        return Err(stsc.bad("stsc does not start at the first chunk"));
    }
    let ctts = optional(b"ctts", 8)?;
    let elst = match child(moov, trak, b"edts")? {
        Some(edts) => child(moov, &edts, b"elst")?,
        None => None,
    };
    let shift = elst.map_or(Ok(0.0), |elst| edit_shift(moov, &elst, movie, timescale))?;
    let first_composition = ctts.and_then(|t| t.u32(0, 4)).map_or(0, |c| c as i32);
    Ok(Some(Track {
        timescale,
        shift,
        first_pts: shift + f64::from(first_composition) / timescale,
        count: sizes.count,
        stts: table(moov, &must(moov, &stbl, b"stts")?, 0, 8)?,
        ctts,
        stss: optional(b"stss", 4)?,
        stsc,
        sizes,
        fixed_size,
        chunks,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::input::mp4_order::tests::XorShift;
    use std::path::PathBuf;
    use std::process::{Command, Output, Stdio};
    use std::sync::OnceLock;

    fn bx(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let size = u32::try_from(8 + body.len()).unwrap();
        [&size.to_be_bytes()[..], kind, body].concat()
    }

    /// A full box: version, zero flags, then `body`.
    fn full(kind: &[u8; 4], version: u8, body: &[u8]) -> Vec<u8> {
        bx(kind, &[&[version, 0, 0, 0][..], body].concat())
    }

    fn words(values: &[u32]) -> Vec<u8> {
        values.iter().flat_map(|v| v.to_be_bytes()).collect()
    }

    /// A table box: an entry count, then the rows.
    fn rows(kind: &[u8; 4], rows: &[&[u32]]) -> Vec<u8> {
        let entries: Vec<u8> = rows.iter().flat_map(|row| words(row)).collect();
        full(kind, 0, &[words(&[rows.len() as u32]), entries].concat())
    }

    fn stsz(fixed: u32, count: u32, sizes: &[u32]) -> Vec<u8> {
        full(b"stsz", 0, &words(&[&[fixed, count][..], sizes].concat()))
    }

    fn co64(offsets: &[u64]) -> Vec<u8> {
        let entries: Vec<u8> = offsets.iter().flat_map(|o| o.to_be_bytes()).collect();
        full(
            b"co64",
            0,
            &[words(&[offsets.len() as u32]), entries].concat(),
        )
    }

    /// An `edts` with one `elst` of (segment duration, media time) edits at rate 1.
    fn edts(edits: &[(u32, i32)]) -> Vec<u8> {
        let edits: Vec<[u32; 3]> = edits.iter().map(|&(d, t)| [d, t as u32, 1 << 16]).collect();
        let edits: Vec<&[u32]> = edits.iter().map(|e| &e[..]).collect();
        bx(b"edts", &rows(b"elst", &edits))
    }

    /// A track of the given media timescale, with `extra` boxes before `mdia`.
    fn trak(timescale: u32, extra: &[u8], stbl: &[Vec<u8>]) -> Vec<u8> {
        let mdhd = full(b"mdhd", 0, &words(&[0, 0, timescale, 0, 0]));
        let minf = bx(b"minf", &bx(b"stbl", &stbl.concat()));
        bx(
            b"trak",
            &[extra, &bx(b"mdia", &[mdhd, minf].concat())].concat(),
        )
    }

    /// A moov with a movie timescale of 1000.
    fn moov(traks: &[Vec<u8>]) -> Vec<u8> {
        let mvhd = full(b"mvhd", 0, &words(&[0, 0, 1000, 0, 0]));
        bx(b"moov", &[mvhd, traks.concat()].concat())
    }

    /// 8 samples of 1 s (timescale 10) sized 10..=17, in chunks of 2, 3 and 3 samples.
    fn changing_chunks() -> Vec<Vec<u8>> {
        vec![
            rows(b"stts", &[&[8, 10]]),
            rows(b"stsc", &[&[1, 2, 1], &[2, 3, 1]]),
            stsz(0, 8, &[10, 11, 12, 13, 14, 15, 16, 17]),
            rows(b"stco", &[&[1000], &[2000], &[3000]]),
        ]
    }

    fn one_track(timescale: u32, extra: &[u8], stbl: &[Vec<u8>]) -> Vec<u8> {
        moov(&[trak(timescale, extra, stbl)])
    }

    #[test]
    fn samples_map_to_chunks_as_samples_per_chunk_changes() {
        let index = one_track(10, &[], &changing_chunks());
        // Needed: from the sample covering 4 s minus the margin (sample 3, at 2000 + 12) to
        // the first one decoded at or after 4.5 s plus the margin (sample 6, 3015..3031).
        assert_eq!(
            byte_span(&index, 4.0, Some(4.5), 10_000).unwrap(),
            2012..3031
        );
        assert_eq!(
            byte_span(&index, 0.0, Some(0.5), 10_000).unwrap(),
            1000..2012
        );
        assert_eq!(byte_span(&index, 4.0, None, 10_000).unwrap(), 2012..3048);
        assert_eq!(byte_span(&index, 4.0, None, 3040).unwrap(), 2012..3040);
        assert_eq!(byte_span(&index, 50.0, None, 10_000).unwrap(), 3015..3048);
        assert_eq!(probe_span(&index, 10_000).unwrap(), 1000..2012);

        let mut tables = changing_chunks();
        let base = 5 << 32;
        tables[3] = co64(&[base + 1000, base + 2000, base + 3000]);
        let index = one_track(10, &[], &tables);
        let span = byte_span(&index, 4.0, Some(4.5), u64::MAX).unwrap();
        assert_eq!(span, base + 2012..base + 3031);
    }

    /// 10 samples of 1 s and 100 bytes each, in chunks of 2 at 500, 700, ...
    fn constant_size(stss: Option<&[u32]>) -> Vec<u8> {
        let mut tables = vec![
            rows(b"stts", &[&[10, 1]]),
            rows(b"stsc", &[&[1, 2, 1]]),
            stsz(100, 10, &[]),
            rows(b"stco", &[&[500], &[700], &[900], &[1100], &[1300]]),
        ];
        if let Some(sync) = stss {
            let sync: Vec<[u32; 1]> = sync.iter().map(|&s| [s]).collect();
            tables.push(rows(
                b"stss",
                &sync.iter().map(|s| &s[..]).collect::<Vec<_>>(),
            ));
        }
        one_track(1, &[], &tables)
    }

    #[test]
    fn constant_sizes_and_sync_samples() {
        // Every sample is a sync sample: from sample 5 (covering 6 s minus the margin).
        let index = constant_size(None);
        assert_eq!(byte_span(&index, 6.0, Some(6.5), 2000).unwrap(), 1000..1400);
        // Keyframes at samples 0, 4 and 8: ffmpeg starts at sample 4 (4 s), and the margin
        // before that reaches back to the keyframe at 0.
        let index = constant_size(Some(&[1, 5, 9]));
        assert_eq!(byte_span(&index, 6.0, Some(6.5), 2000).unwrap(), 500..1400);
        assert_eq!(probe_span(&index, 2000).unwrap(), 500..800);
        // A first keyframe at sample 2 keeps the probe reading until a second after it.
        let index = constant_size(Some(&[3]));
        assert_eq!(probe_span(&index, 2000).unwrap(), 500..1000);
    }

    /// 20 samples of 1 s and 100 bytes each, from offset 0, with an optional edit list.
    fn edited(extra: &[u8]) -> Vec<u8> {
        one_track(1, extra, &edited_tables(0))
    }

    /// `count` samples of 1 s and 100 bytes each, in one chunk at `offset`.
    fn edited_tables(offset: u32) -> Vec<Vec<u8>> {
        seconds(20, offset)
    }

    fn seconds(count: u32, offset: u32) -> Vec<Vec<u8>> {
        vec![
            rows(b"stts", &[&[count, 1]]),
            rows(b"stsc", &[&[1, count, 1]]),
            stsz(100, count, &[]),
            rows(b"stco", &[&[offset]]),
        ]
    }

    #[test]
    fn a_track_ending_early_makes_ffmpeg_read_to_the_end() {
        // 20 s of samples at 5000.., and 5 s at 0..500.
        let short = moov(&[
            trak(1, &[], &seconds(20, 5000)),
            trak(1, &[], &seconds(5, 0)),
        ]);
        assert_eq!(byte_span(&short, 1.0, Some(2.0), 9999).unwrap(), 0..5400);
        // Up to 7 s with the margin, but the short track ends at 5 s: to the end of the long one.
        assert_eq!(byte_span(&short, 4.5, Some(6.0), 9999).unwrap(), 300..7000);
    }

    #[test]
    fn edit_lists_shift_the_window() {
        assert_eq!(
            byte_span(&edited(&[]), 10.0, Some(11.0), 9999).unwrap(),
            900..1300
        );
        // A 3 s empty edit: media time t plays at t + 3, and ffmpeg adds that start time to -ss.
        let delayed = edited(&edts(&[(3000, -1), (17000, 0)]));
        assert_eq!(
            byte_span(&delayed, 10.0, Some(11.0), 9999).unwrap(),
            600..1300
        );
        // Media from 5 s on: media time t plays at t - 5.
        let trimmed = edited(&edts(&[(15000, 5)]));
        assert_eq!(
            byte_span(&trimmed, 10.0, Some(11.0), 9999).unwrap(),
            900..1800
        );
        // ffmpeg's -t counts from a late stream's first frame: the other tracks go on as long.
        let late = trak(1, &edts(&[(3000, -1), (17000, 0)]), &edited_tables(5000));
        let both = moov(&[trak(1, &[], &edited_tables(0)), late]);
        assert_eq!(byte_span(&both, 0.0, Some(2.0), 9999).unwrap(), 0..5400);
        // What we do not follow is an error, so the caller downloads everything.
        for edits in [
            &[(5000, 0), (5000, 10)][..],
            &[(5000, 0), (0, -1), (5000, 3)],
        ] {
            let result = byte_span(&edited(&edts(edits)), 1.0, None, 9999);
            assert!(
                matches!(result, Err(LayoutError::Unsupported(_))),
                "{result:?}"
            );
        }
        let mut fast = edts(&[(5000, 0)]);
        let rate_at = fast.len() - 4;
        fast[rate_at..].copy_from_slice(&(2u32 << 16).to_be_bytes());
        assert!(byte_span(&edited(&fast), 1.0, None, 9999).is_err());
        // An empty edit needs the movie timescale.
        let no_mvhd = bx(b"moov", &trak(1, &edts(&[(3000, -1), (1, 0)]), &[])[..]);
        assert!(byte_span(&no_mvhd, 1.0, None, 9999).is_err());
    }

    #[test]
    fn composition_offsets_count_as_presentation_times() {
        // Sample 3 is decoded at 3 s but shown at 7 s, so a window at 7.5 s needs it.
        let tables = |ctts: bool| {
            let mut tables = vec![
                rows(b"stts", &[&[10, 1]]),
                rows(b"stsc", &[&[1, 10, 1]]),
                stsz(100, 10, &[]),
                rows(b"stco", &[&[0]]),
            ];
            if ctts {
                tables.push(rows(b"ctts", &[&[3, 0], &[1, 4], &[6, 0]]));
            }
            tables
        };
        let plain = one_track(1, &[], &tables(false));
        assert_eq!(byte_span(&plain, 7.5, Some(8.0), 9999).unwrap(), 600..1000);
        let reordered = one_track(1, &[], &tables(true));
        assert_eq!(
            byte_span(&reordered, 7.5, Some(8.0), 9999).unwrap(),
            200..1000
        );
    }

    /// `changing_chunks` with table `i` replaced (or removed, for an empty box).
    fn with_table(i: usize, table: Vec<u8>) -> Vec<u8> {
        let mut tables = changing_chunks();
        tables[i] = table;
        one_track(10, &[], &tables)
    }

    #[test]
    fn malformed_tables_are_errors() {
        let too_many_sizes = full(b"stsz", 0, &words(&[0, 9, 10, 11, 12, 13, 14, 15, 16, 17]));
        let mut bad_timescale = one_track(10, &[], &changing_chunks());
        let at = bad_timescale.windows(4).position(|w| w == b"mdhd").unwrap() + 16;
        bad_timescale[at..at + 4].copy_from_slice(&0u32.to_be_bytes());
        let fragmented = bx(
            b"moov",
            &[bx(b"mvex", &[]), trak(10, &[], &changing_chunks())].concat(),
        );
        let huge_count = full(b"stts", 0, &words(&[u32::MAX, 8, 10]));
        let cases = [
            with_table(2, too_many_sizes),
            with_table(0, rows(b"stts", &[&[7, 10]])),
            with_table(3, rows(b"stco", &[&[1000], &[2000]])),
            with_table(1, rows(b"stsc", &[&[2, 2, 1]])),
            with_table(1, rows(b"stsc", &[])),
            with_table(3, bx(b"free", &[])),
            with_table(2, full(b"stz2", 0, &[0; 8])),
            with_table(2, stsz(1, 20_000_000, &[])),
            with_table(0, huge_count),
            with_table(0, full(b"stts", 0, &[0, 0])),
            [moov(&[trak(10, &[], &changing_chunks())]), co64(&[1])].concat(),
            bad_timescale,
            fragmented,
            bx(b"moov", &[]),
            bx(b"free", &[]),
            vec![],
        ];
        for (i, index) in cases.iter().enumerate() {
            let result = byte_span(index, 0.0, None, 10_000);
            assert!(result.is_err(), "case {i}: {result:?}");
        }
        // Both stco and co64 in one table.
        let mut tables = changing_chunks();
        tables.push(co64(&[1000, 2000, 3000]));
        assert!(byte_span(&one_track(10, &[], &tables), 0.0, None, 10_000).is_err());

        let index = one_track(10, &[], &changing_chunks());
        for (start, end) in [(f64::NAN, None), (2.0, Some(1.0)), (0.0, Some(f64::NAN))] {
            let result = byte_span(&index, start, end, 10_000);
            assert!(matches!(result, Err(LayoutError::BadArguments(_))));
        }
        // Cut off anywhere, as it is or with the moov size fixed up: an error, not a panic.
        for len in 0..index.len() {
            assert!(byte_span(&index[..len], 0.0, None, 10_000).is_err());
            let mut cut = index[..len].to_vec();
            if len >= 8 {
                cut[..4].copy_from_slice(&(len as u32).to_be_bytes());
            }
            let _ = byte_span(&cut, 0.0, None, 10_000);
        }
    }

    #[test]
    fn moov_is_found_in_the_head_or_the_tail() {
        let index = one_track(10, &[], &changing_chunks());
        let (ftyp, mdat) = (bx(b"ftyp", b"isom\0\0\x02\0"), bx(b"mdat", &[0; 50]));
        let first = [ftyp.clone(), index.clone(), mdat.clone()].concat();
        let size = first.len() as u64;
        let moov_end = (ftyp.len() + index.len()) as u64;
        let found = moov_location(&first, size, None, None).unwrap();
        assert_eq!(found, ftyp.len() as u64..moov_end);

        let last = [ftyp.clone(), mdat.clone(), index.clone()].concat();
        let tail_start = (ftyp.len() + mdat.len()) as u64;
        let tail = &last[tail_start as usize..];
        let found = moov_location(&last[..40], size, Some(tail_start), Some(tail)).unwrap();
        assert_eq!(found, tail_start..size);
        assert!(moov_location(&last[..40], size, None, None).is_err());
        assert!(moov_location(&last, size, Some(tail_start - 1), Some(tail)).is_err());
        assert!(moov_location(&first[..4], size, None, None).is_err());
    }

    /// A file deleted on drop.
    struct TempFile(PathBuf);

    impl TempFile {
        fn new(name: &str, bytes: Option<&[u8]>) -> TempFile {
            let name = format!("mp4_span_{}_{name}.mp4", std::process::id());
            let file = TempFile(std::env::temp_dir().join(name));
            if let Some(bytes) = bytes {
                std::fs::write(&file.0, bytes).unwrap();
            }
            file
        }
    }

    impl Drop for TempFile {
        fn drop(&mut self) {
            let _ = std::fs::remove_file(&self.0);
        }
    }

    fn ffmpeg(args: &[&str]) -> std::io::Result<Output> {
        let mut command = Command::new("ffmpeg");
        command.args(["-v", "error", "-nostdin", "-y"]).args(args);
        command.stdin(Stdio::null()).output()
    }

    const LAVFI: [&str; 8] = [
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=320x240:r=25",
        "-f",
        "lavfi",
        "-i",
        "sine",
    ];

    /// Runs ffmpeg, or says why not (`None`: skip the test).
    fn make(name: &str, args: &[&str]) -> Option<Vec<u8>> {
        let out = TempFile::new(name, None);
        let path = out.0.display().to_string();
        match ffmpeg(&[args, &[&path]].concat()) {
            Ok(output) if output.status.success() => Some(std::fs::read(&out.0).unwrap()),
            failed => {
                eprintln!("skipping the real-file checks: ffmpeg could not run: {failed:?}");
                None
            }
        }
    }

    /// A 60 s H.264 (keyframes every 2 s, no B-frames) and AAC file, made once.
    fn plain_file() -> Option<&'static [u8]> {
        static PLAIN: OnceLock<Option<Vec<u8>>> = OnceLock::new();
        let args = [
            "-t",
            "60",
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-g",
            "50",
        ];
        let make = || make("plain", &[&LAVFI[..], &args, &["-c:a", "aac"]].concat());
        PLAIN.get_or_init(make).as_deref()
    }

    /// Like `plain_file` with B-frames (`ctts`, a video edit with a media time) and the video
    /// delayed by 1.5 s (an empty edit).
    fn reordered_and_delayed_file() -> Option<Vec<u8>> {
        let args = ["-t", "60", "-c:v", "libx264", "-preset", "fast", "-g", "50"];
        let bframes = make("bframes", &[&LAVFI[..], &args, &["-c:a", "aac"]].concat())?;
        let input = TempFile::new("bframes_in", Some(&bframes));
        let input = input.0.display().to_string();
        let remux = ["-itsoffset", "1.5", "-i", &input, "-i", &input];
        make(
            "delayed",
            &[&remux[..], &["-map", "0:v", "-map", "1:a", "-c", "copy"]].concat(),
        )
    }

    fn top_level(file: &[u8]) -> Vec<BoxHeader> {
        let (mut boxes, size) = (vec![], file.len() as u64);
        while boxes.last().map_or(0, |b: &BoxHeader| b.end) < size {
            let at = boxes.last().map_or(0, |b| b.end);
            boxes.push(read_whole_header(file, 0, at, size).unwrap());
        }
        boxes
    }

    fn moov_of(file: &[u8]) -> &[u8] {
        let moov = top_level(file)
            .into_iter()
            .find(|b| &b.kind == b"moov")
            .unwrap();
        &file[moov.start as usize..moov.end as usize]
    }

    /// What a peer writes: the boxes other than `mdat`, the `mdat` headers and `spans`; 0xFF
    /// garbage elsewhere, so that reading a hole shows up as errors or different packets.
    fn sparse_copy(file: &[u8], spans: &[Range<u64>]) -> Vec<u8> {
        let mut copy = vec![0xFF; file.len()];
        let mut keep = |range: Range<u64>| {
            let range = range.start as usize..range.end as usize;
            copy[range.clone()].copy_from_slice(&file[range]);
        };
        for b in top_level(file) {
            keep(b.start..if &b.kind == b"mdat" { b.body } else { b.end });
        }
        spans.iter().cloned().for_each(keep);
        copy
    }

    /// Per-packet (`-c copy`) or per-decoded-video-frame checksums of a seek into `file`.
    fn framemd5(file: &TempFile, start: f64, end: Option<f64>, decode: bool) -> Output {
        let (start_arg, path) = (start.to_string(), file.0.display().to_string());
        let len = end.map(|end| (end - start).to_string());
        let mut args = vec!["-ss", &start_arg];
        if let Some(len) = &len {
            args.extend(["-t", len]);
        }
        args.extend(["-i", &path]);
        args.extend(if decode {
            &["-map", "0:v"][..]
        } else {
            &["-map", "0", "-c", "copy"]
        });
        args.extend(["-f", "framemd5", "-"]);
        ffmpeg(&args).unwrap()
    }

    /// Seeks into `file` and into sparse copies holding only the spans; asserts ffmpeg sees the same.
    fn plays_the_same_from_the_spans(name: &str, file: &[u8], windows: &[(f64, Option<f64>)]) {
        let (moov, size) = (moov_of(file), file.len() as u64);
        let original = TempFile::new(name, Some(file));
        let probe = probe_span(moov, size).unwrap();
        eprintln!(
            "{name}: {size} bytes, moov {}, probe span {probe:?}",
            moov.len()
        );
        for &(start, end) in windows {
            let span = byte_span(moov, start, end, size).unwrap();
            let (len, share) = (
                span.end - span.start,
                (span.end - span.start) as f64 / size as f64,
            );
            eprintln!(
                "{name}: {start}..{end:?}: span {span:?}, {len} bytes, {:.1}%",
                share * 100.0
            );
            if end.is_some_and(|end| end - start <= 10.0) {
                assert!(share < 0.4, "{share}");
            }
            let sparse = TempFile::new(
                &format!("{name}_sparse"),
                Some(&sparse_copy(file, &[probe.clone(), span])),
            );
            for decode in [false, true] {
                let want = framemd5(&original, start, end, decode);
                assert!(want.status.success() && want.stdout.len() > 500, "{want:?}");
                let got = framemd5(&sparse, start, end, decode);
                let errors = String::from_utf8_lossy(&got.stderr);
                assert!(
                    got.status.success() && errors.is_empty(),
                    "{start}..{end:?}: {errors}"
                );
                assert!(
                    got.stdout == want.stdout,
                    "{start}..{end:?} plays differently"
                );
            }
        }
    }

    const WINDOWS: [(f64, Option<f64>); 4] = [
        (20.0, Some(30.0)),
        (0.0, Some(8.0)),
        (52.0, None),
        (33.3, Some(41.7)),
    ];

    #[test]
    fn real_file_plays_the_same_from_its_spans() {
        let Some(file) = plain_file() else { return };
        plays_the_same_from_the_spans("plain", file, &WINDOWS);

        // The check notices holes: without the probe span, or with the span cut short.
        let (moov, size) = (moov_of(file), file.len() as u64);
        let span = byte_span(moov, 20.0, Some(30.0), size).unwrap();
        let original = TempFile::new("control", Some(file));
        let want = framemd5(&original, 20.0, Some(30.0), true);
        let cut = span.start + (span.end - span.start) / 2..span.end;
        for spans in [
            vec![span.clone()],
            vec![probe_span(moov, size).unwrap(), cut],
        ] {
            let sparse = TempFile::new("control_sparse", Some(&sparse_copy(file, &spans)));
            let got = framemd5(&sparse, 20.0, Some(30.0), true);
            assert!(
                !got.stderr.is_empty() || got.stdout != want.stdout,
                "{spans:?}"
            );
        }
    }

    #[test]
    fn real_file_with_b_frames_and_edit_lists_plays_the_same_from_its_spans() {
        let Some(file) = reordered_and_delayed_file() else {
            return;
        };
        let windows = [&WINDOWS[..], &[(58.3, Some(60.3)), (1.0, Some(3.0))]].concat();
        plays_the_same_from_the_spans("delayed", &file, &windows);
    }

    #[test]
    fn mutated_moovs_never_panic() {
        let original = match plain_file() {
            Some(file) => moov_of(file).to_vec(),
            None => one_track(10, &edts(&[(3000, -1), (5000, 0)]), &changing_chunks()),
        };
        // Table and header boxes, where mutations say the most.
        let kinds = b"trakmdiamdhdminfstblsttsctt sstssstscstszstcoco64edtselstmvhd";
        let starts: Vec<usize> = (4..original.len() - 4)
            .filter(|&i| kinds.chunks(4).any(|k| k == &original[i..i + 4]))
            .map(|i| i - 4)
            .collect();
        let size = 10_000_000;
        let mut rng = XorShift(0x9E37_79B9_7F4A_7C15);
        for _ in 0..3000 {
            let mut index = original.clone();
            for _ in 0..=rng.below(3) {
                let at = starts[rng.below(starts.len())] + rng.below(28);
                let value = [0, 1, 2, 0xFFFF_FFFF, 0x8000_0000, rng.below(1 << 20) as u32];
                match rng.below(4) {
                    0 => index.truncate(rng.below(index.len() + 1)),
                    1 if at + 4 <= index.len() => {
                        index[at..at + 4].copy_from_slice(&value[rng.below(6)].to_be_bytes());
                    }
                    2 if at < index.len() => index[at] ^= 1 << rng.below(8),
                    _ => {
                        let at = rng.below(index.len());
                        if let Some(byte) = index.get_mut(at) {
                            *byte = rng.below(256) as u8;
                        }
                    }
                }
            }
            let start = rng.below(70) as f64 * 0.9;
            let end = [None, Some(start), Some(start + rng.below(30) as f64)][rng.below(3)];
            let spans = [
                byte_span(&index, start, end, size),
                probe_span(&index, size),
            ];
            for span in spans.into_iter().flatten() {
                assert!(span.start <= span.end && span.end <= size, "{span:?}");
            }
        }
    }
}
