//! Reads `ffprobe -print_format json -show_format -show_streams` into a [`SourceInfo`].
//!
//! Pure: no process, so the rules (which stream is the real video, what size it is displayed
//! at) are tested against real ffprobe output kept in `testdata/`.

use serde::Deserialize;

use super::source::{
    checked_language, AudioStream, DynamicRange, Rational, SourceInfo, SubtitleStream, VideoStream,
    MAX_AUDIO_TRACKS, TEXT_SUBTITLE_CODECS,
};
use super::ProbeError;

#[derive(Debug, Deserialize)]
struct Output {
    #[serde(default)]
    streams: Vec<Stream>,
    format: Option<Format>,
}

#[derive(Debug, Deserialize)]
struct Format {
    format_name: Option<String>,
    duration: Option<String>,
}

#[derive(Debug, Deserialize)]
struct Stream {
    index: u32,
    codec_type: Option<String>,
    codec_name: Option<String>,
    width: Option<u32>,
    height: Option<u32>,
    sample_aspect_ratio: Option<String>,
    avg_frame_rate: Option<String>,
    r_frame_rate: Option<String>,
    pix_fmt: Option<String>,
    color_transfer: Option<String>,
    channels: Option<u32>,
    duration: Option<String>,
    nb_frames: Option<String>,
    #[serde(default)]
    disposition: Disposition,
    #[serde(default)]
    side_data_list: Vec<SideData>,
    #[serde(default)]
    tags: Tags,
}

#[derive(Debug, Default, Deserialize)]
struct Disposition {
    #[serde(default)]
    attached_pic: u8,
    #[serde(default)]
    default: u8,
}

#[derive(Debug, Deserialize)]
struct SideData {
    rotation: Option<f64>,
}

#[derive(Debug, Default, Deserialize)]
struct Tags {
    rotate: Option<String>,
    language: Option<String>,
}

/// Interprets ffprobe's JSON. Errors are all invalid input: the file is readable but is not a
/// video we can transcode.
pub fn parse_ffprobe_json(json: &[u8]) -> Result<SourceInfo, ProbeError> {
    let out: Output = serde_json::from_slice(json)
        .map_err(|e| ProbeError::Internal(format!("ffprobe printed JSON we cannot read: {e}")))?;
    let format = out.format.ok_or(ProbeError::NotMedia {
        detail: "ffprobe found no container".into(),
    })?;

    let video = pick_video(&out.streams)?;
    let describe_audio = |s: &Stream| AudioStream {
        index: s.index,
        codec: s.codec_name.clone().unwrap_or_default(),
        channels: s.channels.unwrap_or(2),
        language: checked_language(s.tags.language.as_deref()),
    };
    let audio = pick(&out.streams, "audio").map(describe_audio);
    // The chosen track first, then the others in the file's order; a file with dozens of
    // audio streams gets the first few, not an encoder each.
    let others = out
        .streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some("audio"))
        .filter(|s| audio.as_ref().is_none_or(|a| a.index != s.index))
        .map(describe_audio);
    let audio_tracks: Vec<AudioStream> = audio
        .iter()
        .cloned()
        .chain(others)
        .take(MAX_AUDIO_TRACKS)
        .collect();

    let duration_s = seconds(video.duration.as_deref())
        .or_else(|| seconds(format.duration.as_deref()))
        .ok_or(ProbeError::NoDuration)?;

    let subtitle_streams: Vec<&Stream> = out
        .streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some("subtitle"))
        .collect();
    let subtitles: Vec<SubtitleStream> = subtitle_streams
        .iter()
        .filter(|s| {
            let codec = s.codec_name.as_deref().unwrap_or_default();
            TEXT_SUBTITLE_CODECS.contains(&codec)
        })
        .take(MAX_AUDIO_TRACKS)
        .map(|s| SubtitleStream {
            index: s.index,
            codec: s.codec_name.clone().unwrap_or_default(),
            language: checked_language(s.tags.language.as_deref()),
        })
        .collect();

    Ok(SourceInfo {
        format_name: format.format_name.unwrap_or_default(),
        duration_s,
        video: describe_video(video)?,
        audio,
        audio_tracks,
        subtitles_left_out: subtitle_streams.len() - subtitles.len(),
        subtitles,
    })
}

/// The real video stream: cover art and thumbnails (attached pictures) are not the video.
/// Among several, the default one, then the largest, as ffmpeg itself would choose.
fn pick_video(streams: &[Stream]) -> Result<&Stream, ProbeError> {
    let videos: Vec<&Stream> = streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some("video"))
        .collect();
    let moving: Vec<&Stream> = videos
        .iter()
        .copied()
        .filter(|s| s.disposition.attached_pic == 0)
        .collect();
    if moving.is_empty() {
        return Err(if !videos.is_empty() {
            ProbeError::NoVideo {
                detail: "only a cover picture, no video".into(),
            }
        } else if streams
            .iter()
            .any(|s| s.codec_type.as_deref() == Some("audio"))
        {
            ProbeError::NoVideo {
                detail: "audio only".into(),
            }
        } else {
            ProbeError::NoVideo {
                detail: "no video stream".into(),
            }
        });
    }
    Ok(moving
        .iter()
        .copied()
        .max_by_key(|s| {
            let pixels = u64::from(s.width.unwrap_or(0)) * u64::from(s.height.unwrap_or(0));
            (s.disposition.default, pixels, std::cmp::Reverse(s.index))
        })
        .expect("not empty"))
}

fn pick<'a>(streams: &'a [Stream], kind: &str) -> Option<&'a Stream> {
    let mut of_kind = streams
        .iter()
        .filter(|s| s.codec_type.as_deref() == Some(kind));
    let first = of_kind.clone().next();
    of_kind.find(|s| s.disposition.default == 1).or(first)
}

fn describe_video(s: &Stream) -> Result<VideoStream, ProbeError> {
    let codec = s.codec_name.clone().ok_or(ProbeError::UnsupportedCodec {
        codec: "unknown".into(),
    })?;
    let (coded_width, coded_height) = match (s.width, s.height) {
        (Some(w), Some(h)) if w > 0 && h > 0 => (w, h),
        _ => {
            return Err(ProbeError::NotMedia {
                detail: "the video stream has no picture size".into(),
            })
        }
    };
    let rotation = s
        .side_data_list
        .iter()
        .find_map(|d| d.rotation)
        .map(|r| r.round() as i32)
        .or_else(|| s.tags.rotate.as_deref().and_then(|r| r.trim().parse().ok()))
        .unwrap_or(0);
    // Square the pixels first (anamorphic DVD/broadcast sources), then turn the picture.
    let sar = s
        .sample_aspect_ratio
        .as_deref()
        .map(|r| r.replace(':', "/"))
        .and_then(|r| Rational::parse(&r))
        .map_or(1.0, Rational::as_f64);
    let square_width = ((coded_width as f64 * sar).round() as u32).max(1);
    let (display_width, display_height) = if rotation.rem_euclid(180) == 90 {
        (coded_height, square_width)
    } else {
        (square_width, coded_height)
    };
    Ok(VideoStream {
        index: s.index,
        codec,
        coded_width,
        coded_height,
        display_width,
        display_height,
        rotation,
        avg_frame_rate: s.avg_frame_rate.as_deref().and_then(Rational::parse),
        base_frame_rate: s.r_frame_rate.as_deref().and_then(Rational::parse),
        pix_fmt: s.pix_fmt.clone(),
        frame_count: s.nb_frames.as_deref().and_then(|n| n.parse().ok()),
        dynamic_range: DynamicRange::from_transfer(s.color_transfer.as_deref()),
    })
}

fn seconds(text: Option<&str>) -> Option<f64> {
    text?
        .parse::<f64>()
        .ok()
        .filter(|d| d.is_finite() && *d > 0.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture(name: &str) -> Result<SourceInfo, ProbeError> {
        let path = format!(
            "{}/src/probe/testdata/{name}.json",
            env!("CARGO_MANIFEST_DIR")
        );
        parse_ffprobe_json(&std::fs::read(path).unwrap())
    }

    #[test]
    fn plain_mp4_with_audio() {
        let info = fixture("ok").unwrap();
        assert_eq!(info.format_name, "mov,mp4,m4a,3gp,3g2,mj2");
        assert_eq!(
            (info.video.display_width, info.video.display_height),
            (640, 360)
        );
        assert_eq!(info.video.index, 0);
        assert_eq!(
            info.video.avg_frame_rate,
            Some(Rational { num: 30, den: 1 })
        );
        assert_eq!(
            info.audio.as_ref().map(|a| (a.index, a.codec.as_str())),
            Some((1, "aac"))
        );
        assert!((info.duration_s - 2.0).abs() < 0.05, "{}", info.duration_s);
    }

    #[test]
    fn the_transfer_characteristic_tells_hdr_from_sdr() {
        // 10-bit HEVC with BT.2020 primaries and the HLG curve, as ffmpeg tags it.
        let hlg = fixture("hlg").unwrap();
        assert_eq!(hlg.video.dynamic_range, DynamicRange::Hlg);
        assert_eq!(
            fixture("ok").unwrap().video.dynamic_range,
            DynamicRange::Sdr
        );
        assert_eq!(
            DynamicRange::from_transfer(Some("smpte2084")),
            DynamicRange::Pq
        );
        // 10 bits alone is not HDR: ProRes and broadcast masters are often 10-bit BT.709.
        assert_eq!(
            DynamicRange::from_transfer(Some("bt709")),
            DynamicRange::Sdr
        );
        assert_eq!(DynamicRange::from_transfer(None), DynamicRange::Sdr);
    }

    #[test]
    fn only_a_plain_language_code_is_kept() {
        assert_eq!(checked_language(Some("eng")).as_deref(), Some("eng"));
        assert_eq!(checked_language(Some("FR")).as_deref(), Some("fr"));
        for bad in ["und", "e", "english", "en\"", "e\nn", "", "de-DE"] {
            assert_eq!(checked_language(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(checked_language(None), None);
    }

    #[test]
    fn rotation_swaps_the_displayed_size() {
        let info = fixture("rot").unwrap();
        assert_eq!(info.video.rotation.rem_euclid(180), 90);
        assert_eq!(
            (info.video.coded_width, info.video.coded_height),
            (640, 360)
        );
        assert_eq!(
            (info.video.display_width, info.video.display_height),
            (360, 640)
        );
    }

    #[test]
    fn cover_art_is_not_the_video_and_pixels_are_squared() {
        let info = fixture("anamorphic_cover").unwrap();
        // The PNG cover is stream 2 with attached_pic; the H.264 picture is stream 0.
        assert_eq!(info.video.index, 0);
        assert_eq!(info.video.codec, "h264");
        // 720x576 with 16:11 pixels is displayed 1047 wide.
        assert_eq!(
            (info.video.display_width, info.video.display_height),
            (1047, 576)
        );
    }

    #[test]
    fn audio_with_cover_art_is_not_a_video() {
        let err = fixture("cover").unwrap_err();
        assert!(matches!(err, ProbeError::NoVideo { .. }), "{err:?}");
        assert!(err.to_string().contains("cover picture"), "{err}");
    }

    #[test]
    fn no_streams_at_all() {
        let err = parse_ffprobe_json(br#"{"streams": [], "format": {"format_name": "mpegts"}}"#)
            .unwrap_err();
        assert!(matches!(err, ProbeError::NoVideo { .. }));
    }

    #[test]
    fn output_frame_rate_snaps_variable_rates_and_caps_at_60() {
        let cases = [
            ("30/1", "30/1"),
            ("30000/1001", "30000/1001"),
            ("2979/100", "30000/1001"), // a phone's variable rate averages just under 30
            ("3001/100", "30/1"),
            ("15/1", "15/1"),    // screen captures keep their rate
            ("120/1", "60/1"),   // slow-motion footage is played at 60
            ("1999/80", "25/1"), // 24.99 snaps to PAL
        ];
        let mut info = fixture("ok").unwrap();
        for (avg, want) in cases {
            info.video.avg_frame_rate = Rational::parse(avg);
            assert_eq!(info.output_frame_rate().to_string(), want, "avg {avg}");
        }
    }
}
