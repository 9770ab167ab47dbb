//! A real player in a real browser: `tests/player/play.mjs` plays an output folder in headless
//! Chromium with hls.js (`master.m3u8`) or dash.js (`manifest.mpd`) and reports what the player
//! saw as one JSON line. `scripts/test.sh` installs Chromium and the pinned npm packages
//! (`tests/player/install.sh`).

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

/// Which player.
#[derive(Debug, Clone, Copy)]
pub enum Player {
    /// hls.js, on `master.m3u8`.
    Hls,
    /// dash.js, on `manifest.mpd`.
    Dash,
}

/// The harness folder.
fn harness() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/player")
}

/// Plays `dir` with `player` and the checks `flags` ask for (`--switch-audio`, `--subtitles`,
/// `--seek-end`), and returns the report. Panics, with the report, unless every check passed.
pub fn play(dir: &Path, player: Player, flags: &[&str]) -> Value {
    let mut args = vec!["--dir".to_string(), dir.display().to_string()];
    args.extend(flags.iter().map(|f| f.to_string()));
    run_report("play.mjs", player, &args)
}

/// The players' scripts as `transcoder preview --hls-js --dash-js` takes them: the pinned
/// copies the harness installed, so the page needs no internet.
pub fn player_scripts() -> [PathBuf; 2] {
    let modules = harness().join("node_modules");
    [
        modules.join("hls.js/dist/hls.min.js"),
        modules.join("dashjs/dist/modern/umd/dash.all.min.js"),
    ]
}

/// Drives the `transcoder preview` page at `url` with `player` (`tests/player/preview.mjs`):
/// it plays, lists the rungs, switches rung, audio and subtitles, and shows a thumbnail.
/// Panics, with the report, unless every check passed.
pub fn drive_preview(url: &str, player: Player) -> Value {
    run_report(
        "preview.mjs",
        player,
        &["--url".to_string(), url.to_string()],
    )
}

/// Runs one of the harness's scripts with `player` and `args`, and returns the JSON line it
/// printed last; panics, with the report, unless it says every check passed.
fn run_report(script: &str, player: Player, args: &[String]) -> Value {
    let harness = harness();
    assert!(
        harness.join("node_modules").is_dir(),
        "the player harness is not installed: run tests/player/install.sh (scripts/test.sh does)"
    );
    let name = match player {
        Player::Hls => "hls",
        Player::Dash => "dash",
    };
    let out = Command::new("node")
        .arg(harness.join(script))
        .args(args)
        .args(["--player", name, "--timeout", "90"])
        .output()
        .expect("node is installed");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let report: Value = stdout
        .lines()
        .rev()
        .find_map(|line| serde_json::from_str(line).ok())
        .unwrap_or_else(|| {
            panic!(
                "{script} {name}: no report: {stdout}\n{}",
                String::from_utf8_lossy(&out.stderr)
            )
        });
    assert!(
        out.status.success() && report["ok"] == true,
        "{script} {name} {args:?} did not pass: {report:#}"
    );
    report
}
