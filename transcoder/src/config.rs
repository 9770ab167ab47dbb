//! The knobs of a job: how to encode and what input to refuse. One typed value each, built once
//! from flags/environment by the CLI and passed down; nothing below reads the environment.

use std::path::PathBuf;

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

/// How every rung is encoded.
#[derive(Debug, Clone)]
pub struct EncodeSettings {
    /// libx264 preset for every rung (`veryfast` by default: the best quality per Fargate second
    /// for a ladder encoded on a couple of vCPUs).
    pub preset: String,
    /// Constant rate factor; each rung is also capped by its maxrate/bufsize (capped CRF).
    pub crf: u8,
    /// Target HLS segment length in seconds; segments are cut on the keyframe grid.
    pub segment_seconds: u32,
    /// Keyframes are forced at multiples of this many seconds in every rung, so segment
    /// boundaries are identical across rungs and players switch cleanly.
    pub keyframe_seconds: u32,
    /// Rungs to produce, by shorter side; empty for every rung that fits the source.
    pub rungs: Vec<u32>,
    /// The ffmpeg binary.
    pub ffmpeg: PathBuf,
    /// The ffprobe binary.
    pub ffprobe: PathBuf,
}

impl Default for EncodeSettings {
    fn default() -> Self {
        Self {
            preset: "veryfast".into(),
            crf: 23,
            segment_seconds: 4,
            keyframe_seconds: 2,
            rungs: Vec::new(),
            ffmpeg: "ffmpeg".into(),
            ffprobe: "ffprobe".into(),
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
