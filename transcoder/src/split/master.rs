//! The master playlist of a split job, and the renditions it lists.
//!
//! While ranges land, only part of each rung exists, so the master's bandwidths are estimates
//! from the rungs' caps, as a single pass publishing early gives; once every range is in, they
//! are measured over each joined rung (and audio track), as a single pass measures its one
//! encode, and the master is the single pass's (`transcode::measured_master`). A rung's codecs
//! are read from its first range: every range encodes the rung with the same settings and
//! size, and range 0 is the one range every published master has.

use super::stitch::{joined_stats, RangeOutput};
use crate::config::SegmentFormat;
use crate::encode::{audio_tracks, MEDIA_PLAYLIST};
use crate::hls::{self, Variant};
use crate::ladder::Rung;
use crate::probe::SourceInfo;
use crate::publish::{early_layout, estimated_bandwidth};
use crate::transcode::{AudioOutput, Prepared, Rendition};

/// Rung `name`'s media playlist, relative to the master (`720p/index.m3u8`).
pub fn rung_playlist(name: &str) -> String {
    format!("{name}/{MEDIA_PLAYLIST}")
}

/// The folders every range of `source` writes: the rungs of `ladder`, then with CMAF the
/// audio tracks.
pub fn range_folders(ladder: &[Rung], source: &SourceInfo, segments: SegmentFormat) -> Vec<String> {
    let rungs = ladder.iter().map(|r| r.name.clone());
    let audio = match segments {
        SegmentFormat::Cmaf => audio_tracks(source),
        SegmentFormat::Ts => Vec::new(),
    };
    rungs.chain(audio.into_iter().map(|t| t.folder)).collect()
}

/// Every rung joined over `ranges` (all of them), measured, in ladder order.
pub fn renditions(prepared: &Prepared, ranges: &[RangeOutput]) -> Vec<Rendition> {
    prepared
        .ladder
        .iter()
        .map(|rung| Rendition {
            rung: rung.clone(),
            stats: joined_stats(ranges, &rung.name),
            codecs: codecs_of(ranges, &rung.name),
            playlist: rung_playlist(&rung.name),
            iframe_bandwidth: None,
        })
        .collect()
}

/// With CMAF, every audio track joined over `ranges` (all of them), measured, default first.
pub fn audio_outputs(
    prepared: &Prepared,
    segments: SegmentFormat,
    ranges: &[RangeOutput],
) -> Vec<AudioOutput> {
    if segments != SegmentFormat::Cmaf {
        return Vec::new();
    }
    audio_tracks(&prepared.source)
        .into_iter()
        .map(|track| AudioOutput {
            stats: joined_stats(ranges, &track.folder),
            playlist: rung_playlist(&track.folder),
            language: track.stream.language.clone(),
            track,
        })
        .collect()
}

/// The master while ranges land (over `ranges`, consecutive from the first): bandwidths
/// estimated from the caps, and with CMAF the audio tracks, as a single pass's early master.
pub fn master_playlist(
    prepared: &Prepared,
    segments: SegmentFormat,
    ranges: &[RangeOutput],
) -> String {
    let has_audio = prepared.source.audio.is_some();
    let variants: Vec<Variant> = prepared
        .ladder
        .iter()
        .map(|rung| {
            let estimate = estimated_bandwidth(rung, has_audio);
            Variant {
                uri: rung_playlist(&rung.name),
                bandwidth: estimate,
                average_bandwidth: estimate,
                width: rung.width,
                height: rung.height,
                codecs: codecs_of(ranges, &rung.name),
                frame_rate: prepared.fps.as_f64(),
            }
        })
        .collect();
    hls::render_master(&variants, &early_layout(prepared, segments))
}

/// The codecs of rung `name`, as its first range's segments carry them.
fn codecs_of(ranges: &[RangeOutput], name: &str) -> String {
    ranges
        .first()
        .and_then(|r| r.rungs.iter().find(|rung| rung.name == name))
        .map(|rung| rung.codecs.clone())
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use m3u8_rs::VariantStream;

    use super::*;
    use crate::ladder::Rung;
    use crate::probe::{parse_ffprobe_json, Rational};
    use crate::split::stitch::{RungOutput, SegmentOut};
    use crate::transcode::measured_master;

    fn rung(name: &str, height: u32, maxrate_kbps: u32) -> Rung {
        Rung {
            name: name.into(),
            width: height * 16 / 9,
            height,
            maxrate_kbps,
            bufsize_kbps: 2 * maxrate_kbps,
            audio_kbps: 128,
        }
    }

    /// A probed source (with audio unless `audio` is false) and a 720p + 360p ladder at
    /// 29.97 fps.
    fn prepared(audio: bool) -> Prepared {
        let path = format!("{}/src/probe/testdata/ok.json", env!("CARGO_MANIFEST_DIR"));
        let mut source = parse_ffprobe_json(&std::fs::read(path).unwrap()).unwrap();
        assert!(source.audio.is_some(), "the test source has audio");
        if !audio {
            source.audio = None;
            source.audio_tracks.clear();
        }
        Prepared {
            sidecars: Vec::new(),
            source,
            fps: Rational {
                num: 30000,
                den: 1001,
            },
            ladder: vec![rung("720p", 720, 3000), rung("360p", 360, 800)],
        }
    }

    /// Range `index` of both rungs: 4 s segments of `kbps` (720p twice that), codecs
    /// marked with `codecs`.
    fn output(index: u32, segments: u32, kbps: u64, codecs: &str) -> RangeOutput {
        let rung = |name: &str, kbps: u64| RungOutput {
            name: name.into(),
            codecs: format!("{codecs}-{name}"),
            segments: (0..segments)
                .map(|i| SegmentOut {
                    uri: format!("seg_{:05}.ts", index * 10 + i),
                    duration_s: 4.0,
                    bytes: kbps * 1000 / 8 * 4,
                    first_frame_end: 0,
                })
                .collect(),
        };
        RangeOutput {
            index,
            rungs: vec![rung("720p", 2 * kbps), rung("360p", kbps)],
        }
    }

    fn variants(master: &str) -> Vec<VariantStream> {
        m3u8_rs::parse_master_playlist_res(master.as_bytes())
            .unwrap()
            .variants
    }

    #[test]
    fn while_ranges_land_the_master_is_estimated_from_the_caps() {
        for audio in [true, false] {
            let prepared = prepared(audio);
            let ranges = [output(0, 2, 500, "first")];
            let variants = variants(&master_playlist(&prepared, SegmentFormat::Ts, &ranges));
            assert_eq!(variants.len(), 2);
            for (variant, rung) in variants.iter().zip(&prepared.ladder) {
                let estimate = estimated_bandwidth(rung, audio);
                assert_eq!(variant.bandwidth, estimate, "{}", rung.name);
                assert_eq!(variant.average_bandwidth, Some(estimate));
            }
            assert!(
                variants[0].bandwidth > variants[1].bandwidth,
                "from the caps, not the 500 kbit/s landed"
            );
        }
    }

    #[test]
    fn the_master_lists_every_rung_best_first_with_its_playlist_and_codecs() {
        let prepared = prepared(true);
        let ranges = [output(0, 2, 500, "first"), output(1, 2, 500, "second")];
        let variants = variants(&master_playlist(&prepared, SegmentFormat::Ts, &ranges));
        let listed: Vec<_> = variants
            .iter()
            .map(|v| {
                let resolution = v.resolution.unwrap();
                (
                    v.uri.as_str(),
                    v.codecs.as_deref(),
                    resolution.width,
                    resolution.height,
                )
            })
            .collect();
        assert_eq!(
            listed,
            [
                ("720p/index.m3u8", Some("first-720p"), 1280, 720),
                ("360p/index.m3u8", Some("first-360p"), 640, 360),
            ],
            "codecs as the first range has them"
        );
        assert!(variants
            .iter()
            .all(|v| (v.frame_rate.unwrap() - 29.97).abs() < 1e-9));
    }

    #[test]
    fn once_every_range_is_in_the_master_is_measured_over_the_joined_rungs() {
        let prepared = prepared(true);
        // 1 Mbit/s for two segments, then 2 Mbit/s for one: the peak is the second range's.
        let ranges = [output(0, 2, 1000, "first"), output(1, 1, 2000, "second")];
        let renditions = renditions(&prepared, &ranges);
        let names: Vec<_> = renditions
            .iter()
            .map(|r| (r.rung.name.as_str(), r.playlist.as_str(), r.codecs.as_str()))
            .collect();
        assert_eq!(
            names,
            [
                ("720p", "720p/index.m3u8", "first-720p"),
                ("360p", "360p/index.m3u8", "first-360p")
            ]
        );
        let stats = &renditions[1].stats;
        assert_eq!(stats.duration_s, 12.0);
        assert_eq!(
            stats.segment_uris,
            ["seg_00000.ts", "seg_00001.ts", "seg_00010.ts"],
            "both ranges, in order"
        );
        assert_eq!(stats, &joined_stats(&ranges, "360p"));

        let master = measured_master(&renditions, &[], &[], SegmentFormat::Ts, prepared.fps);
        let variants = variants(&master);
        for (variant, rendition) in variants.iter().zip(&renditions) {
            assert_eq!(variant.bandwidth, rendition.stats.peak_bps);
            assert_eq!(variant.average_bandwidth, Some(rendition.stats.average_bps));
        }
        assert!(variants[1].bandwidth >= 2_000_000);
        assert!(variants[1].average_bandwidth.unwrap() < variants[1].bandwidth);
    }

    #[test]
    fn a_rung_no_range_has_gets_no_codecs() {
        assert_eq!(codecs_of(&[], "360p"), "");
        assert_eq!(codecs_of(&[output(0, 1, 500, "first")], "1080p"), "");
    }
}
