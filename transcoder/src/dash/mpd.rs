//! A static MPD (ISO/IEC 23009-1, live profile addressing) over CMAF segments.
//!
//! Each representation is a folder with `init.mp4` and `seg_NNNNN.m4s`, numbered from 0, as
//! ffmpeg's HLS muxer writes them; a `SegmentTemplate` with a `SegmentTimeline` lists their
//! durations, which vary (the short opening segments, a short last one). The durations come
//! from the HLS playlists, in milliseconds, accumulated before rounding so that the timeline
//! never drifts from the media's own timestamps by more than half a millisecond.

use std::fmt::Write;

/// The manifest's name at the output prefix.
pub const MPD: &str = "manifest.mpd";

/// The timeline's ticks per second.
const TIMESCALE: f64 = 1000.0;

/// One video rung.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoRepresentation<'a> {
    /// Its folder, also its id (`720p`).
    pub folder: &'a str,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// Peak bitrate of the video alone, bit/s.
    pub bandwidth: u64,
    /// RFC 6381 codec of the video (`avc1.64001f`).
    pub codecs: &'a str,
    /// Each segment's duration in seconds, in order.
    pub segment_seconds: Vec<f64>,
}

/// One audio track, an adaptation set of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioSet<'a> {
    /// Its folder, also its id (`audio`, `audio_2`).
    pub folder: &'a str,
    /// The track's language, when known (already checked: letters only).
    pub language: Option<&'a str>,
    /// The source's default track (`Role` `main`; the others are `alternate`).
    pub main: bool,
    /// Peak bitrate, bit/s.
    pub bandwidth: u64,
    /// Each segment's duration in seconds, in order.
    pub segment_seconds: Vec<f64>,
}

/// One subtitle track: a whole WebVTT file, an adaptation set of its own.
#[derive(Debug, Clone, PartialEq)]
pub struct TextSet<'a> {
    /// Its folder, also its id (`subs`, `subs_2`).
    pub folder: &'a str,
    /// The WebVTT file in it.
    pub file: &'a str,
    /// Its language, when known (already checked: letters only).
    pub language: Option<&'a str>,
}

/// Everything a manifest says.
#[derive(Debug, Clone, PartialEq)]
pub struct Presentation<'a> {
    /// The presentation's length in seconds.
    pub duration_s: f64,
    /// The video's frame rate, `num/den`.
    pub frame_rate: (u32, u32),
    /// Video rungs, best first.
    pub video: Vec<VideoRepresentation<'a>>,
    /// The audio tracks, the default first (none for a silent source).
    pub audio: Vec<AudioSet<'a>>,
    /// The subtitle tracks.
    pub text: Vec<TextSet<'a>>,
    /// Where the folders are, relative to the manifest: `""` beside it, `_v…/` in a version
    /// folder. Written into every path, not as an MPD `BaseURL`: players disagree on how a
    /// representation's own `BaseURL` (a subtitle file's) combines with the MPD's.
    pub folders_at: &'a str,
}

/// Renders the manifest.
pub fn render_mpd(p: &Presentation<'_>) -> String {
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n");
    let _ = writeln!(
        out,
        "<MPD xmlns=\"urn:mpeg:dash:schema:mpd:2011\" \
         profiles=\"urn:mpeg:dash:profile:isoff-live:2011,urn:mpeg:dash:profile:cmaf:2019\" \
         type=\"static\" mediaPresentationDuration=\"{}\" minBufferTime=\"PT2S\">",
        iso_duration(p.duration_s)
    );
    out.push_str("  <Period id=\"0\" start=\"PT0S\">\n");
    let (max_width, max_height) = p
        .video
        .iter()
        .fold((0, 0), |(w, h), v| (w.max(v.width), h.max(v.height)));
    let _ = writeln!(
        out,
        "    <AdaptationSet id=\"0\" contentType=\"video\" mimeType=\"video/mp4\" \
         segmentAlignment=\"true\" startWithSAP=\"1\" frameRate=\"{}/{}\" \
         maxWidth=\"{max_width}\" maxHeight=\"{max_height}\">",
        p.frame_rate.0, p.frame_rate.1
    );
    for v in &p.video {
        let _ = writeln!(
            out,
            "      <Representation id=\"{}\" bandwidth=\"{}\" width=\"{}\" height=\"{}\" \
             sar=\"1:1\" codecs=\"{}\">",
            escape(v.folder),
            v.bandwidth,
            v.width,
            v.height,
            escape(v.codecs)
        );
        let folder = format!("{}{}", p.folders_at, v.folder);
        segment_template(&mut out, &folder, &v.segment_seconds);
        out.push_str("      </Representation>\n");
    }
    out.push_str("    </AdaptationSet>\n");
    for (i, a) in p.audio.iter().enumerate() {
        let lang = a
            .language
            .map(|l| format!(" lang=\"{}\"", escape(l)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"{}\" contentType=\"audio\" mimeType=\"audio/mp4\"{lang} \
             segmentAlignment=\"true\" startWithSAP=\"1\">",
            i + 1
        );
        let role = if a.main { "main" } else { "alternate" };
        let _ = writeln!(
            out,
            "      <Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"{role}\"/>"
        );
        let _ = writeln!(
            out,
            "      <Representation id=\"{}\" bandwidth=\"{}\" codecs=\"mp4a.40.2\" \
             audioSamplingRate=\"48000\">",
            escape(a.folder),
            a.bandwidth
        );
        out.push_str(
            "        <AudioChannelConfiguration \
             schemeIdUri=\"urn:mpeg:dash:23003:3:audio_channel_configuration:2011\" value=\"2\"/>\n",
        );
        let folder = format!("{}{}", p.folders_at, a.folder);
        segment_template(&mut out, &folder, &a.segment_seconds);
        out.push_str("      </Representation>\n    </AdaptationSet>\n");
    }
    for (i, t) in p.text.iter().enumerate() {
        let lang = t
            .language
            .map(|l| format!(" lang=\"{}\"", escape(l)))
            .unwrap_or_default();
        let _ = writeln!(
            out,
            "    <AdaptationSet id=\"{}\" contentType=\"text\" mimeType=\"text/vtt\"{lang}>",
            1 + p.audio.len() + i
        );
        out.push_str("      <Role schemeIdUri=\"urn:mpeg:dash:role:2011\" value=\"subtitle\"/>\n");
        let _ = writeln!(
            out,
            "      <Representation id=\"{}\" bandwidth=\"256\">\n        \
             <BaseURL>{}{}/{}</BaseURL>\n      </Representation>\n    </AdaptationSet>",
            escape(t.folder),
            escape(p.folders_at),
            escape(t.folder),
            escape(t.file)
        );
    }
    out.push_str("  </Period>\n</MPD>\n");
    out
}

/// The `SegmentTemplate` of the representation in `folder`: runs of equal durations become one
/// `S` element with a repeat count.
fn segment_template(out: &mut String, folder: &str, segment_seconds: &[f64]) {
    let folder = escape(folder);
    let _ = writeln!(
        out,
        "        <SegmentTemplate timescale=\"{}\" initialization=\"{folder}/init.mp4\" \
         media=\"{folder}/seg_$Number%05d$.m4s\" startNumber=\"0\">",
        TIMESCALE as u32
    );
    out.push_str("          <SegmentTimeline>\n");
    for (first, duration, repeat) in timeline(segment_seconds) {
        let t = match first {
            Some(t) => format!(" t=\"{t}\""),
            None => String::new(),
        };
        let r = match repeat {
            0 => String::new(),
            n => format!(" r=\"{n}\""),
        };
        let _ = writeln!(out, "            <S{t} d=\"{duration}\"{r}/>");
    }
    out.push_str("          </SegmentTimeline>\n        </SegmentTemplate>\n");
}

/// The timeline as `(start of the first, only for the first run; duration; repeats)` runs,
/// in ticks. Each segment's start is its accumulated time rounded, and its duration the gap
/// to the next start, so rounding never adds up.
fn timeline(segment_seconds: &[f64]) -> Vec<(Option<u64>, u64, u32)> {
    let mut starts = Vec::with_capacity(segment_seconds.len() + 1);
    let mut elapsed = 0.0;
    starts.push(0u64);
    for d in segment_seconds {
        elapsed += d;
        starts.push((elapsed * TIMESCALE).round() as u64);
    }
    let mut runs: Vec<(Option<u64>, u64, u32)> = Vec::new();
    for pair in starts.windows(2) {
        let duration = pair[1] - pair[0];
        match runs.last_mut() {
            Some((_, d, repeat)) if *d == duration => *repeat += 1,
            _ => runs.push((runs.is_empty().then_some(0), duration, 0)),
        }
    }
    runs
}

/// `PT1M2.345S`-style, as xs:duration: seconds with milliseconds.
fn iso_duration(seconds: f64) -> String {
    format!("PT{:.3}S", seconds.max(0.0))
}

/// The five characters XML reserves, escaped for text and attribute values.
fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&apos;")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn presentation(audio: bool) -> Presentation<'static> {
        Presentation {
            duration_s: 6.0,
            frame_rate: (30000, 1001),
            video: vec![VideoRepresentation {
                folder: "720p",
                width: 1280,
                height: 720,
                bandwidth: 3_000_000,
                codecs: "avc1.64001f",
                segment_seconds: vec![1.0, 1.0, 2.0, 2.0],
            }],
            audio: if audio {
                vec![
                    AudioSet {
                        folder: "audio",
                        language: Some("fra"),
                        main: true,
                        bandwidth: 130_000,
                        segment_seconds: vec![1.002667; 5],
                    },
                    AudioSet {
                        folder: "audio_2",
                        language: None,
                        main: false,
                        bandwidth: 130_000,
                        segment_seconds: vec![1.002667; 5],
                    },
                ]
            } else {
                Vec::new()
            },
            text: vec![TextSet {
                folder: "subs",
                file: "subtitles.vtt",
                language: Some("en"),
            }],
            folders_at: "_v1/",
        }
    }

    #[test]
    fn runs_of_equal_segments_repeat_and_rounding_never_adds_up() {
        assert_eq!(
            timeline(&[1.0, 1.0, 2.0, 2.0, 0.5]),
            [(Some(0), 1000, 1), (None, 2000, 1), (None, 500, 0)]
        );
        // 1.002667 s is 1002.667 ms: the starts round, the gaps carry the remainder.
        let audio = timeline(&[1.002667; 3]);
        let total: u64 = audio.iter().map(|(_, d, r)| d * u64::from(r + 1)).sum();
        assert_eq!(total, 3008);
    }

    #[test]
    fn the_manifest_names_every_segment_of_every_representation() {
        let mpd = render_mpd(&presentation(true));
        assert!(
            mpd.contains("mediaPresentationDuration=\"PT6.000S\""),
            "{mpd}"
        );
        assert!(!mpd.contains("<BaseURL>_v1/</BaseURL>"), "{mpd}");
        assert!(mpd.contains("frameRate=\"30000/1001\""));
        assert!(mpd.contains(
            "<Representation id=\"720p\" bandwidth=\"3000000\" width=\"1280\" height=\"720\" \
             sar=\"1:1\" codecs=\"avc1.64001f\">"
        ));
        assert!(mpd.contains(
            "initialization=\"_v1/720p/init.mp4\" media=\"_v1/720p/seg_$Number%05d$.m4s\""
        ));
        assert!(
            mpd.contains("<S t=\"0\" d=\"1000\" r=\"1\"/>\n            <S d=\"2000\" r=\"1\"/>")
        );
        assert!(mpd.contains("contentType=\"audio\" mimeType=\"audio/mp4\" lang=\"fra\""));
        assert!(mpd.contains("initialization=\"_v1/audio/init.mp4\""));
        assert!(mpd.contains("urn:mpeg:dash:role:2011\" value=\"main\"/>"));
        assert!(mpd.contains(
            "<AdaptationSet id=\"2\" contentType=\"audio\" mimeType=\"audio/mp4\" segmentAlignment"
        ));
        assert!(
            mpd.contains("value=\"alternate\"") && mpd.contains("_v1/audio_2/seg_$Number%05d$.m4s")
        );
        // Well-formed: every element that opens, closes.
        for tag in [
            "MPD",
            "Period",
            "AdaptationSet",
            "Representation",
            "SegmentTemplate",
        ] {
            assert_eq!(
                mpd.matches(&format!("<{tag} ")).count() + mpd.matches(&format!("<{tag}>")).count(),
                mpd.matches(&format!("</{tag}>")).count(),
                "{tag}"
            );
        }
        assert!(mpd.contains("contentType=\"text\" mimeType=\"text/vtt\" lang=\"en\""));
        assert!(mpd.contains("<BaseURL>_v1/subs/subtitles.vtt</BaseURL>"));
        let silent = render_mpd(&presentation(false));
        assert!(!silent.contains("audio/mp4"), "{silent}");
    }

    #[test]
    fn reserved_characters_are_escaped() {
        assert_eq!(escape("a&b<\"'>"), "a&amp;b&lt;&quot;&apos;&gt;");
    }
}
