//! The multivariant (master) playlist.

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

/// A CMAF job's audio rendition, which every variant plays beside its video.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioRendition {
    /// Media playlist URI relative to the master (`audio/index.m3u8`).
    pub uri: String,
    /// The source track's language (a checked BCP 47 tag), when it declares one.
    pub language: Option<String>,
}

/// The audio group every CMAF variant names.
const AUDIO_GROUP: &str = "audio";

/// How the variants' segments are laid out: MPEG-TS with the audio muxed in, or CMAF, whose
/// video variants name a separate audio rendition (if the source has audio).
#[derive(Debug, Clone, PartialEq)]
pub enum MasterLayout {
    /// Version 3, audio inside each variant.
    Muxed,
    /// Version 7 (`EXT-X-MAP` in the media playlists), audio as an `EXT-X-MEDIA` rendition.
    Cmaf(Option<AudioRendition>),
}

/// Renders the master playlist, variants in the order given (best first: Safari starts with
/// the first listed, and a 1080p start is right for most viewers of a VOD catalogue). A
/// variant's BANDWIDTH and CODECS must already include its audio.
pub fn render_master(variants: &[Variant], layout: &MasterLayout) -> String {
    let version = match layout {
        MasterLayout::Muxed => 3,
        MasterLayout::Cmaf(_) => 7,
    };
    let mut out = format!("#EXTM3U\n#EXT-X-VERSION:{version}\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    let mut audio_attribute = String::new();
    if let MasterLayout::Cmaf(Some(audio)) = layout {
        let (name, language) = match &audio.language {
            Some(language) => (language.as_str(), format!(",LANGUAGE=\"{language}\"")),
            None => ("Audio", String::new()),
        };
        out.push_str(&format!(
            "#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"{AUDIO_GROUP}\",NAME=\"{name}\"{language},\
             DEFAULT=YES,AUTOSELECT=YES,CHANNELS=\"2\",URI=\"{}\"\n",
            audio.uri
        ));
        audio_attribute = format!(",AUDIO=\"{AUDIO_GROUP}\"");
    }
    for v in variants {
        out.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\",FRAME-RATE={:.3}{audio_attribute}\n{}\n",
            v.bandwidth, v.average_bandwidth, v.width, v.height, v.codecs, v.frame_rate, v.uri
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
    fn cmaf_variants_name_one_audio_rendition() {
        let variant = Variant {
            uri: "720p/index.m3u8".into(),
            bandwidth: 3_228_000,
            average_bandwidth: 2_128_000,
            width: 1280,
            height: 720,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            frame_rate: 30.0,
        };
        let audio = AudioRendition {
            uri: "audio/index.m3u8".into(),
            language: Some("fr".into()),
        };
        let text = render_master(&[variant], &MasterLayout::Cmaf(Some(audio)));
        assert!(text.starts_with("#EXTM3U\n#EXT-X-VERSION:7\n"), "{text}");
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
        let media = &parsed.alternatives[0];
        assert_eq!(media.media_type, m3u8_rs::AlternativeMediaType::Audio);
        assert_eq!(media.uri.as_deref(), Some("audio/index.m3u8"));
        assert_eq!(media.language.as_deref(), Some("fr"));
        assert!(media.default && media.autoselect);
        assert_eq!(
            parsed.variants[0].audio.as_deref(),
            Some(media.group_id.as_str())
        );

        // No audio track: no rendition, and variants name none.
        let silent = render_master(&[], &MasterLayout::Cmaf(None));
        assert!(!silent.contains("EXT-X-MEDIA") && silent.contains("VERSION:7"));
    }
}
