//! What the transcoder needs to know about a source, in the terms the ladder and the encoder
//! use: the displayed picture, not the coded one.

/// A frame rate as the exact fraction ffprobe reports (`30000/1001`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rational {
    /// Numerator.
    pub num: u32,
    /// Denominator (never 0).
    pub den: u32,
}

impl Rational {
    /// Parses `num/den`; `None` for `0/0`, zero or malformed values.
    pub fn parse(text: &str) -> Option<Self> {
        let (num, den) = text.split_once('/')?;
        let (num, den) = (num.trim().parse().ok()?, den.trim().parse().ok()?);
        (num > 0 && den > 0).then_some(Self { num, den })
    }

    /// The value as a float.
    pub fn as_f64(self) -> f64 {
        self.num as f64 / self.den as f64
    }
}

impl std::fmt::Display for Rational {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.num, self.den)
    }
}

/// The video stream chosen for encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct VideoStream {
    /// Absolute stream index in the container (what `-map 0:N` and `[0:N]` take).
    pub index: u32,
    /// Decoder name (`h264`, `hevc`, `prores`...).
    pub codec: String,
    /// Coded width and height in pixels, as stored.
    pub coded_width: u32,
    /// See `coded_width`.
    pub coded_height: u32,
    /// Width as displayed: pixel aspect and rotation applied.
    pub display_width: u32,
    /// Height as displayed: pixel aspect and rotation applied.
    pub display_height: u32,
    /// Rotation from the display matrix or the legacy `rotate` tag, in degrees.
    pub rotation: i32,
    /// Average frame rate (`avg_frame_rate`), the truth for variable-rate sources.
    pub avg_frame_rate: Option<Rational>,
    /// Base frame rate (`r_frame_rate`), the container's nominal rate.
    pub base_frame_rate: Option<Rational>,
    /// Pixel format as decoded (`yuv420p10le` for 10-bit sources).
    pub pix_fmt: Option<String>,
    /// Frame count when the container states it.
    pub frame_count: Option<u64>,
    /// Whether the picture is HDR, from its transfer characteristic.
    pub dynamic_range: DynamicRange,
}

/// The brightness range a video was graded for, as its transfer characteristic declares it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DynamicRange {
    /// Standard range (BT.709, BT.601, sRGB, or nothing declared).
    Sdr,
    /// HDR10 and Dolby Vision's base layer: SMPTE ST 2084, the perceptual quantizer.
    Pq,
    /// Hybrid log-gamma (ARIB STD-B67), broadcast HDR and phone HDR video.
    Hlg,
}

impl DynamicRange {
    /// Reads ffprobe's `color_transfer` name; anything but the two HDR curves is standard
    /// range, which is what an untagged picture is by convention.
    pub fn from_transfer(name: Option<&str>) -> Self {
        match name {
            Some("smpte2084") => Self::Pq,
            Some("arib-std-b67") => Self::Hlg,
            _ => Self::Sdr,
        }
    }

    /// The name the job's record uses (`pq`, `hlg`), `None` for standard range.
    pub fn hdr_name(self) -> Option<&'static str> {
        match self {
            Self::Sdr => None,
            Self::Pq => Some("pq"),
            Self::Hlg => Some("hlg"),
        }
    }
}

/// The audio stream chosen for encoding.
#[derive(Debug, Clone, PartialEq)]
pub struct AudioStream {
    /// Absolute stream index in the container.
    pub index: u32,
    /// Decoder name.
    pub codec: String,
    /// Channel count.
    pub channels: u32,
    /// The track's language as an ISO 639 code (`eng`, `fr`), when it declares a real one.
    pub language: Option<String>,
}

/// A text subtitle track of the source, which becomes WebVTT.
#[derive(Debug, Clone, PartialEq)]
pub struct SubtitleStream {
    /// Absolute stream index in the container.
    pub index: u32,
    /// Decoder name (`mov_text`, `subrip`, `ass`, `webvtt`).
    pub codec: String,
    /// The track's language, when it declares a real one.
    pub language: Option<String>,
}

/// Subtitle decoders whose cues are text, which WebVTT can carry. Bitmap subtitles (DVD, Blu-ray,
/// DVB) would need OCR and are left out.
pub const TEXT_SUBTITLE_CODECS: [&str; 6] = ["mov_text", "subrip", "srt", "ass", "ssa", "webvtt"];

/// A language tag fit to publish: two or three ASCII letters, lower-cased, and not `und`
/// (undetermined). Anything else in a hostile upload's tags is dropped, so no quote or line
/// break ever reaches a playlist.
pub fn checked_language(tag: Option<&str>) -> Option<String> {
    crate::storage::language_code(tag?)
}

/// A probed source.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceInfo {
    /// The demuxer ffprobe used (`mov,mp4,m4a,3gp,3g2,mj2`).
    pub format_name: String,
    /// Duration in seconds of the video (the container's when the stream does not say).
    pub duration_s: f64,
    /// The video stream.
    pub video: VideoStream,
    /// The audio stream, if any: the default one, else the first.
    pub audio: Option<AudioStream>,
    /// Every audio stream, `audio` first, at most [`MAX_AUDIO_TRACKS`]: a CMAF job makes a
    /// rendition of each.
    pub audio_tracks: Vec<AudioStream>,
    /// Text subtitle tracks, in the file's order, at most [`MAX_AUDIO_TRACKS`].
    pub subtitles: Vec<SubtitleStream>,
    /// Subtitle tracks left out: bitmap ones, and any past the limit.
    pub subtitles_left_out: usize,
}

/// The most audio tracks a job encodes: films carry a handful of languages and commentaries;
/// a file with more is either a mistake or an attempt to make us run an encoder per stream.
pub const MAX_AUDIO_TRACKS: usize = 8;

/// Output frame rates a player expects; a variable-rate source is snapped to the nearest.
const STANDARD_RATES: [(u32, u32); 9] = [
    (24000, 1001),
    (24, 1),
    (25, 1),
    (30000, 1001),
    (30, 1),
    (48, 1),
    (50, 1),
    (60000, 1001),
    (60, 1),
];

impl SourceInfo {
    /// The constant frame rate every rung is encoded at: the source's average rate snapped to
    /// the nearest standard rate when within 3% (phones record ~29.8 fps VFR), the average itself
    /// otherwise (a 15 fps screen capture stays 15), and never above 60.
    pub fn output_frame_rate(&self) -> Rational {
        let rate = self
            .video
            .avg_frame_rate
            .filter(|r| r.as_f64() <= 1000.0)
            .or(self.video.base_frame_rate)
            .unwrap_or(Rational { num: 30, den: 1 });
        let fps = rate.as_f64();
        if fps > 60.0 {
            return Rational { num: 60, den: 1 };
        }
        let nearest = STANDARD_RATES
            .iter()
            .map(|&(num, den)| Rational { num, den })
            .min_by(|a, b| {
                let (da, db) = ((a.as_f64() - fps).abs(), (b.as_f64() - fps).abs());
                da.total_cmp(&db)
            })
            .expect("the table is not empty");
        if (nearest.as_f64() - fps).abs() / fps <= 0.03 {
            nearest
        } else {
            // Whole frames per second keep the keyframe grid exact.
            Rational {
                num: (fps.round() as u32).max(1),
                den: 1,
            }
        }
    }
}
