//! The multivariant (master) playlist.

use super::codecs::AAC_LC;

/// One variant stream as the master playlist describes it.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// Media playlist URI relative to the master (`720p/index.m3u8`).
    pub uri: String,
    /// Peak segment bitrate in bit/s.
    pub bandwidth: u64,
    /// Average bitrate in bit/s.
    pub average_bandwidth: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// RFC 6381 codecs, comma-separated (`avc1.64001f,mp4a.40.2`).
    pub codecs: String,
    /// Frames per second.
    pub frame_rate: f64,
}

/// One of a CMAF job's audio renditions, which every variant may play beside its video.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioRendition {
    /// Media playlist URI relative to the master (`audio/index.m3u8`).
    pub uri: String,
    /// The name players list, unique in the job.
    pub name: String,
    /// The source track's language (a checked ISO 639 code), when it declares one.
    pub language: Option<String>,
    /// The one players start with.
    pub default: bool,
    /// Peak bitrate in bit/s.
    pub bandwidth: u64,
    /// Average bitrate in bit/s.
    pub average_bandwidth: u64,
}

/// One of a CMAF job's subtitle renditions (a whole-file WebVTT playlist).
#[derive(Debug, Clone, PartialEq)]
pub struct SubtitleRendition {
    /// Media playlist URI relative to the master (`subs/index.m3u8`).
    pub uri: String,
    /// The name players list, unique in the job.
    pub name: String,
    /// Its language, when known.
    pub language: Option<String>,
}

/// A CMAF rung's I-frame playlist, as the master lists it.
#[derive(Debug, Clone, PartialEq)]
pub struct IFrameVariant {
    /// The playlist, relative to the master (`720p/iframes.m3u8`).
    pub uri: String,
    /// Its peak bitrate in bit/s.
    pub bandwidth: u64,
    /// Width in pixels.
    pub width: u32,
    /// Height in pixels.
    pub height: u32,
    /// The video's RFC 6381 codec.
    pub codecs: String,
}

/// The audio group every CMAF variant names.
const AUDIO_GROUP: &str = "audio";
/// The subtitle group every CMAF variant names, when there are subtitles.
const SUBTITLE_GROUP: &str = "subs";

/// How the variants' segments are laid out: MPEG-TS with the audio muxed in, or CMAF, whose
/// video variants name separate audio renditions (none for a silent source).
#[derive(Debug, Clone, PartialEq)]
pub enum MasterLayout {
    /// Version 3, audio inside each variant.
    Muxed,
    /// Version 7 (`EXT-X-MAP` in the media playlists), each audio track and each subtitle
    /// track an `EXT-X-MEDIA` rendition, and an audio-only variant last, for connections too
    /// slow for any video.
    Cmaf {
        /// The audio tracks, the default first.
        audio: Vec<AudioRendition>,
        /// The subtitle tracks (none while the encode runs: they are written after it).
        subtitles: Vec<SubtitleRendition>,
        /// The rungs' I-frame playlists (none while the encode runs).
        iframes: Vec<IFrameVariant>,
    },
}

/// Renders the master playlist, variants in the order given (best first: Safari starts with
/// the first listed, and a 1080p start is right for most viewers of a VOD catalogue). A
/// variant's BANDWIDTH and CODECS must already include its audio.
pub fn render_master(variants: &[Variant], layout: &MasterLayout) -> String {
    let version = match layout {
        MasterLayout::Muxed => 3,
        MasterLayout::Cmaf { .. } => 7,
    };
    let mut out = format!("#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let (audio, subtitles, iframes): (&[AudioRendition], &[SubtitleRendition], &[IFrameVariant]) =
        match layout {
            MasterLayout::Cmaf {
                audio,
                subtitles,
                iframes,
            } => (audio, subtitles, iframes),
            MasterLayout::Muxed => (&[], &[], &[]),
        };
    for track in audio {
        let language = match &track.language {
            Some(language) => format!(",LANGUAGE=\"{language}\""),
            None => String::new(),
        };
        let default = if track.default { "YES" } else { "NO" };
        out.push_str(&format!(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{AUDIO_GROUP}\",NAME=\"{}\"{language},\
             DEFAULT={default},AUTOSELECT=YES,CHANNELS=\"2\",URI=\"{}\"\n",
            track.name, track.uri
        ));
    }
    for track in subtitles {
        let language = match &track.language {
            Some(language) => format!(",LANGUAGE=\"{language}\""),
            None => String::new(),
        };
        out.push_str(&format!(
            "#EXT-X-MEDIA:TYPE=SUBTITLES,GROUP-ID=\"{SUBTITLE_GROUP}\",NAME=\"{}\"{language},\
             DEFAULT=NO,AUTOSELECT=YES,FORCED=NO,URI=\"{}\"\n",
            track.name, track.uri
        ));
    }
    let mut audio_attribute = match audio.is_empty() {
        true => String::new(),
        false => format!(",AUDIO=\"{AUDIO_GROUP}\""),
    };
    if !subtitles.is_empty() {
        audio_attribute.push_str(&format!(",SUBTITLES=\"{SUBTITLE_GROUP}\""));
    }
    for v in variants {
        out.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\",FRAME-RATE={:.3}{audio_attribute}\n{}\n",
            v.bandwidth, v.average_bandwidth, v.width, v.height, v.codecs, v.frame_rate, v.uri
        ));
    }
    if let Some(main) = audio.iter().find(|t| t.default) {
        out.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},CODECS=\"{AAC_LC}\"{audio_attribute}\n{}\n",
            main.bandwidth, main.average_bandwidth, main.uri
        ));
    }
    for i in iframes {
        out.push_str(&format!(
            "#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\",URI=\"{}\"\n",
            i.bandwidth, i.width, i.height, i.codecs, i.uri
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_variant_carries_the_attributes_players_need() {
        let text = render_master(
            &[Variant {
                uri: "720p/index.m3u8".into(),
                bandwidth: 3_100_000,
                average_bandwidth: 2_000_000,
                width: 1280,
                height: 720,
                codecs: "avc1.64001f,mp4a.40.2".into(),
                frame_rate: 30000.0 / 1001.0,
            }],
            &MasterLayout::Muxed,
        );
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3100000,AVERAGE-BANDWIDTH=2000000,RESOLUTION=1280x720,\
             CODECS=\"avc1.64001f,mp4a.40.2\",FRAME-RATE=29.970\n720p/index.m3u8\n"
        );
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.variants[0].bandwidth, 3_100_000);
    }

    #[test]
    fn cmaf_variants_name_every_audio_rendition_and_end_with_an_audio_only_one() {
        let variant = Variant {
            uri: "720p/index.m3u8".into(),
            bandwidth: 3_228_000,
            average_bandwidth: 2_128_000,
            width: 1280,
            height: 720,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            frame_rate: 30.0,
        };
        let track = |uri: &str, name: &str, default| AudioRendition {
            uri: uri.into(),
            name: name.into(),
            language: Some(name.into()),
            default,
            bandwidth: 130_000,
            average_bandwidth: 129_000,
        };
        let audio = vec![
            track("audio/index.m3u8", "fra", true),
            track("audio_2/index.m3u8", "eng", false),
        ];
        let subtitles = vec![SubtitleRendition {
            uri: "subs/index.m3u8".into(),
            name: "en".into(),
            language: Some("en".into()),
        }];
        let iframes = vec![IFrameVariant {
            uri: "720p/iframes.m3u8".into(),
            bandwidth: 400_000,
            width: 1280,
            height: 720,
            codecs: "avc1.64001f".into(),
        }];
        let text = render_master(
            &[variant],
            &MasterLayout::Cmaf {
                audio,
                subtitles,
                iframes,
            },
        );
        assert!(
            text.contains("#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=400000,RESOLUTION=1280x720,CODECS=\"avc1.64001f\",URI=\"720p/iframes.m3u8\""),
            "{text}"
        );
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"), "{text}");
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
        let media = &parsed.alternatives;
        assert_eq!(media.len(), 3);
        let subs = &media[2];
        assert_eq!(subs.media_type, m3u8_rs::AlternativeMediaType::Subtitles);
        assert_eq!(subs.uri.as_deref(), Some("subs/index.m3u8"));
        assert!(!subs.default && subs.autoselect);
        assert_eq!(
            parsed.variants[0].subtitles.as_deref(),
            Some(subs.group_id.as_str())
        );
        assert_eq!(media[0].media_type, m3u8_rs::AlternativeMediaType::Audio);
        assert_eq!(media[0].uri.as_deref(), Some("audio/index.m3u8"));
        assert_eq!(media[0].language.as_deref(), Some("fra"));
        assert!(media[0].default && media[0].autoselect);
        assert!(!media[1].default && media[1].name == "eng");
        assert_eq!(media[0].group_id, media[1].group_id);
        assert_eq!(
            parsed.variants[0].audio.as_deref(),
            Some(media[0].group_id.as_str())
        );
        // The audio-only variant, last of the variants: the default track alone.
        let last = parsed.variants.iter().rfind(|v| !v.is_i_frame).unwrap();
        assert_eq!(
            (last.uri.as_str(), last.bandwidth, last.codecs.as_deref()),
            ("audio/index.m3u8", 130_000, Some("mp4a.40.2"))
        );
        assert!(last.resolution.is_none());

        // No audio track: no rendition, and variants name none.
        let silent = render_master(
            &[],
            &MasterLayout::Cmaf {
                audio: Vec::new(),
                subtitles: Vec::new(),
                iframes: Vec::new(),
            },
        );
        assert!(!silent.contains("EXT-X-MEDIA") && silent.contains("VERSION:7"));
        assert!(!silent.contains("AUDIO=") && !silent.contains("SUBTITLES="));
    }
}
