//! The ffmpeg command for one range, built so that the joined ranges are the single pass:
//! the same frames at the same timestamps, keyframes and segments at the same instants, and
//! audio packets every 1,024 samples across every cut. Measured against a single pass on
//! ffmpeg 5.1 (packet timestamps and flags identical; see `tests/split_stitch.rs`).
//!
//! How:
//! - Timestamps stay the source's (`-copyts -start_at_zero`, after the first range, which
//!   reads as the single pass does), so the fps filter numbers frames as the single pass does
//!   and `trim` keeps exactly the range's frames.
//! - The input is read from 3.84 s before the cut, from a point on the AAC frame grid: the
//!   encoder is warmed up by then and its packets fall on the single pass's. Its packets
//!   before the one the single pass starts the range's first segment with (the priming packet
//!   included) are dropped with the `noise` bitstream filter, counted in packets, and so are
//!   those from the next range's first on.
//! - `-output_ts_offset` adds the shift libavformat gives the single pass (its first decode
//!   timestamps are negative: x264's reordering, AAC priming); a later range would not be
//!   shifted.
//! - `force_key_frames` counts `t` from the first frame encoded, so the schedule is offset by
//!   where that frame lies.
//! - A range after the first flags its first packets as a discontinuity (`initial_discontinuity`),
//!   because its continuity counters restart: demuxers then do not report corrupt packets.

use std::ffi::{OsStr, OsString};

use super::plan::Range;
use crate::config::{EncodeSettings, SegmentFormat};
use crate::encode::{
    audio_rendition_args, audio_tracks, hls_output_args, input_guards, rung_encoder_args,
    tone_map_chain, KeyframeGrid, Schedule, Trickplay, CUT_EVERY, POSTER,
};
use crate::ladder::Rung;
use crate::probe::{Rational, SourceInfo};
use crate::transcode::Prepared;

/// Audio decoded and encoded before each cut, then dropped: 180 AAC frames (3.84 s).
const AUDIO_PREROLL_FRAMES: u64 = 180;
/// Samples per AAC frame, and the output sample rate.
const AAC_FRAME: u64 = 1024;
const SAMPLE_RATE: u64 = 48_000;
/// Source read past a range's end, so that every frame and sample up to it is decoded.
const TAIL_MARGIN_S: f64 = 0.5;

/// Everything one range's command depends on.
#[derive(Debug, Clone, Copy)]
pub struct RangePlan<'a> {
    /// The probed source.
    pub source: &'a SourceInfo,
    /// The coordinator's ladder.
    pub ladder: &'a [Rung],
    /// Output frame rate.
    pub fps: Rational,
    /// Encoder settings.
    pub settings: &'a EncodeSettings,
    /// The range.
    pub range: &'a Range,
}

impl RangePlan<'_> {
    /// Seconds of output the range should produce.
    pub fn seconds(&self) -> f64 {
        let end = self
            .range
            .end_frame
            .map_or(self.source.duration_s, |f| frame_time(f, self.fps));
        end - frame_time(self.range.first_frame, self.fps)
    }

    /// Where the input is read from, in AAC frames from the start: at least the pre-roll
    /// before the cut, on a boundary of 3 frames (64 ms), so that the range's own AAC packets
    /// fall on the single pass's and the seek is exact in microseconds.
    fn seek_frames(&self) -> u64 {
        seek_frames(self.range.start_s)
    }

    fn seek_s(&self) -> f64 {
        (self.seek_frames() * AAC_FRAME) as f64 / SAMPLE_RATE as f64
    }

    /// How far the single pass's timestamps are shifted, in seconds: libavformat moves each
    /// output so that its most negative decode timestamp becomes 0. In MPEG-TS every rung
    /// carries video and audio: the longer of the two shifts.
    fn shift_s(&self) -> f64 {
        self.video_shift_s().max(self.audio_shift_s())
    }

    /// A video output's shift: x264's reordering delay (B-frames with a pyramid hold two
    /// frames back; `ultrafast` has none).
    fn video_shift_s(&self) -> f64 {
        let frames = if self.settings.preset == "ultrafast" {
            0
        } else {
            2
        };
        frames as f64 * f64::from(self.fps.den) / f64::from(self.fps.num)
    }

    /// An audio output's shift: the AAC priming frame.
    fn audio_shift_s(&self) -> f64 {
        if self.source.audio.is_some() {
            AAC_FRAME as f64 / SAMPLE_RATE as f64
        } else {
            0.0
        }
    }

    /// The single pass's first AAC packet after the cut at `cut_s`, counted from its priming
    /// packet (0): the single pass interleaves packets by decode time, so its new segment
    /// starts with the keyframe and takes every audio packet whose (shifted) time is not
    /// earlier than the keyframe's decode time, the range's first frame.
    fn first_audio_packet(&self, cut_s: u32) -> u64 {
        let first_frame =
            (u64::from(cut_s) * u64::from(self.fps.num)).div_ceil(u64::from(self.fps.den));
        let keyframe_s = frame_time(first_frame, self.fps);
        // Packet j starts at (j - 1) frames, plus the shift; a hair keeps exact ties exact.
        let frames = (keyframe_s - self.shift_s()) * SAMPLE_RATE as f64 / AAC_FRAME as f64;
        (frames - 1e-9).ceil().max(0.0) as u64 + 1
    }

    /// With CMAF, the first AAC packet at or after the cut at `cut_s`, counted the same way.
    /// Audio is its own output there, shifted by the priming frame, so packet j starts at
    /// exactly j frames. Cut on the audio's own clock, a range's audio spans less than its
    /// length from its first packet, so the muxer's cuts every `opening` seconds from that
    /// packet make exactly its length over the opening segments, and the next range's numbers
    /// follow without a collision (cut at the keyframe, a 29.97 fps range could make one more).
    fn first_cmaf_audio_packet(&self, cut_s: u32) -> u64 {
        (u64::from(cut_s) * SAMPLE_RATE).div_ceil(AAC_FRAME)
    }

    /// The first packet of the range cut at `cut_s`, as the segment format partitions them.
    fn first_packet_of_cut(&self, cut_s: u32) -> u64 {
        match self.settings.segments {
            SegmentFormat::Ts => self.first_audio_packet(cut_s),
            SegmentFormat::Cmaf => self.first_cmaf_audio_packet(cut_s),
        }
    }
}

/// Where a range cut at `start_s` is read from, in AAC frames from the start: at least the
/// pre-roll before the cut, on a boundary of 3 frames (64 ms), so that the range's own AAC
/// packets fall on the single pass's and the seek is exact in microseconds.
fn seek_frames(start_s: u32) -> u64 {
    let cut = u64::from(start_s) * SAMPLE_RATE;
    let preroll = AUDIO_PREROLL_FRAMES * AAC_FRAME;
    cut.saturating_sub(preroll) / (3 * AAC_FRAME) * 3
}

/// The source seconds ffmpeg reads for `range`: from its seek point (0 for the first range) to
/// its end and the margin past it (`None`: to the source's end). What a peer downloads.
pub fn input_window(range: &Range) -> (f64, Option<f64>) {
    let start = if range.start_s > 0 {
        (seek_frames(range.start_s) * AAC_FRAME) as f64 / SAMPLE_RATE as f64
    } else {
        0.0
    };
    (start, range.end_s.map(|end| f64::from(end) + TAIL_MARGIN_S))
}

fn frame_time(frame: u64, fps: Rational) -> f64 {
    frame as f64 * f64::from(fps.den) / f64::from(fps.num)
}

/// Seconds as an option value, rounded up to the microsecond ffmpeg parses.
fn micros_up(seconds: f64) -> String {
    format!("{:.6}", (seconds * 1e6).ceil() / 1e6)
}

/// The whole argument vector for a range, to run in its work folder, reading `input_url`
/// through `protocol` only (`pipe` for the first range of a source still downloading).
pub fn range_args(input_url: &OsStr, protocol: &str, plan: &RangePlan<'_>) -> Vec<OsString> {
    let s = plan.settings;
    let r = plan.range;
    let fps = plan.fps;
    let mut args: Vec<OsString> = Vec::new();
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));

    push(&["-hide_banner", "-nostdin", "-y", "-v", "error", "-nostats"]);
    push(&["-progress", "pipe:1", "-stats_period", "1"]);
    push(&["-max_error_rate", "0.5"]);
    args.extend(input_guards(s, protocol));
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));
    // The first range reads as the single pass does; the others keep the source's clock.
    if r.start_s > 0 {
        push(&["-copyts", "-start_at_zero"]);
    }
    let seek = plan.seek_s();
    if r.start_s > 0 {
        push(&["-ss", &format!("{seek:.6}")]);
    }
    if let Some(end) = r.end_s {
        push(&[
            "-t",
            &format!("{:.6}", f64::from(end) - seek + TAIL_MARGIN_S),
        ]);
    }
    push(&["-i"]);
    args.push(input_url.to_os_string());
    let mut push = |items: &[&str]| args.extend(items.iter().map(OsString::from));

    // Frames as the single pass numbers them; only the range's own reach the encoders.
    let mut trim = format!("trim=start_pts={}", r.first_frame);
    if let Some(end) = r.end_frame {
        trim.push_str(&format!(":end_pts={end}"));
    }
    let n = plan.ladder.len();
    let mut graph = format!(
        "[0:{}]fps={}/{},{trim}",
        plan.source.video.index, fps.num, fps.den
    );
    // Tone mapping works frame by frame, so a range's frames come out as the single pass's.
    if let Some(chain) = tone_map_chain(&plan.source.video, &plan.ladder[0]) {
        graph.push_str(&format!(",{chain}"));
    }
    graph.push_str(&format!(",split={n}"));
    for i in 0..n {
        graph.push_str(&format!("[s{i}]"));
    }
    for (i, rung) in plan.ladder.iter().enumerate() {
        graph.push_str(&format!(
            ";[s{i}]scale={}:{}:flags=bicubic,setsar=1,format=yuv420p[v{i}]",
            rung.width, rung.height
        ));
    }
    push(&["-filter_complex", &graph]);

    // The first range starts where the single pass does, opening included. A later one counts
    // `t` from its first frame, which lies after its cut by as much as a frame (29.97 fps):
    // its keyframes are shifted by that much, so they land on the single pass's.
    let schedule = Schedule::of(s);
    let late = frame_time(r.first_frame, fps) - f64::from(r.start_s);
    let keyframes = KeyframeGrid {
        gop: schedule.gop_frames(fps.as_f64()),
        force: if r.start_s == 0 {
            schedule.keyframes_from_start()
        } else {
            schedule.keyframes_after(late)
        },
    };
    let start_number = r.first_segment.to_string();
    let audio_drop = audio_drop_expression(plan);
    let cmaf = s.segments == SegmentFormat::Cmaf;
    // A later range tells each muxer it starts mid-stream. MPEG-TS: its continuity counters
    // restart, so demuxers must not report corrupt packets. CMAF: the fMP4 muxer starts a
    // file's decode times at 0 and puts its start in the init segment's edit list; told its
    // first fragment is discontinuous, it gives that fragment its first packet's presentation
    // time instead, the source's (`-copyts`). Only range 0's init segments are published, so
    // every range reads through the same edit list.
    let later = r.start_s > 0;
    let discontinuity = match s.segments {
        SegmentFormat::Ts => "mpegts_flags=+initial_discontinuity",
        SegmentFormat::Cmaf => "movflags=+frag_discont",
    };
    // The rungs, shifted as the single pass shifts them: an MPEG-TS rung carries the audio too
    // (`shift_s`), a CMAF rung is video alone. A later CMAF range's first fragment starts at
    // its keyframe's presentation time, which the single pass's decode time equals once
    // shifted by the reordering delay: it needs no shift.
    let rung_offset = micros_up(match s.segments {
        SegmentFormat::Ts => plan.shift_s(),
        SegmentFormat::Cmaf if later => 0.0,
        SegmentFormat::Cmaf => plan.video_shift_s(),
    });
    let mut extra = vec![
        "-output_ts_offset",
        &rung_offset,
        "-start_number",
        &start_number,
    ];
    if let (Some(drop), Some(_), false) = (&audio_drop, &plan.source.audio, cmaf) {
        extra.extend(["-bsf:a", drop.as_str()]);
    }
    if later {
        extra.extend(["-hls_segment_options", discontinuity]);
    }
    for (i, rung) in plan.ladder.iter().enumerate() {
        args.extend(rung_encoder_args(i, rung, plan.source, s, &keyframes));
        args.extend(hls_output_args(&rung.name, s.segments, CUT_EVERY, &extra));
    }
    if cmaf {
        // Each audio track, shifted by the priming frame as the single pass's audio output.
        // Audio is cut every `cut` seconds from 0; a range starts on the grid, a multiple of
        // it, so its segment numbers follow the previous range's.
        let cut = schedule.first_segment_seconds();
        let offset = micros_up(plan.audio_shift_s());
        let audio_number = (r.start_s / cut).to_string();
        let mut extra = vec!["-output_ts_offset", &offset, "-start_number", &audio_number];
        if later {
            extra.extend(["-hls_segment_options", discontinuity]);
        }
        if let Some(drop) = &audio_drop {
            extra.extend(["-bsf:a", drop.as_str()]);
        }
        for track in audio_tracks(plan.source) {
            let kbps = plan.ladder[0].audio_kbps;
            args.extend(audio_rendition_args(&track, kbps, cut, &extra));
        }
    }
    args
}

/// Keeps the AAC packets the single pass puts in this range's segments: from the first after
/// its cut to the first after its end (`first_packet_of_cut`), counted in the range's own
/// packets, which start at its seek point with their own priming packet. Both sides of a cut
/// use the same count, so no packet is lost or doubled.
fn audio_drop_expression(plan: &RangePlan<'_>) -> Option<String> {
    let r = plan.range;
    let seek = plan.seek_frames();
    let mut terms = Vec::new();
    if r.start_s > 0 {
        terms.push(format!(
            "lt(n\\,{})",
            plan.first_packet_of_cut(r.start_s) - seek
        ));
    }
    if let Some(end) = r.end_s {
        terms.push(format!("gte(n\\,{})", plan.first_packet_of_cut(end) - seek));
    }
    (!terms.is_empty()).then(|| format!("noise=drop={}", terms.join("+")))
}

/// The poster command: one frame a tenth into the source, at the top rung's size, as the
/// single pass picks it.
pub fn poster_args(
    input_url: &OsStr,
    prepared: &Prepared,
    settings: &EncodeSettings,
) -> Vec<OsString> {
    let top = &prepared.ladder[0];
    let frame = (prepared.source.duration_s * 0.1 * prepared.fps.as_f64()).floor() as u64;
    let at = frame_time(frame, prepared.fps);
    let strings = |items: &[&str]| items.iter().map(OsString::from).collect::<Vec<_>>();
    let mut args = strings(&["-hide_banner", "-nostdin", "-y", "-v", "error"]);
    args.extend(input_guards(settings, "file"));
    args.extend(strings(&["-ss", &format!("{at:.6}"), "-i"]));
    args.push(input_url.to_os_string());
    let mut filter = tone_map_chain(&prepared.source.video, top)
        .map(|chain| format!("{chain},"))
        .unwrap_or_default();
    filter.push_str(&format!(
        "scale={}:{}:flags=bicubic,setsar=1,format=yuvj420p",
        top.width, top.height
    ));
    for item in [
        "-map",
        &format!("0:{}", prepared.source.video.index),
        "-frames:v",
        "1",
        "-vf",
        &filter,
        "-c:v",
        "mjpeg",
        "-q:v",
        "3",
        "-map_metadata",
        "-1",
        "-f",
        "image2",
        "-update",
        "1",
        POSTER,
    ] {
        args.push(OsString::from(item));
    }
    args
}

/// The seek preview's command for a split job: its sprites from the source's keyframes only
/// (no range sees the whole video, and a keyframe decode costs a fraction of a full one), laid
/// out as a single pass lays them out. A thumbnail is the keyframe nearest its time.
pub fn trickplay_args(
    input_url: &OsStr,
    prepared: &Prepared,
    settings: &EncodeSettings,
) -> Vec<OsString> {
    let top = &prepared.ladder[0];
    let plan = Trickplay::plan(prepared.source.duration_s, top);
    let strings = |items: &[&str]| items.iter().map(OsString::from).collect::<Vec<_>>();
    let mut args = strings(&["-hide_banner", "-nostdin", "-y", "-v", "error"]);
    args.extend(input_guards(settings, "file"));
    args.extend(strings(&["-skip_frame", "nokey", "-i"]));
    args.push(input_url.to_os_string());
    let mut graph = format!("[0:{}]", prepared.source.video.index);
    if let Some(chain) = tone_map_chain(&prepared.source.video, top) {
        graph.push_str(&format!("{chain},"));
    }
    graph.push_str("null[frames];");
    graph.push_str(&plan.filter_branch("frames"));
    args.extend(strings(&["-filter_complex", &graph]));
    args.extend(plan.output_args());
    args
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ladder::compute_ladder;
    use crate::probe::parse_ffprobe_json;
    use crate::split::plan::{plan_ranges, SplitShape};

    fn args(range_index: usize, preset: &str) -> Vec<String> {
        args_as(range_index, preset, SegmentFormat::Ts)
    }

    fn args_as(range_index: usize, preset: &str, segments: SegmentFormat) -> Vec<String> {
        let path = format!("{}/src/probe/testdata/ok.json", env!("CARGO_MANIFEST_DIR"));
        let mut source = parse_ffprobe_json(&std::fs::read(path).unwrap()).unwrap();
        source.duration_s = 120.0;
        let fps = Rational { num: 30, den: 1 };
        let ladder = compute_ladder(1280, 720, 30.0);
        let settings = EncodeSettings {
            preset: preset.into(),
            segments,
            ..EncodeSettings::default()
        };
        let shape = SplitShape {
            segment_seconds: 4,
            workers: 2,
            first_range_s: 8,
            opening_seconds: 1,
        };
        let ranges = plan_ranges(120.0, fps, shape);
        let plan = RangePlan {
            source: &source,
            ladder: &ladder,
            fps,
            settings: &settings,
            range: &ranges[range_index],
        };
        range_args(OsStr::new("file:/in/source"), "file", &plan)
            .into_iter()
            .map(|a| a.into_string().unwrap())
            .collect()
    }

    fn after<'a>(args: &'a [String], flag: &str) -> Vec<&'a str> {
        args.windows(2)
            .filter(|w| w[0] == flag)
            .map(|w| w[1].as_str())
            .collect()
    }

    #[test]
    fn a_middle_range_reads_from_its_preroll_and_keeps_its_own_frames_and_packets() {
        // Range 1 of a 120 s source for 2 workers: [8, 68) s, frames [240, 2040).
        let args = args(1, "veryfast");
        assert_eq!(
            after(&args, "-ss"),
            ["4.160000"],
            "8 s less 3.84 s of pre-roll"
        );
        assert_eq!(after(&args, "-t"), ["64.340000"]);
        assert_eq!(after(&args, "-i"), ["file:/in/source"]);
        let graph = after(&args, "-filter_complex")[0];
        assert!(
            graph.contains("fps=30/1,trim=start_pts=240:end_pts=2040,split=4"),
            "{graph}"
        );
        // Read from 195 AAC frames (4.16 s); the single pass's segment at 8 s starts with its
        // packet 373 (3 packets before 8 s come after the keyframe), the one at 68 s with 3186.
        let drop = "noise=drop=lt(n\\,178)+gte(n\\,2991)";
        assert_eq!(after(&args, "-bsf:a"), [drop; 4]);
        // After the opening's 1, 1 and 2 s segments and one of 4 s.
        assert_eq!(after(&args, "-start_number"), ["4"; 4]);
        assert_eq!(after(&args, "-output_ts_offset"), ["0.066667"; 4]);
        assert_eq!(after(&args, "-hls_time"), [crate::encode::CUT_EVERY; 4]);
        assert_eq!(
            after(&args, "-force_key_frames"),
            ["expr:gte(t,n_forced*4-0.000000-0.000001)"; 4]
        );
        assert_eq!(
            after(&args, "-hls_segment_options"),
            ["mpegts_flags=+initial_discontinuity"; 4]
        );
        assert_eq!(after(&args, "-protocol_whitelist"), ["file"]);
    }

    #[test]
    fn the_first_and_last_ranges_are_open_at_their_outer_ends() {
        let first = args(0, "ultrafast");
        assert!(after(&first, "-ss").is_empty());
        // The priming packet and 375 frames for 8 s, less the one the single pass muxes after
        // the keyframe.
        assert_eq!(after(&first, "-bsf:a")[0], "noise=drop=gte(n\\,375)");
        assert_eq!(
            after(&first, "-output_ts_offset")[0],
            "0.021334",
            "no B-frames: the AAC priming frame is the shift"
        );
        assert!(!first.contains(&"-copyts".to_string()));
        assert!(after(&first, "-hls_segment_options").is_empty());
        assert_eq!(
            after(&first, "-force_key_frames")[0],
            Schedule::new(4, 1).keyframes_from_start(),
            "the opening, as the single pass"
        );
        let last = args(2, "veryfast");
        assert!(after(&last, "-t").is_empty());
        // Read from 3006 AAC frames (64.128 s, on the 3-frame grid).
        assert_eq!(after(&last, "-ss"), ["64.128000"]);
        assert_eq!(after(&last, "-bsf:a")[0], "noise=drop=lt(n\\,180)");
        assert!(last.contains(&"-copyts".to_string()));
        assert!(after(&last, "-filter_complex")[0].contains("trim=start_pts=2040,split"));
    }

    #[test]
    fn a_cmaf_range_writes_its_rungs_and_audio_as_outputs_of_their_own() {
        // Range 1 of the same 120 s source: [8, 68) s.
        let args = args_as(1, "veryfast", SegmentFormat::Cmaf);
        assert_eq!(
            after(&args, "-hls_segment_type"),
            ["fmp4"; 5],
            "4 rungs, 1 track"
        );
        // Video: no shift (its first fragment starts at its keyframe's time); audio: the AAC
        // priming frame, as the single pass's audio output.
        assert_eq!(
            after(&args, "-output_ts_offset"),
            ["0.000000", "0.000000", "0.000000", "0.000000", "0.021334"]
        );
        assert_eq!(
            after(&args, "-hls_segment_options"),
            ["movflags=+frag_discont"; 5]
        );
        // Rung segments after the opening's; audio cut every second, from second 8.
        assert_eq!(after(&args, "-start_number"), ["4", "4", "4", "4", "8"]);
        assert_eq!(
            after(&args, "-bsf:a"),
            ["noise=drop=lt(n\\,180)+gte(n\\,2993)"],
            "from the packets at 8 s (375) and at 68 s (3188), on the audio output only"
        );
        assert_eq!(after(&args, "-hls_time").last().copied(), Some("1"));
        assert!(!args.iter().any(|a| a.contains("initial_discontinuity")));

        // Range 0 reads as the single pass does: shifted as it is, nothing discontinuous.
        let first = args_as(0, "veryfast", SegmentFormat::Cmaf);
        assert_eq!(
            after(&first, "-output_ts_offset"),
            ["0.066667", "0.066667", "0.066667", "0.066667", "0.021334"]
        );
        assert!(after(&first, "-hls_segment_options").is_empty());
        assert_eq!(after(&first, "-start_number").last().copied(), Some("0"));
    }
}
