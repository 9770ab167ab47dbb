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

/// Renders the master playlist, variants in the order given (best first: Safari starts with
/// the first listed, and a 1080p start is right for most viewers of a VOD catalogue).
pub fn render_master(variants: &[Variant]) -> String {
    let mut out = String::from("#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n");
    for v in variants {
        out.push_str(&format!(
            "#EXT-X-STREAM-INF:BANDWIDTH={},AVERAGE-BANDWIDTH={},RESOLUTION={}x{},CODECS=\"{}\",FRAME-RATE={:.3}\n{}\n",
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
        let text = render_master(&[Variant {
            uri: "720p/index.m3u8".into(),
            bandwidth: 3_100_000,
            average_bandwidth: 2_000_000,
            width: 1280,
            height: 720,
            codecs: "avc1.64001f,mp4a.40.2".into(),
            frame_rate: 30000.0 / 1001.0,
        }]);
        assert_eq!(
            text,
            "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-INDEPENDENT-SEGMENTS\n\
             #EXT-X-STREAM-INF:BANDWIDTH=3100000,AVERAGE-BANDWIDTH=2000000,RESOLUTION=1280x720,\
             CODECS=\"avc1.64001f,mp4a.40.2\",FRAME-RATE=29.970\n720p/index.m3u8\n"
        );
        let parsed = m3u8_rs::parse_master_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.variants[0].bandwidth, 3_100_000);
    }
}
