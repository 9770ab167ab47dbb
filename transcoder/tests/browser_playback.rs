//! Outputs played in a browser, as viewers' players play them: headless Chromium with hls.js
//! and dash.js (`testkit::player`), on `transcoder local` outputs of generated sources. Each
//! run must load, play, and seek to the end; with several audio tracks it switches track.

mod common;

use std::path::{Path, PathBuf};

use common::player::{play, Player};
use common::*;

/// Transcodes `input` into `out` beside it with `extra` flags, insisting it succeeds.
fn transcode(input: &Path, extra: &[&str]) -> PathBuf {
    let out = input.parent().unwrap().join("out");
    let run = transcode_local(input, &out, extra);
    assert!(run.status.success(), "{}", describe(&run));
    out
}

/// The video levels a report lists, as (width, height).
fn level_sizes(report: &serde_json::Value) -> Vec<(u64, u64)> {
    let mut sizes: Vec<(u64, u64)> = report["levels"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| (l["width"].as_u64().unwrap(), l["height"].as_u64().unwrap()))
        .collect();
    sizes.sort_unstable();
    sizes
}

#[test]
fn a_film_in_cmaf_plays_switches_language_and_shows_subtitles_in_hls_js_and_dash_js() {
    // Two audio languages, a mov_text subtitle track and an SRT sidecar.
    let dir = scratch();
    let input = make_film(dir.path(), "film.mp4", 12.0);
    let out = transcode(&input, &["--segments", "cmaf", "--preset", "ultrafast"]);
    for player in [Player::Hls, Player::Dash] {
        let report = play(
            &out,
            player,
            &["--switch-audio", "--subtitles", "--seek-end"],
        );
        assert_eq!(
            level_sizes(&report),
            [(428, 240), (640, 360), (854, 480)],
            "{report:#}"
        );
        let languages: Vec<&str> = report["audioTracks"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|t| t["lang"].as_str())
            .collect();
        // dash.js shortens ISO 639-2 codes to two letters.
        assert!(
            matches!(languages.as_slice(), ["fra", "eng"] | ["fr", "en"]),
            "{report:#}"
        );
        assert_eq!(report["audioSwitched"], true, "{report:#}");
        // Both subtitle tracks listed; the first one's cues arrive.
        assert_eq!(
            report["textTracks"].as_array().unwrap().len(),
            2,
            "{report:#}"
        );
        assert_eq!(report["firstCue"], "Bonjour from the track", "{report:#}");
        assert_eq!(report["reachedEnd"], true, "{report:#}");
    }
}

#[test]
fn a_silent_hdr10_source_in_cmaf_plays_in_both() {
    // No audio at all, and a 10-bit PQ picture: the ladder is tone-mapped SDR H.264.
    let dir = scratch();
    let input = dir.path().join("silent hdr.mp4");
    make_clip(
        &input,
        "testsrc2=s=640x360:r=30,format=yuv420p10le",
        8.0,
        false,
        &hdr_hevc_args("smpte2084")
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>(),
    );
    let out = transcode(&input, &["--segments", "cmaf", "--preset", "ultrafast"]);
    for player in [Player::Hls, Player::Dash] {
        let report = play(&out, player, &["--seek-end"]);
        assert_eq!(level_sizes(&report), [(426, 240), (640, 360)], "{report:#}");
        assert_eq!(report["audioTracks"].as_array().map_or(0, Vec::len), 0);
        assert_eq!(report["reachedEnd"], true, "{report:#}");
    }
}

#[test]
fn mpeg_ts_output_plays_in_hls_js() {
    let dir = scratch();
    let input = dir.path().join("clip.mp4");
    make_clip(&input, "testsrc2=s=640x360:r=30", 8.0, true, &[]);
    let out = transcode(&input, &["--preset", "ultrafast"]);
    let report = play(&out, Player::Hls, &["--seek-end"]);
    assert_eq!(level_sizes(&report), [(426, 240), (640, 360)], "{report:#}");
    assert_eq!(report["reachedEnd"], true, "{report:#}");
}

#[test]
fn the_preview_page_plays_a_film_with_both_players() {
    let dir = scratch();
    let input = make_film(dir.path(), "film.mp4", 12.0);
    let out = transcode(&input, &["--segments", "cmaf", "--preset", "ultrafast"]);
    let [hls_js, dash_js] = common::player::player_scripts();
    let mut preview = std::process::Command::new(env!("CARGO_BIN_EXE_transcoder"))
        .arg("preview")
        .arg(&out)
        .args(["--listen", "127.0.0.1:0", "--hls-js"])
        .arg(&hls_js)
        .arg("--dash-js")
        .arg(&dash_js)
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    std::io::BufRead::read_line(
        &mut std::io::BufReader::new(preview.stdout.take().unwrap()),
        &mut line,
    )
    .unwrap();
    let url = line
        .strip_prefix("preview: ")
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("preview printed {line:?}"))
        .to_string();
    let reports = [Player::Hls, Player::Dash]
        .map(|player| std::panic::catch_unwind(|| common::player::drive_preview(&url, player)));
    preview.kill().unwrap();
    preview.wait().unwrap();
    for report in reports {
        let report = report.unwrap_or_else(|panic| std::panic::resume_unwind(panic));
        assert_eq!(report["state"]["rungsListed"], 3, "{report:#}");
    }
}

#[test]
fn the_preview_is_served_on_loopback_only() {
    let dir = scratch();
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_transcoder"))
        .arg("preview")
        .arg(dir.path())
        .args(["--listen", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("not a loopback address"));
}
