//! The one ffmpeg command that decodes the source once and encodes every rung.
//!
//! Built as an argument vector (never a shell string), with outputs relative to the work
//! folder ffmpeg runs in, so no path we did not choose ever reaches an ffmpeg pattern.

use std::ffi::{OsStr, OsString};

use super::audio::{audio_tracks, AudioTrack};
use super::tone_map::{bt709_tags, tone_map_chain};
use super::trickplay::Trickplay;
use super::{Schedule, CUT_EVERY};
use crate::config::{EncodeSettings, SegmentFormat};
use crate::ladder::Rung;
use crate::probe::{AudioStream, Rational, SourceInfo, SELF_CONTAINED_DEMUXERS};

/// Media playlist name inside each rung folder.
pub const MEDIA_PLAYLIST: &str = "index.m3u8";
/// MPEG-TS segment names inside each rung folder (an ffmpeg pattern).
pub const SEGMENT_PATTERN: &str = "seg_%05d.ts";
/// CMAF segment names inside each rendition's folder (an ffmpeg pattern).
pub const CMAF_SEGMENT_PATTERN: &str = "seg_%05d.m4s";
/// A CMAF rendition's init segment, beside its playlist.
pub const INIT_SEGMENT: &str = "init.mp4";
/// The poster, beside the rung folders.
pub const POSTER: &str = "poster.jpg";

/// Everything the command depends on.
#[derive(Debug, Clone, Copy)]
pub struct EncodePlan<'a> {
    /// The probed source.
    pub source: &'a SourceInfo,
    /// The rungs to encode, largest first.
    pub ladder: &'a [Rung],
    /// Constant output frame rate for every rung.
    pub fps: Rational,
    /// Encoder settings.
    pub settings: &'a EncodeSettings,
}

impl EncodePlan<'_> {
    /// The seek preview's layout.
    pub fn trickplay(&self) -> Trickplay {
        Trickplay::plan(self.source.duration_s, &self.ladder[0])
    }

    /// Which frame becomes the poster: one tenth into the video, past black intros and
    /// fade-ins, but early enough to exist in any decodable file.
    fn poster_frame(&self) -> u64 {
        (self.source.duration_s * 0.1 * self.fps.as_f64()).floor() as u64
    }
}

/// The filter graph: one decode, one frame-rate conversion (constant rate for VFR sources),
/// one tone mapping for an HDR source, then a split into one scaler per rung plus one for the
/// poster. Rotation is applied by ffmpeg's autorotate before our filters; `format=yuv420p`
/// makes every rung 8-bit 4:2:0 whatever the source's depth, and `setsar=1` makes its pixels
/// square.
pub fn filter_graph(plan: &EncodePlan<'_>) -> String {
    let n = plan.ladder.len();
    let mut graph = format!("[0:{}]fps={}", plan.source.video.index, plan.fps);
    if let Some(chain) = tone_map_chain(&plan.source.video, &plan.ladder[0]) {
        graph.push_str(&format!(",{chain}"));
    }
    graph.push_str(&format!(",split={}", n + 2));
    for i in 0..n {
        graph.push_str(&format!("[s{i}]"));
    }
    graph.push_str("[sp][st]");
    for (i, rung) in plan.ladder.iter().enumerate() {
        graph.push_str(&format!(
            ";[s{i}]scale={}:{}:flags=bicubic,setsar=1,format=yuv420p[v{i}]",
            rung.width, rung.height
        ));
    }
    let top = &plan.ladder[0];
    graph.push_str(&format!(
        ";[sp]select=eq(n\\,{}),scale={}:{}:flags=bicubic,setsar=1,format=yuvj420p[poster]",
        plan.poster_frame(),
        top.width,
        top.height
    ));
    graph.push(';');
    graph.push_str(&plan.trickplay().filter_branch("st"));
    graph
}

/// Where keyframes go, the same in every rung.
#[derive(Debug, Clone)]
pub struct KeyframeGrid {
    /// x264's GOP limit, past the grid so that it never fires first.
    pub gop: u32,
    /// The `-force_key_frames` expression that puts keyframes on the grid.
    pub force: String,
}

/// Rung `index`'s maps and encoders (the filter graph's `[v{index}]` and the source's audio),
/// the same for a single pass and a range: capped-CRF x264 with keyframes only on the grid,
/// AAC stereo at 48 kHz, and no metadata.
pub fn rung_encoder_args(
    index: usize,
    rung: &Rung,
    source: &SourceInfo,
    s: &EncodeSettings,
    grid: &KeyframeGrid,
) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-map", &format!("[v{index}]")]);
    // CMAF carries the audio once, as its own rendition (`audio_rendition_args`).
    let muxed_audio = source
        .audio
        .as_ref()
        .filter(|_| s.segments == SegmentFormat::Ts);
    if let Some(audio) = muxed_audio {
        push(&["-map", &format!("0:{}", audio.index)]);
    }
    push(&[
        "-c:v",
        "libx264",
        "-preset",
        &s.preset,
        "-crf",
        &s.crf.to_string(),
    ]);
    push(&["-maxrate", &format!("{}k", rung.maxrate_kbps)]);
    push(&["-bufsize", &format!("{}k", rung.bufsize_kbps)]);
    push(&["-profile:v", "high", "-pix_fmt", "yuv420p"]);
    push(bt709_tags(&source.video));
    // Keyframes only where the grid says, identical in every rung: x264's own scene-cut
    // keyframes are off and its GOP limit is past the grid so it never fires first.
    push(&[
        "-g",
        &grid.gop.to_string(),
        "-sc_threshold",
        "0",
        "-force_key_frames",
        &grid.force,
    ]);
    if let Some(audio) = muxed_audio {
        args.extend(audio_encoder_args(audio, rung.audio_kbps));
    }
    args.extend(private_output_args());
    args
}

/// AAC-LC stereo at 48 kHz and `kbps`, from the source's `audio`.
fn audio_encoder_args(audio: &AudioStream, kbps: u32) -> Vec<OsString> {
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-c:a", "aac", "-b:a", &format!("{kbps}k")]);
    push(&["-ac", "2", "-ar", "48000"]);
    // ffmpeg can only downmix layouts it knows; cameras record up to 16 discrete
    // channels with none, whose first two are the main mix by convention.
    if audio.channels > 8 {
        push(&["-filter:a", "pan=stereo|c0=c0|c1=c1"]);
    }
    args
}

/// Options every output ends with: no metadata, and room for a slow stream's packets.
fn private_output_args() -> Vec<OsString> {
    // Phone videos carry GPS positions and device names in their metadata: never publish it.
    ["-map_metadata", "-1", "-map_chapters", "-1"]
        .into_iter()
        .chain(["-max_muxing_queue_size", "1024"])
        .map(OsString::from)
        .collect()
}

/// A CMAF job's audio rendition: one audio track of the source encoded once, at `kbps`,
/// into its folder, cut every `cut_s` seconds, after `extra` output options. Every AAC frame
/// can start a segment, so the muxer cuts on time alone: at the opening's length, so the first
/// audio segment is ready as soon as the first video one.
pub fn audio_rendition_args(
    track: &AudioTrack,
    kbps: u32,
    cut_s: u32,
    extra: &[&str],
) -> Vec<OsString> {
    let mut args: Vec<OsString> = ["-map", &format!("0:{}", track.stream.index)]
        .into_iter()
        .map(OsString::from)
        .collect();
    args.extend(audio_encoder_args(&track.stream, kbps));
    args.extend(private_output_args());
    args.extend(hls_output_args(
        &track.folder,
        SegmentFormat::Cmaf,
        &cut_s.to_string(),
        extra,
    ));
    args
}

/// Segment names inside a rendition's folder (an ffmpeg pattern).
pub fn segment_pattern(format: SegmentFormat) -> &'static str {
    match format {
        SegmentFormat::Ts => SEGMENT_PATTERN,
        SegmentFormat::Cmaf => CMAF_SEGMENT_PATTERN,
    }
}

/// The HLS muxer and output of the rendition in `folder`, after `extra` output options, cut
/// after `hls_time` seconds at the next keyframe. A video rung passes [`CUT_EVERY`]: the muxer
/// then cuts at every keyframe, which the encoder puts on the segment schedule only
/// (`Schedule`).
pub fn hls_output_args(
    folder: &str,
    format: SegmentFormat,
    hls_time: &str,
    extra: &[&str],
) -> Vec<OsString> {
    let mut args: Vec<OsString> = extra.iter().map(OsString::from).collect();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&[
        "-f",
        "hls",
        "-hls_time",
        hls_time,
        // EVENT, so that ffmpeg rewrites the playlist after every segment (it writes a VOD
        // one only at the end): that is how finished segments are found while it runs.
        // The job turns it into a VOD playlist once ffmpeg is done.
        "-hls_playlist_type",
        "event",
    ]);
    push(&["-hls_flags", "independent_segments+temp_file"]);
    match format {
        SegmentFormat::Ts => push(&["-hls_segment_type", "mpegts"]),
        // The init segment goes beside the playlist, which names it in EXT-X-MAP.
        SegmentFormat::Cmaf => push(&[
            "-hls_segment_type",
            "fmp4",
            "-hls_fmp4_init_filename",
            INIT_SEGMENT,
        ]),
    }
    push(&[
        "-hls_segment_filename",
        &format!("{folder}/{}", segment_pattern(format)),
    ]);
    push(&[&format!("{folder}/{MEDIA_PLAYLIST}")]);
    args
}

/// What every ffmpeg that reads a source is held to, before its `-i`: only `protocol` (`file`,
/// or `pipe` for a stream we feed), only self-contained demuxers (no playlist, concat script or
/// URL is followed), and no decoded frame larger than the pixel limit, whatever the source
/// declared.
pub fn input_guards(settings: &EncodeSettings, protocol: &str) -> Vec<OsString> {
    [
        "-protocol_whitelist",
        protocol,
        "-format_whitelist",
        SELF_CONTAINED_DEMUXERS,
        "-max_pixels",
        &settings.max_frame_pixels.min(i32::MAX as u64).to_string(),
    ]
    .iter()
    .map(OsString::from)
    .collect()
}

/// The whole argument vector for `ffmpeg`, to run with the work folder as its current folder,
/// reading `input_url` through `protocol` only.
pub fn ffmpeg_args(input_url: &OsStr, protocol: &str, plan: &EncodePlan<'_>) -> Vec<OsString> {
    let s = plan.settings;
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));

    push(&["-hide_banner", "-nostdin", "-y", "-v", "error", "-nostats"]);
    // Twice a second, slower for long sources: about 400 reports per video at most.
    let period = format!("{:.1}", (plan.source.duration_s / 400.0).clamp(0.5, 5.0));
    push(&["-progress", "pipe:1", "-stats_period", &period]);
    // More than half the frames failing to decode means an encrypted or broken stream: ffmpeg
    // then exits 69, which we report as invalid input instead of publishing garbage.
    push(&["-max_error_rate", "0.5"]);
    args.extend(input_guards(s, protocol));
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-i"]);
    // The input is an OsStr (a path need not be UTF-8), so it goes in directly, and `push`
    // borrows `args` afresh after it.
    args.push(input_url.to_os_string());
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&["-filter_complex", &filter_graph(plan)]);

    let schedule = Schedule::of(s);
    let grid = KeyframeGrid {
        gop: schedule.gop_frames(plan.fps.as_f64()),
        force: schedule.keyframes_from_start(),
    };
    for (i, rung) in plan.ladder.iter().enumerate() {
        args.extend(rung_encoder_args(i, rung, plan.source, s, &grid));
        args.extend(hls_output_args(&rung.name, s.segments, CUT_EVERY, &[]));
    }
    if s.segments == SegmentFormat::Cmaf {
        for track in audio_tracks(plan.source) {
            args.extend(audio_rendition_args(
                &track,
                plan.ladder[0].audio_kbps,
                schedule.first_segment_seconds(),
                &[],
            ));
        }
    }
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    push(&[
        "-map",
        "[poster]",
        "-frames:v",
        "1",
        "-c:v",
        "mjpeg",
        "-q:v",
        "3",
    ]);
    push(&[
        "-map_metadata",
        "-1",
        "-f",
        "image2",
        "-update",
        "1",
        POSTER,
    ]);
    args.extend(plan.trickplay().output_args());
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::compute_ladder;
    use crate::probe::{parse_ffprobe_json, DynamicRange};

    fn source() -> SourceInfo {
        let path = format!("{}/src/probe/testdata/ok.json", env!("CARGO_MANIFEST_DIR"));
        parse_ffprobe_json(&std::fs::read(path).unwrap()).unwrap()
    }

    fn args_for(source: &SourceInfo) -> Vec<String> {
        let ladder = compute_ladder(1280, 720, 30.0);
        let settings = EncodeSettings::default();
        let plan = EncodePlan {
            source,
            ladder: &ladder,
            fps: source.output_frame_rate(),
            settings: &settings,
        };
        ffmpeg_args(OsStr::new("file:/in/clip.mp4"), "file", &plan)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    fn count(args: &[String], item: &str) -> usize {
        args.iter().filter(|a| *a == item).count()
    }

    #[test]
    fn one_input_read_only_through_the_file_protocol() {
        let args = args_for(&source());
        assert_eq!(count(&args, "-i"), 1);
        let i = args.iter().position(|a| a == "-i").unwrap();
        assert_eq!(args[i + 1], "file:/in/clip.mp4");
        let before_input = &args[..i];
        let pw = before_input
            .iter()
            .position(|a| a == "-protocol_whitelist")
            .unwrap();
        assert_eq!(before_input[pw + 1], "file");
        assert!(before_input.contains(&"-format_whitelist".to_string()));
        // Every decoded frame is held to the pixel limit, not only the declared size.
        let mp = before_input
            .iter()
            .position(|a| a == "-max_pixels")
            .unwrap();
        assert_eq!(
            before_input[mp + 1],
            EncodeSettings::default().max_frame_pixels.to_string()
        );
    }

    #[test]
    fn every_rung_gets_an_hls_output_with_the_same_keyframe_grid() {
        let args = args_for(&source());
        assert_eq!(count(&args, "hls"), 4);
        let keyframes = Schedule::of(&EncodeSettings::default()).keyframes_from_start();
        assert_eq!(count(&args, &keyframes), 4);
        assert_eq!(count(&args, "libx264"), 4);
        assert_eq!(count(&args, "aac"), 4);
        for name in ["720p", "480p", "360p", "240p"] {
            assert!(args.contains(&format!("{name}/index.m3u8")), "{name}");
            assert!(args.contains(&format!("{name}/seg_%05d.ts")), "{name}");
        }
        assert!(args.contains(&"3000k".to_string()) && args.contains(&"6000k".to_string()));
        assert!(args.contains(&POSTER.to_string()));
        assert_eq!(args.last().unwrap(), "trickplay/sprite_%03d.jpg");
    }

    #[test]
    fn the_graph_decodes_once_and_splits() {
        let info = source();
        let ladder = compute_ladder(1280, 720, 30.0);
        let settings = EncodeSettings::default();
        let plan = EncodePlan {
            source: &info,
            ladder: &ladder,
            fps: Rational { num: 30, den: 1 },
            settings: &settings,
        };
        let graph = filter_graph(&plan);
        assert!(
            graph.starts_with("[0:0]fps=30/1,split=6[s0][s1][s2][s3][sp][st];"),
            "{graph}"
        );
        assert!(graph.contains("[s1]scale=854:480:flags=bicubic,setsar=1,format=yuv420p[v1]"));
        // One tenth into a 2 s source at 30 fps.
        assert!(
            graph.contains("[sp]select=eq(n\\,6),scale=1280:720"),
            "{graph}"
        );
    }

    #[test]
    fn an_hdr_source_is_tone_mapped_once_and_every_rung_says_bt709() {
        let mut info = source();
        assert!(!filter_graph_for(&info).contains("tonemap"));
        assert_eq!(count(&args_for(&info), "-color_trc"), 0);

        info.video.dynamic_range = DynamicRange::Pq;
        let graph = filter_graph_for(&info);
        // After the frame-rate conversion, before the split: once for all rungs and the
        // poster, at the top rung's size.
        let (head, rungs) = graph.split_once(",split=6").unwrap();
        assert!(
            head.starts_with("[0:0]fps=30/1,zscale=w=1280:h=720:"),
            "{graph}"
        );
        assert!(
            head.contains("tin=smpte2084") && head.contains("tonemap=hable"),
            "{head}"
        );
        assert!(head.ends_with("format=yuv420p"), "{head}");
        assert!(!rungs.contains("tonemap"), "{graph}");
        let args = args_for(&info);
        for tag in ["-color_primaries", "-color_trc", "-colorspace"] {
            assert_eq!(count(&args, tag), 4, "{tag}");
        }
        assert_eq!(count(&args, "bt709"), 12);

        info.video.dynamic_range = DynamicRange::Hlg;
        assert!(filter_graph_for(&info).contains("tin=arib-std-b67"));
    }

    fn filter_graph_for(info: &SourceInfo) -> String {
        let ladder = compute_ladder(1280, 720, 30.0);
        let settings = EncodeSettings::default();
        filter_graph(&EncodePlan {
            source: info,
            ladder: &ladder,
            fps: Rational { num: 30, den: 1 },
            settings: &settings,
        })
    }

    #[test]
    fn many_unlabelled_channels_keep_the_first_two() {
        let mut info = source();
        info.audio.as_mut().unwrap().channels = 16;
        assert_eq!(count(&args_for(&info), "pan=stereo|c0=c0|c1=c1"), 4);
        assert_eq!(count(&args_for(&source()), "pan=stereo|c0=c0|c1=c1"), 0);
    }

    #[test]
    fn video_only_sources_map_no_audio() {
        let mut info = source();
        info.audio = None;
        info.audio_tracks.clear();
        let args = args_for(&info);
        assert_eq!(count(&args, "aac"), 0);
        assert!(!args.iter().any(|a| a == "0:1"));
    }
}
