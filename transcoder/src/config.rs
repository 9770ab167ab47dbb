//! The knobs of a job: how to encode and what input to refuse. One typed value each, built once
//! from flags/environment by the CLI and passed down; nothing below reads the environment.

use std::path::PathBuf;
use std::time::Duration;

/// x264 presets, fastest first; the CLI refuses anything else before a job starts.
pub const X264_PRESETS: [&str; 10] = [
    "ultrafast",
    "superfast",
    "veryfast",
    "faster",
    "fast",
    "medium",
    "slow",
    "slower",
    "veryslow",
    "placebo",
];

/// What the segments are.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum SegmentFormat {
    /// MPEG-TS, each rung with its default audio track muxed in: what every HLS player since
    /// 2009 reads, for old devices.
    Ts,
    /// CMAF: fragmented MP4 with an init segment per rendition, video and every audio track as
    /// separate renditions, subtitles and I-frame playlists, read by HLS (version 7,
    /// `EXT-X-MAP`) and DASH (`manifest.mpd`) alike.
    #[default]
    Cmaf,
}

/// How every rung is encoded.
#[derive(Debug, Clone)]
pub struct EncodeSettings {
    /// libx264 preset for every rung (`veryfast` by default: the best quality per Fargate second
    /// for a ladder encoded on a couple of vCPUs).
    pub preset: String,
    /// Constant rate factor; each rung is also capped by its maxrate/bufsize (capped CRF).
    pub crf: u8,
    /// HLS segment length in seconds after the opening. Keyframes are forced on segment
    /// boundaries only, the same instants in every rung, so players switch cleanly.
    pub segment_seconds: u32,
    /// The first segment's length in seconds, doubling until `segment_seconds` (1 s: 1, 1, 2,
    /// then 4 s segments), so that a stream is playable soon; 0 for none
    /// (`encode::Schedule`).
    pub opening_seconds: u32,
    /// Rungs to produce, by shorter side; empty for every rung that fits the source.
    pub rungs: Vec<u32>,
    /// The segments' container: MPEG-TS with the audio in every rung, or CMAF (fMP4, audio
    /// as its own rendition, a DASH manifest beside the master playlist).
    pub segments: SegmentFormat,
    /// The ffmpeg binary.
    pub ffmpeg: PathBuf,
    /// The ffprobe binary.
    pub ffprobe: PathBuf,
    /// How long an encode may go without its progress moving before it is stopped as stalled
    /// (a decoder stuck on a crafted frame, a hung filesystem).
    pub stall: Duration,
    /// An encode may run at most this many times the source's duration (and never less than
    /// [`MIN_ENCODE_WALL`]) before it is stopped: progress that crawls forever is a stall too.
    pub max_encode_factor: f64,
    /// The largest frame the decoder may produce, in pixels (ffmpeg's `-max_pixels`). The
    /// probe checks the size a source declares; this holds every decoded frame to the same
    /// [`Limits::max_pixels`], so a stream that grows mid-way fails instead of filling memory.
    pub max_frame_pixels: u64,
}

/// The least wall time any encode is given, whatever the source's length: a 2 s clip still
/// pays for starting ffmpeg, and a poster has no length of its own.
pub const MIN_ENCODE_WALL: Duration = Duration::from_secs(600);

impl EncodeSettings {
    /// The wall-time cap for encoding `duration_s` seconds of source.
    pub fn encode_wall(&self, duration_s: f64) -> Duration {
        let scaled = Duration::try_from_secs_f64(duration_s.max(0.0) * self.max_encode_factor)
            .unwrap_or(Duration::MAX);
        scaled.max(MIN_ENCODE_WALL)
    }
}

impl Default for EncodeSettings {
    fn default() -> Self {
        Self {
            preset: "veryfast".into(),
            crf: 23,
            segment_seconds: 4,
            opening_seconds: 1,
            rungs: Vec::new(),
            segments: SegmentFormat::Ts,
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
            stall: Duration::from_secs(300),
            max_encode_factor: 20.0,
            max_frame_pixels: Limits::default().max_pixels,
        }
    }
}

/// What a source may be before any encoding starts; anything beyond is invalid input.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Largest source file accepted, in bytes.
    pub max_input_bytes: u64,
    /// Largest displayed picture accepted, in pixels (width x height); stops decompression bombs
    /// that declare an enormous frame in a tiny file.
    pub max_pixels: u64,
    /// Longest source accepted, in seconds.
    pub max_duration_s: f64,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_input_bytes: 20 * 1024 * 1024 * 1024,
            // 8K UHD; anything larger is not something a VOD ladder topping out at 1080p needs.
            max_pixels: 7680 * 4320,
            max_duration_s: 4.0 * 3600.0,
        }
    }
}
