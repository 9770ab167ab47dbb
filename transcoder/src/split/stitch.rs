//! Joining the ranges: each rung's media playlist is the ranges' segments in order. The ranges
//! were encoded with continuous timestamps and segment numbers, so the joined playlist needs
//! no discontinuity: to a player it is one encode.

use m3u8_rs::{Map, MediaPlaylist, MediaPlaylistType, MediaSegment};

use crate::encode::INIT_SEGMENT;
use crate::hls::{peak_segment_bitrate, RenditionStats, SegmentSample};

/// One segment a range produced.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct SegmentOut {
    /// Its name in the rung folder (`seg_00012.ts`).
    pub uri: String,
    /// Its EXTINF duration.
    pub duration_s: f64,
    /// Its size.
    pub bytes: u64,
    /// A CMAF video segment's bytes through its first frame (`hls::first_frame_end`), for the
    /// I-frame playlist; 0 when unknown.
    #[serde(default)]
    pub first_frame_end: u64,
}

/// One rung of one range.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct RungOutput {
    /// The rung's name (`720p`).
    pub name: String,
    /// RFC 6381 codecs of its streams.
    pub codecs: String,
    /// Its segments, in order, already published.
    pub segments: Vec<SegmentOut>,
}

/// What a range produced, every rung.
#[derive(Debug, Clone, PartialEq)]
pub struct RangeOutput {
    /// The range's position.
    pub index: u32,
    /// Its rungs, in ladder order.
    pub rungs: Vec<RungOutput>,
}

impl RangeOutput {
    /// Seconds of media in its rung `name` (zero when absent).
    pub fn seconds(&self, name: &str) -> f64 {
        self.rung(name)
            .map_or(0.0, |r| r.segments.iter().map(|s| s.duration_s).sum())
    }

    /// Its objects' names in the version folder (`720p/seg_00012.ts`), every rung; with
    /// CMAF segments, range 0 also has each rung's init segment, which every range shares.
    pub fn segment_objects(&self) -> impl Iterator<Item = String> + '_ {
        self.rungs.iter().flat_map(move |rung| {
            let fmp4 = rung.segments.first().is_some_and(|s| is_fmp4(&s.uri));
            let init = (self.index == 0 && fmp4).then_some(INIT_SEGMENT);
            init.into_iter()
                .chain(rung.segments.iter().map(|segment| segment.uri.as_str()))
                .map(|uri| format!("{}/{uri}", rung.name))
        })
    }

    fn rung(&self, name: &str) -> Option<&RungOutput> {
        self.rungs.iter().find(|r| r.name == name)
    }
}

/// Rung `name`'s segments across `ranges`, in order.
pub fn joined_segments<'a>(ranges: &'a [RangeOutput], name: &str) -> Vec<&'a SegmentOut> {
    ranges
        .iter()
        .filter_map(|r| r.rung(name))
        .flat_map(|r| r.segments.iter())
        .collect()
}

/// An fMP4 (CMAF) segment's name.
fn is_fmp4(uri: &str) -> bool {
    uri.ends_with(".m4s")
}

/// Rung `name`'s media playlist over `ranges` (consecutive, from the first): EVENT while more
/// are coming, VOD with ENDLIST when `complete`. Its segments' format says whether it needs
/// the init segment (`EXT-X-MAP`, version 7).
pub fn joined_playlist(ranges: &[RangeOutput], name: &str, complete: bool) -> Vec<u8> {
    let segments = joined_segments(ranges, name);
    let longest = segments.iter().map(|s| s.duration_s).fold(0.0, f64::max);
    let fmp4 = segments.first().is_some_and(|s| is_fmp4(&s.uri));
    let playlist = MediaPlaylist {
        version: Some(if fmp4 { 7 } else { 3 }),
        // As ffmpeg computes it: every EXTINF, rounded up, fits.
        target_duration: longest.ceil().max(1.0) as u64,
        media_sequence: 0,
        segments: segments
            .iter()
            .enumerate()
            .map(|(i, s)| MediaSegment {
                uri: s.uri.clone(),
                duration: s.duration_s as f32,
                map: (fmp4 && i == 0).then(|| Map {
                    uri: INIT_SEGMENT.to_string(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .collect(),
        end_list: complete,
        playlist_type: Some(if complete {
            MediaPlaylistType::Vod
        } else {
            MediaPlaylistType::Event
        }),
        independent_segments: true,
        ..Default::default()
    };
    let mut out = Vec::new();
    playlist
        .write_to(&mut out)
        .expect("writing to a Vec cannot fail");
    out
}

/// Rung `name` measured over every range, as `hls::measure_rendition` measures a single pass.
pub fn joined_stats(ranges: &[RangeOutput], name: &str) -> RenditionStats {
    let segments = joined_segments(ranges, name);
    let samples: Vec<SegmentSample> = segments
        .iter()
        .map(|s| SegmentSample {
            duration_s: s.duration_s,
            bytes: s.bytes,
        })
        .collect();
    let longest = samples.iter().map(|s| s.duration_s).fold(0.0, f64::max);
    let target = longest.ceil().max(1.0) as u64;
    let duration_s: f64 = samples.iter().map(|s| s.duration_s).sum();
    let bits: f64 = samples.iter().map(|s| s.bytes as f64 * 8.0).sum();
    RenditionStats {
        peak_bps: peak_segment_bitrate(&samples, target as f64),
        average_bps: (bits / duration_s.max(0.001)).ceil() as u64,
        duration_s,
        segment_uris: segments.iter().map(|s| s.uri.clone()).collect(),
        target_duration_s: target,
        first_segment: Default::default(),
        segments: samples,
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Range `index` with one rung, `360p`, of segments lasting `durations` from number
    /// `first`, at 1 Mbit/s.
    pub(crate) fn range(index: u32, first: u32, durations: &[f64]) -> RangeOutput {
        RangeOutput {
            index,
            rungs: vec![RungOutput {
                name: "360p".into(),
                codecs: "avc1.64001e,mp4a.40.2".into(),
                segments: durations
                    .iter()
                    .enumerate()
                    .map(|(i, d)| SegmentOut {
                        uri: format!("seg_{:05}.ts", first + i as u32),
                        duration_s: *d,
                        bytes: (d * 125_000.0) as u64,
                        first_frame_end: 0,
                    })
                    .collect(),
            }],
        }
    }

    #[test]
    fn ranges_join_into_one_playlist_without_discontinuity() {
        let ranges = [range(0, 0, &[4.0, 4.0]), range(1, 2, &[4.0, 4.0, 1.5])];
        let event = joined_playlist(&ranges[..1], "360p", false);
        let event = m3u8_rs::parse_media_playlist_res(&event).unwrap();
        assert_eq!(event.playlist_type, Some(MediaPlaylistType::Event));
        assert!(!event.end_list);
        assert_eq!(event.segments.len(), 2);

        let vod = joined_playlist(&ranges, "360p", true);
        let text = String::from_utf8(vod.clone()).unwrap();
        assert!(!text.contains("DISCONTINUITY"), "{text}");
        let vod = m3u8_rs::parse_media_playlist_res(&vod).unwrap();
        assert_eq!(vod.playlist_type, Some(MediaPlaylistType::Vod));
        assert!(vod.end_list && vod.independent_segments);
        assert_eq!(vod.target_duration, 4);
        let uris: Vec<_> = vod.segments.iter().map(|s| s.uri.as_str()).collect();
        assert_eq!(
            uris,
            [
                "seg_00000.ts",
                "seg_00001.ts",
                "seg_00002.ts",
                "seg_00003.ts",
                "seg_00004.ts"
            ]
        );
    }

    #[test]
    fn the_joined_rung_is_measured_like_a_single_pass() {
        let ranges = [range(0, 0, &[4.0, 4.0]), range(1, 2, &[4.0, 1.5])];
        let stats = joined_stats(&ranges, "360p");
        assert!((stats.duration_s - 13.5).abs() < 1e-9);
        assert_eq!(stats.average_bps, 1_000_000);
        assert_eq!(stats.segment_uris.len(), 4);
        assert!((ranges[1].seconds("360p") - 5.5).abs() < 1e-9);
        assert_eq!(ranges[1].seconds("1080p"), 0.0);
    }

    #[test]
    fn a_range_names_its_segments_under_their_rung_folders() {
        let mut output = range(1, 2, &[4.0, 4.0]);
        let mut other = output.rungs[0].clone();
        other.name = "720p".into();
        other.segments.truncate(1);
        output.rungs.push(other);
        assert_eq!(
            output.segment_objects().collect::<Vec<_>>(),
            [
                "360p/seg_00002.ts",
                "360p/seg_00003.ts",
                "720p/seg_00002.ts"
            ]
        );
    }
}
