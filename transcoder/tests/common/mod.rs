//! Helpers for the integration tests: make inputs with real ffmpeg, run the real binary, and
//! read its outputs back with ffprobe and an HLS parser.
#![allow(dead_code)] // each test file uses its own subset

pub mod cloud;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::Value;

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

/// Runs `transcoder local input out_dir extra...` (stdout is a pipe, so progress comes as
/// lines). Tests pass `--preset ultrafast` where the preset is not what they check.
pub fn transcode_local(input: &Path, out_dir: &Path, extra: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_transcoder"))
        .arg("local")
        .arg(input)
        .arg(out_dir)
        .args(extra)
        .env_remove("RUST_LOG")
        .output()
        .unwrap()
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
