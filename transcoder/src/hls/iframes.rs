//! I-frame playlists (`EXT-X-I-FRAMES-ONLY`) for CMAF rungs: every segment opens on a
//! keyframe, so each entry is a byte range of a segment, from its start through that first
//! frame: `styp`, `sidx`, `moof` (which describes the fragment), the `mdat` header and the
//! frame's bytes. Players use them for fast-forward and scrubbing previews.

use std::path::Path;

use super::HlsError;

/// The I-frame playlist's name in each rung folder.
pub const IFRAME_PLAYLIST: &str = "iframes.m3u8";
/// How much of a segment is read to find its first frame: the boxes before the media are a
/// few hundred bytes.
const HEAD_BYTES: usize = 64 * 1024;

/// One entry: a segment's first frame.
#[derive(Debug, Clone, PartialEq)]
pub struct IFrame {
    /// The segment, as the media playlist names it.
    pub uri: String,
    /// The segment's duration in seconds (the frame stands for all of it).
    pub duration_s: f64,
    /// Bytes from the segment's start through the end of its first frame.
    pub length: u64,
}

/// The end of the first frame of a CMAF segment, from its first `moof`: the `trun`'s data
/// offset (from the `moof`, as `default-base-is-moof` says) plus the first sample's size
/// (its own, or the `tfhd` default). `None` for anything else.
pub fn first_frame_end(segment: &[u8]) -> Option<u64> {
    let (moof_at, moof) = boxes(segment).find(|(_, b)| b.kind == *b"moof")?;
    let (_, traf) = boxes(moof.body).find(|(_, b)| b.kind == *b"traf")?;
    let mut default_size = None;
    let mut trun = None;
    for (_, child) in boxes(traf.body) {
        match &child.kind {
            b"tfhd" => default_size = tfhd_default_size(child.body),
            b"trun" => trun = Some(child.body),
            _ => {}
        }
    }
    let trun = trun?;
    let flags = u32::from_be_bytes(trun.get(0..4)?.try_into().ok()?) & 0x00ff_ffff;
    if flags & 0x1 == 0 {
        return None; // no data offset: the frame's place is not said
    }
    let data_offset = i32::from_be_bytes(trun.get(8..12)?.try_into().ok()?);
    let mut at = 12 + if flags & 0x4 != 0 { 4 } else { 0 };
    if flags & 0x100 != 0 {
        at += 4; // the first sample's duration
    }
    let size = if flags & 0x200 != 0 {
        u32::from_be_bytes(trun.get(at..at + 4)?.try_into().ok()?)
    } else {
        default_size?
    };
    let start = i64::try_from(moof_at).ok()? + i64::from(data_offset);
    u64::try_from(start + i64::from(size)).ok()
}

/// The `tfhd`'s default sample size, when it has one.
fn tfhd_default_size(tfhd: &[u8]) -> Option<u32> {
    let flags = u32::from_be_bytes(tfhd.get(0..4)?.try_into().ok()?) & 0x00ff_ffff;
    if flags & 0x10 == 0 {
        return None;
    }
    // version/flags, track id, then the optional fields in order.
    let mut at = 8;
    for (bit, width) in [(0x1, 8), (0x2, 4), (0x8, 4)] {
        if flags & bit != 0 {
            at += width;
        }
    }
    Some(u32::from_be_bytes(tfhd.get(at..at + 4)?.try_into().ok()?))
}

/// An ISO BMFF box: its type and body.
struct Mp4Box<'a> {
    kind: [u8; 4],
    body: &'a [u8],
}

/// The boxes one after another in `bytes`, each with its offset; stops at the first that does
/// not fit (the rest of a segment read only in part).
fn boxes(bytes: &[u8]) -> impl Iterator<Item = (usize, Mp4Box<'_>)> {
    let mut at = 0usize;
    std::iter::from_fn(move || {
        let header = bytes.get(at..at + 8)?;
        let size = u32::from_be_bytes(header[0..4].try_into().ok()?) as usize;
        let kind: [u8; 4] = header[4..8].try_into().ok()?;
        if size < 8 {
            return None;
        }
        let body = bytes.get(at + 8..at + size)?;
        let found = (at, Mp4Box { kind, body });
        at += size;
        Some(found)
    })
}

/// Reads the first frame of each segment of the rung in `dir`.
pub async fn iframes_of(dir: &Path, segments: &[(String, f64)]) -> Result<Vec<IFrame>, HlsError> {
    let mut frames = Vec::with_capacity(segments.len());
    for (uri, duration_s) in segments {
        let path = dir.join(uri);
        let io = |source| HlsError::Io {
            path: path.display().to_string(),
            source,
        };
        let mut head = vec![0u8; HEAD_BYTES];
        let mut file = tokio::fs::File::open(&path).await.map_err(io)?;
        let read = tokio::io::AsyncReadExt::read(&mut file, &mut head)
            .await
            .map_err(io)?;
        head.truncate(read);
        let length = first_frame_end(&head).ok_or_else(|| HlsError::Playlist {
            path: path.display().to_string(),
            detail: "a CMAF segment whose first frame cannot be found".into(),
        })?;
        frames.push(IFrame {
            uri: uri.clone(),
            duration_s: *duration_s,
            length,
        });
    }
    Ok(frames)
}

/// The I-frame playlist, behind `init` (the rung's init segment), and its peak bitrate
/// (frame bytes over the time each frame stands for).
pub fn render_iframe_playlist(frames: &[IFrame], init: &str) -> (String, u64) {
    let target = frames
        .iter()
        .map(|f| f.duration_s.round() as u64)
        .max()
        .unwrap_or(1)
        .max(1);
    let mut out = format!(
        "#EXTM3U\n#EXT-X-VERSION:7\n#EXT-X-TARGETDURATION:{target}\n#EXT-X-PLAYLIST-TYPE:VOD\n\
         #EXT-X-I-FRAMES-ONLY\n#EXT-X-MAP:URI=\"{init}\"\n"
    );
    let mut peak = 0.0_f64;
    for f in frames {
        out.push_str(&format!(
            "#EXTINF:{:.6},\n#EXT-X-BYTERANGE:{}@0\n{}\n",
            f.duration_s, f.length, f.uri
        ));
        peak = peak.max(f.length as f64 * 8.0 / f.duration_s.max(0.001));
    }
    out.push_str("#EXT-X-ENDLIST\n");
    (out, peak.ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A box of `kind` around `body`.
    fn mp4_box(kind: &[u8; 4], body: &[u8]) -> Vec<u8> {
        let mut out = ((body.len() + 8) as u32).to_be_bytes().to_vec();
        out.extend_from_slice(kind);
        out.extend_from_slice(body);
        out
    }

    #[test]
    fn the_first_frame_ends_where_the_moof_says() {
        // tfhd: default-base-is-moof and a default size; trun: data offset and first-sample
        // flags, then per-sample sizes (0x205), 2 samples of 1000 and 50 bytes.
        let tfhd = [
            &[0, 0x02, 0x00, 0x10][..],
            &1u32.to_be_bytes(),
            &7u32.to_be_bytes(),
        ]
        .concat();
        let trun_body = |offset: i32| {
            [
                &[0, 0, 0x02, 0x05][..],
                &2u32.to_be_bytes(),
                &offset.to_be_bytes(),
                &0u32.to_be_bytes(),
                &1000u32.to_be_bytes(),
                &50u32.to_be_bytes(),
            ]
            .concat()
        };
        let build = |offset| {
            let traf = mp4_box(
                b"traf",
                &[
                    mp4_box(b"tfhd", &tfhd),
                    mp4_box(b"trun", &trun_body(offset)),
                ]
                .concat(),
            );
            mp4_box(b"moof", &traf)
        };
        let moof_len = build(0).len() as i32;
        let styp = mp4_box(b"styp", b"msdhmsix");
        let segment = [
            styp.clone(),
            build(moof_len + 8),
            mp4_box(b"mdat", &[0u8; 1050]),
        ]
        .concat();
        // The frame starts after the mdat header and is 1000 bytes long.
        assert_eq!(
            first_frame_end(&segment),
            Some((styp.len() + moof_len as usize + 8 + 1000) as u64)
        );
        assert_eq!(first_frame_end(&styp), None);
        assert_eq!(first_frame_end(b"not a segment at all"), None);
    }

    #[test]
    fn the_playlist_names_each_first_frame_by_byte_range() {
        let frames = [
            IFrame {
                uri: "seg_00000.m4s".into(),
                duration_s: 1.0,
                length: 20_000,
            },
            IFrame {
                uri: "seg_00001.m4s".into(),
                duration_s: 4.0,
                length: 40_000,
            },
        ];
        let (text, peak) = render_iframe_playlist(&frames, "init.mp4");
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert!(parsed.i_frames_only && parsed.end_list);
        assert_eq!(
            parsed.segments[1]
                .byte_range
                .as_ref()
                .map(|r| (r.length, r.offset)),
            Some((40_000, Some(0)))
        );
        assert_eq!(parsed.segments[0].map.as_ref().unwrap().uri, "init.mp4");
        assert_eq!(peak, 160_000);
    }
}
