//! README command 1, `scripts/demo.sh`, driven as a user runs it: the whole pipeline on moto
//! from an upload to playable HLS on disk, and everything it started stopped at the end.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::*;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

/// The demo with the binaries this test run built (it would build release ones otherwise).
fn demo(out: &Path, input: &Path, keep_running: bool) -> Command {
    let mut command = Command::new(repo_root().join("scripts/demo.sh"));
    command
        .arg(input)
        .env("TRANSCODER", transcoder_binary())
        .env("CONSUMER", workspace_binary("consumer"))
        .env("DEMO_OUT", out)
        .env("DEMO_KEEP_RUNNING", if keep_running { "1" } else { "0" })
        .env("TRANSCODER_PRESET", "ultrafast")
        .env_remove("AWS_ENDPOINT_URL")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    command
}

fn started_pids(out: &Path) -> Vec<u32> {
    std::fs::read_to_string(out.join(".run/pids"))
        .unwrap()
        .lines()
        .map(|l| l.trim().parse().unwrap())
        .collect()
}

/// Every process the demo started is gone: moto, two transcoders and the consumer, and the
/// preview when the demo kept running.
fn assert_all_stopped(out: &Path, kept_running: bool) {
    let pids = started_pids(out);
    assert_eq!(
        pids.len(),
        if kept_running { 5 } else { 4 },
        "moto, two transcoders, the consumer (and the preview): {pids:?}"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|&p| running(p)) {
        assert!(
            Instant::now() < deadline,
            "still running: {:?}",
            pids.iter().filter(|&&p| running(p)).collect::<Vec<_>>()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_demo_takes_an_upload_to_playable_hls_and_stops_everything() {
    let dir = scratch();
    let input = dir.path().join("my clip.mp4");
    make_clip(&input, "testsrc2=s=640x360:r=30", 4.0, true, &[]);
    let out = dir.path().join("out");

    let run = demo(&out, &input, false).output().unwrap();
    assert!(run.status.success(), "{}", describe(&run));
    let stdout = String::from_utf8(run.stdout).unwrap();
    let hls = out.join("my clip");
    let play = format!("play:    ffplay {}/master.m3u8", hls.display());
    assert!(stdout.contains(&play), "{stdout}");
    assert!(
        stdout.contains("job handed over"),
        "progress is shown: {stdout}"
    );
    assert!(stdout.contains("status: done"), "{stdout}");

    // Playable: the master parses, each variant's playlist parses, ffprobe reads video
    // through each.
    let master = master_playlist(&hls.join("master.m3u8"));
    let video: Vec<_> = master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame && v.resolution.is_some())
        .collect();
    assert_eq!(video.len(), 2, "360p and 240p from a 360p source");
    assert!(hls.join("manifest.mpd").exists(), "CMAF by default");
    for variant in video {
        let playlist = hls.join(&variant.uri);
        assert!(media_playlist(&playlist).end_list);
        assert!(stream(&playlist, "video").is_some(), "{}", variant.uri);
    }
    assert!(hls.join("poster.jpg").exists());
    assert_eq!(manifest(&hls)["status"], "done");
    // Not kept running: the command that serves the preview page.
    assert!(
        stdout
            .lines()
            .any(|l| l.starts_with("preview: ") && l.contains(" preview ")),
        "{stdout}"
    );
    assert_all_stopped(&out, false);
}

#[test]
fn ctrl_c_stops_a_running_demo_and_everything_it_started() {
    let dir = scratch();
    let input = dir.path().join("clip.mp4");
    make_clip(&input, "testsrc2=s=320x240:r=30", 2.0, true, &[]);
    let out = dir.path().join("out");

    let mut child = demo(&out, &input, true).spawn().unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let mut seen = Vec::new();
    for line in stdout.lines().map_while(Result::ok) {
        let waiting = line.contains("Ctrl-C stops everything");
        seen.push(line);
        if waiting {
            break;
        }
    }
    assert!(
        seen.iter().any(|l| l.contains("Ctrl-C stops everything")),
        "{seen:#?}"
    );
    signal(child.id(), "INT");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        assert!(Instant::now() < deadline, "the demo did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(
        status.code(),
        Some(130),
        "Ctrl-C's conventional exit status"
    );
    // While it ran, the preview page was served on loopback.
    let preview = seen
        .iter()
        .find_map(|l| l.strip_prefix("preview: http://127.0.0.1:"))
        .unwrap_or_else(|| panic!("no preview address: {seen:#?}"));
    assert!(preview.ends_with('/'), "{preview}");
    assert_all_stopped(&out, true);
}
