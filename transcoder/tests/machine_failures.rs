//! Failures of the machine, not of the file, are worth retrying: exit 1 and an `internal`
//! record, never exit 2 and `invalid_input` (which would delete the message and lose the
//! upload). Real processes: the encoder is killed as the OOM killer would kill it.

mod common;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::cloud::children_named;
use common::*;

/// A 30 s MPEG-TS clip with one packet in 97 overwritten: ffmpeg conceals the damage and
/// finishes, but says "Error while decoding stream" all along the way, which is what once made
/// any failure of such a file count as the file's fault.
fn damaged_clip(path: &std::path::Path) {
    make_clip(
        path,
        "testsrc2=s=1280x720:r=30",
        30.0,
        true,
        &["-f", "mpegts"],
    );
    let mut bytes = std::fs::read(path).unwrap();
    for (n, packet) in bytes.chunks_mut(188).enumerate().step_by(97) {
        for (i, byte) in packet.iter_mut().enumerate().skip(4) {
            *byte = (n.wrapping_mul(31) ^ i.wrapping_mul(131)) as u8;
        }
    }
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn an_encoder_killed_mid_job_is_retryable_even_after_decode_errors() {
    let dir = scratch();
    let input = dir.path().join("damaged.ts");
    damaged_clip(&input);
    let out = dir.path().join("out");
    let job = Command::new(env!("CARGO_BIN_EXE_transcoder"))
        .arg("local")
        .arg(&input)
        .arg(&out)
        .env_remove("RUST_LOG")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The OOM killer's way: SIGKILL to the encoder, nothing to the transcoder.
    let deadline = Instant::now() + Duration::from_secs(60);
    let encoder = loop {
        if let Some(&pid) = children_named(job.id(), "ffmpeg").first() {
            break pid;
        }
        assert!(Instant::now() < deadline, "no ffmpeg started");
        std::thread::sleep(Duration::from_millis(20));
    };
    // Long enough for the decoder to have complained of the damage.
    std::thread::sleep(Duration::from_millis(1500));
    let killed = Command::new("kill")
        .args(["-KILL", &encoder.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    let output = job.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("killed by signal 9"), "{stderr}");
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(record["status"], "failed");
    assert_eq!(record["error"]["kind"], "internal", "{record}");
}
