//! The integration tests' harness, shared by both crates: make inputs with real ffmpeg, find
//! and run the real binaries, start moto's server, and read outputs back with ffprobe and an
//! HLS parser. Nothing here is a mock: every helper drives a real program.

pub mod cloud;
pub mod ecs;
pub mod held_request;
pub mod ladder;
pub mod player;
pub mod slow_download;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

pub use tempfile::TempDir;

use serde_json::Value;

/// A binary of this workspace, built beside the running test (`cargo test --workspace` builds
/// every package's binaries before it runs any test). Tests of one crate use the other crate's
/// binary this way, since cargo only tells a package the paths of its own.
pub fn workspace_binary(name: &str) -> PathBuf {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        // target/<profile>/deps/<test binary>
        let exe = std::env::current_exe().unwrap();
        exe.parent().and_then(Path::parent).unwrap().to_path_buf()
    });
    let path = dir.join(name);
    assert!(
        path.exists(),
        "{} is missing: run the tests with `cargo test --workspace` (or `cargo build -p {name}` first)",
        path.display()
    );
    path
}

/// The `transcoder` binary.
pub fn transcoder_binary() -> PathBuf {
    workspace_binary("transcoder")
}

/// A scratch folder removed when dropped.
pub fn scratch() -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix("transcoder-test-")
        .tempdir()
        .unwrap()
}

/// Runs ffmpeg with `args` (after the common quiet flags) and panics with its stderr on failure.
pub fn ffmpeg(args: &[&str]) {
    let out = Command::new("ffmpeg")
        .args(["-hide_banner", "-nostdin", "-v", "error", "-y"])
        .args(args)
        .output()
        .expect("ffmpeg is installed (the README's test command installs it)");
    assert!(
        out.status.success(),
        "ffmpeg {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A lavfi test clip: `video` is a lavfi video source (`testsrc2=s=1280x720:r=30`), `seconds`
/// long, with a sine tone unless `audio` is false, encoded with `extra` output options.
pub fn make_clip(path: &Path, video: &str, seconds: f64, audio: bool, extra: &[&str]) {
    let d = seconds.to_string();
    let mut args = vec!["-f", "lavfi", "-i", video];
    if audio {
        args.extend(["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000"]);
    }
    args.extend(["-t", &d]);
    if !extra.contains(&"-c:v") {
        args.extend(["-c:v", "libx264", "-preset", "ultrafast"]);
    }
    if audio && !extra.contains(&"-c:a") {
        args.extend(["-c:a", "aac"]);
    }
    args.extend(extra);
    let path = path.to_str().unwrap();
    args.push(path);
    ffmpeg(&args);
}

/// ffprobe's JSON for `path` with the given `-show_*` flags and extra options.
pub fn ffprobe(path: &Path, args: &[&str]) -> Value {
    let out = Command::new("ffprobe")
        .args(["-v", "error", "-print_format", "json"])
        .args(args)
        .arg(path)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ffprobe {path:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap()
}

/// The first stream of `kind` ("video"/"audio") in `path`, or `None`.
pub fn stream(path: &Path, kind: &str) -> Option<Value> {
    let v = ffprobe(path, &["-show_streams"]);
    v["streams"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["codec_type"] == kind)
        .cloned()
}

/// Presentation times of the keyframes of the first video stream of a rendition, read through
/// its media playlist as a player would.
pub fn keyframe_times(playlist: &Path) -> Vec<String> {
    let v = ffprobe(
        playlist,
        &[
            "-select_streams",
            "v:0",
            "-skip_frame",
            "nokey",
            "-show_entries",
            "frame=pts_time",
        ],
    );
    v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pts_time"].as_str().unwrap().to_string())
        .collect()
}

/// Presentation times of every video frame of a rendition.
pub fn frame_times(playlist: &Path) -> Vec<f64> {
    let v = ffprobe(
        playlist,
        &["-select_streams", "v:0", "-show_entries", "frame=pts_time"],
    );
    v["frames"]
        .as_array()
        .unwrap()
        .iter()
        .map(|f| f["pts_time"].as_str().unwrap().parse().unwrap())
        .collect()
}

/// Parses a media playlist.
pub fn media_playlist(path: &Path) -> m3u8_rs::MediaPlaylist {
    m3u8_rs::parse_media_playlist_res(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{path:?} is not a media playlist: {e}"))
}

/// Parses a master playlist.
pub fn master_playlist(path: &Path) -> m3u8_rs::MasterPlaylist {
    m3u8_rs::parse_master_playlist_res(&std::fs::read(path).unwrap())
        .unwrap_or_else(|e| panic!("{path:?} is not a master playlist: {e}"))
}

/// The job record.
pub fn manifest(out_dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(out_dir.join("manifest.json")).unwrap()).unwrap()
}

/// Sub-folders of `dir` (the rung folders).
pub fn subfolders(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    entries
        .map(|e| e.unwrap().path())
        .filter(|p| p.is_dir())
        .collect()
}

/// stdout and stderr, for assertion messages.
pub fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// A film as catalogues receive them, `seconds` long, in `dir`: 854x480 H.264, two audio tracks
/// (French 48 kHz, the default, and English 44.1 kHz), a French `mov_text` subtitle track
/// ("Bonjour from the track" from 0.5 s), and an English SubRip sidecar beside it
/// (`NAME.en.srt`, "Hello from the sidecar" from 1 s). Returns the video's path.
pub fn make_film(dir: &Path, name: &str, seconds: f64) -> PathBuf {
    let track = dir.join("track.srt");
    std::fs::write(
        &track,
        "1\n00:00:00,500 --> 00:00:03,000\nBonjour from the track\n\n\
         2\n00:00:04,000 --> 00:00:07,000\nSecond cue\n",
    )
    .unwrap();
    let video = dir.join(name);
    let stem = name.rsplit_once('.').map_or(name, |(stem, _)| stem);
    std::fs::write(
        dir.join(format!("{stem}.en.srt")),
        "1\n00:00:01,000 --> 00:00:04,000\nHello from the sidecar\n\n\
         2\n00:00:05,000 --> 00:00:09,000\nAnother sidecar cue\n",
    )
    .unwrap();
    let d = seconds.to_string();
    ffmpeg(&[
        "-f",
        "lavfi",
        "-i",
        "testsrc2=s=854x480:r=30",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=440:sample_rate=48000",
        "-f",
        "lavfi",
        "-i",
        "sine=frequency=660:sample_rate=44100",
        "-i",
        track.to_str().unwrap(),
        "-t",
        &d,
        "-map",
        "0:v",
        "-map",
        "1:a",
        "-map",
        "2:a",
        "-map",
        "3:s",
        "-c:v",
        "libx264",
        "-preset",
        "ultrafast",
        "-c:a",
        "aac",
        "-c:s",
        "mov_text",
        "-metadata:s:a:0",
        "language=fra",
        "-metadata:s:a:1",
        "language=eng",
        "-metadata:s:s:0",
        "language=fra",
        video.to_str().unwrap(),
    ]);
    std::fs::remove_file(track).unwrap();
    video
}

/// How many frames of `stream` (`v:0`) ffmpeg decodes through `playlist`, an HLS playlist
/// or a DASH manifest (given by an absolute path: the DASH demuxer resolves relative ones
/// against it). Both demuxers refuse a `.vtt` file unless told, a guard for untrusted lists.
pub fn frames_read(playlist: &Path, stream: &str) -> u64 {
    let counted = ffprobe(
        playlist,
        &[
            "-allowed_extensions",
            "ALL",
            "-count_frames",
            "-select_streams",
            stream,
            "-show_entries",
            "stream=nb_read_frames",
        ],
    );
    let frames = counted["streams"][0]["nb_read_frames"].as_str();
    frames.and_then(|f| f.parse().ok()).unwrap_or(0)
}

/// Checks a CMAF rung's I-frame playlist at `playlist`: every byte range, behind the rung's
/// init segment, decodes to exactly one frame, a keyframe, and is less than its segment.
/// Returns how many ranges there are.
pub fn check_iframes(playlist: &Path) -> usize {
    let media = media_playlist(playlist);
    assert!(media.i_frames_only, "{playlist:?}");
    let dir = playlist.parent().unwrap();
    let init = std::fs::read(dir.join("init.mp4")).unwrap();
    let scratch = tempfile::tempdir().unwrap();
    for segment in &media.segments {
        let range = segment.byte_range.as_ref().unwrap();
        let bytes = std::fs::read(dir.join(&segment.uri)).unwrap();
        let length = range.length as usize;
        assert!(
            length < bytes.len(),
            "{}: a frame, not the segment",
            segment.uri
        );
        let frame = scratch.path().join("frame.mp4");
        std::fs::write(&frame, [init.as_slice(), &bytes[..length]].concat()).unwrap();
        let frames = ffprobe(&frame, &["-show_frames", "-select_streams", "v:0"]);
        let frames = frames["frames"].as_array().unwrap();
        assert_eq!(frames.len(), 1, "{}", segment.uri);
        assert_eq!(frames[0]["key_frame"], 1, "{}", segment.uri);
    }
    media.segments.len()
}

/// Checks the seek preview at `out_dir` (`thumbnails.vtt` and its sprites) for a video of
/// `duration_s`: cues back to back from 0 to the end, each naming a sprite that exists and a
/// cell inside it. Returns how many cues there are.
pub fn check_thumbnails(out_dir: &Path, duration_s: f64) -> usize {
    let index = std::fs::read_to_string(out_dir.join("thumbnails.vtt")).unwrap();
    assert!(index.starts_with("WEBVTT"), "{index}");
    let seconds = |t: &str| {
        let parts: Vec<f64> = t.split(':').map(|p| p.parse().unwrap()).collect();
        parts.iter().fold(0.0, |acc, p| acc * 60.0 + p)
    };
    let mut expected_start = 0.0;
    let mut cues = 0;
    let mut sprite_sizes = std::collections::HashMap::new();
    let lines: Vec<&str> = index.lines().collect();
    for pair in lines.windows(2) {
        let Some((start, end)) = pair[0].split_once(" --> ") else {
            continue;
        };
        let (start, end) = (seconds(start), seconds(end));
        assert!(
            (start - expected_start).abs() < 0.001 && end > start,
            "{}",
            pair[0]
        );
        expected_start = end;
        let (file, cell) = pair[1].split_once("#xywh=").expect("a cue names a cell");
        let cell: Vec<u64> = cell.split(',').map(|n| n.parse().unwrap()).collect();
        let (width, height) = *sprite_sizes.entry(file.to_string()).or_insert_with(|| {
            let sprite = stream(&out_dir.join(file), "video").expect("the sprite exists");
            (
                sprite["width"].as_u64().unwrap(),
                sprite["height"].as_u64().unwrap(),
            )
        });
        assert!(
            cell[0] + cell[2] <= width && cell[1] + cell[3] <= height,
            "{}",
            pair[1]
        );
        cues += 1;
    }
    assert!(
        (expected_start - duration_s).abs() < 0.5,
        "cues end at {expected_start}"
    );
    cues
}

/// ffmpeg output options for 10-bit HEVC HDR as cameras and masters tag it, for a video filter
/// ending in `format=yuv420p10le`: `transfer` is `smpte2084` (HDR10, with mastering display and
/// content light level metadata) or `arib-std-b67` (HLG).
pub fn hdr_hevc_args(transfer: &str) -> Vec<String> {
    let mut params =
        format!("log-level=error:colorprim=bt2020:transfer={transfer}:colormatrix=bt2020nc");
    if transfer == "smpte2084" {
        params.push_str(
            ":master-display=G(13250,34500)B(7500,3000)R(34000,16000)WP(15635,16450)L(10000000,1)\
             :max-cll=1000,400",
        );
    }
    [
        "-c:v",
        "libx265",
        "-preset",
        "ultrafast",
        "-x265-params",
        &params,
        "-tag:v",
        "hvc1",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}
