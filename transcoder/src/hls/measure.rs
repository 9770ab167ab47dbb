//! Bitrates as a player will see them, measured from the segments on disk.

use std::path::{Path, PathBuf};

use super::HlsError;

/// One segment: its duration from the playlist and its size on disk.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SegmentSample {
    /// EXTINF duration in seconds.
    pub duration_s: f64,
    /// Size in bytes.
    pub bytes: u64,
}

/// What a rendition weighs.
#[derive(Debug, Clone, PartialEq)]
pub struct RenditionStats {
    /// Peak segment bitrate in bit/s (the master's BANDWIDTH).
    pub peak_bps: u64,
    /// Total bits over total duration in bit/s (AVERAGE-BANDWIDTH).
    pub average_bps: u64,
    /// Sum of segment durations in seconds.
    pub duration_s: f64,
    /// Every segment, in order.
    pub segments: Vec<SegmentSample>,
    /// Every segment's URI as the playlist names it (relative to the playlist), in order.
    pub segment_uris: Vec<String>,
    /// Target duration the playlist declares.
    pub target_duration_s: u64,
    /// The first segment's file, for reading the codec parameters.
    pub first_segment: PathBuf,
}

/// The peak segment bit rate as RFC 8216bis defines it: the largest bit rate of any run of
/// contiguous segments lasting between 0.5 and 1.5 times the target duration. A run, not a
/// single segment, so a short last segment that is mostly keyframe does not inflate it. A
/// rendition shorter than half the target duration is measured whole.
pub fn peak_segment_bitrate(segments: &[SegmentSample], target_duration_s: f64) -> u64 {
    let (low, high) = (0.5 * target_duration_s, 1.5 * target_duration_s);
    let mut peak = 0.0_f64;
    for start in 0..segments.len() {
        let (mut seconds, mut bits) = (0.0, 0.0);
        for s in &segments[start..] {
            seconds += s.duration_s;
            bits += s.bytes as f64 * 8.0;
            if seconds > high {
                break;
            }
            if seconds >= low {
                peak = peak.max(bits / seconds);
            }
        }
    }
    if peak == 0.0 {
        let seconds: f64 = segments.iter().map(|s| s.duration_s).sum();
        let bits: f64 = segments.iter().map(|s| s.bytes as f64 * 8.0).sum();
        peak = bits / seconds.max(0.001);
    }
    peak.ceil() as u64
}

/// Reads `playlist` and the sizes of the segments it lists.
pub async fn measure_rendition(playlist: &Path) -> Result<RenditionStats, HlsError> {
    let io = |path: &Path| {
        let path = path.display().to_string();
        move |source| HlsError::Io { path, source }
    };
    let text = tokio::fs::read(playlist).await.map_err(io(playlist))?;
    let parsed = m3u8_rs::parse_media_playlist_res(&text).map_err(|e| HlsError::Playlist {
        path: playlist.display().to_string(),
        detail: e.to_string(),
    })?;
    let dir = playlist.parent().unwrap_or(Path::new("."));
    let mut segments = Vec::with_capacity(parsed.segments.len());
    for segment in &parsed.segments {
        let path = dir.join(&segment.uri);
        let bytes = tokio::fs::metadata(&path).await.map_err(io(&path))?.len();
        segments.push(SegmentSample {
            duration_s: f64::from(segment.duration),
            bytes,
        });
    }
    let first = parsed.segments.first().ok_or_else(|| HlsError::Empty {
        path: playlist.display().to_string(),
    })?;
    let duration_s: f64 = segments.iter().map(|s| s.duration_s).sum();
    let bits: f64 = segments.iter().map(|s| s.bytes as f64 * 8.0).sum();
    Ok(RenditionStats {
        segment_uris: parsed.segments.iter().map(|s| s.uri.clone()).collect(),
        peak_bps: peak_segment_bitrate(&segments, parsed.target_duration as f64),
        average_bps: (bits / duration_s.max(0.001)).ceil() as u64,
        duration_s,
        segments,
        target_duration_s: parsed.target_duration,
        first_segment: dir.join(&first.uri),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn seg(duration_s: f64, kbit: u64) -> SegmentSample {
        SegmentSample {
            duration_s,
            bytes: kbit * 1000 / 8,
        }
    }

    #[test]
    fn peak_is_the_heaviest_run_near_the_target_duration() {
        let cases: &[(&str, Vec<SegmentSample>, u64)] = &[
            ("steady", vec![seg(4.0, 4000), seg(4.0, 4000)], 1_000_000),
            (
                "one heavy segment",
                vec![seg(4.0, 4000), seg(4.0, 12000), seg(4.0, 4000)],
                3_000_000,
            ),
            // The 0.4 s tail alone (5 Mbit/s) is under half the target: it only counts inside
            // the 4.4 s run with its neighbour, (4000 + 2000) kbit / 4.4 s.
            (
                "short keyframe tail",
                vec![seg(4.0, 4000), seg(0.4, 2000)],
                1_363_637,
            ),
            // Shorter than half the target altogether: measured whole.
            ("tiny clip", vec![seg(1.0, 800)], 800_000),
        ];
        for (label, segments, want) in cases {
            let got = peak_segment_bitrate(segments, 4.0);
            assert!(got.abs_diff(*want) <= 1, "{label}: {got} != {want}");
        }
    }
}
