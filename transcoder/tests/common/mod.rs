//! Helpers for the transcoder's integration tests: the shared harness (`testkit`) and the
//! few helpers only these tests use.
#![allow(dead_code)] // each test file uses its own subset

use std::path::Path;
use std::process::{Command, Output};

pub use testkit::*;

pub mod cloud {
    #[allow(unused_imports)]
    pub use testkit::cloud::*;
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

/// A clip cut at 60% of its bytes, as a broken download would be: its index (up front) says
/// `seconds`, its data ends near 0.6 of that, which ffmpeg only finds out by decoding so far.
pub fn cut_clip(path: &Path, video: &str, seconds: f64) {
    make_clip(path, video, seconds, true, &["-movflags", "+faststart"]);
    let bytes = std::fs::read(path).unwrap();
    std::fs::write(path, &bytes[..bytes.len() * 6 / 10]).unwrap();
}

/// Asserts that the only object left in the `out` bucket is the `failed` record of an invalid
/// input at `prefix` (its lease released), and returns that record.
pub async fn only_a_failed_record(s3: &aws_sdk_s3::Client, prefix: &str) -> serde_json::Value {
    let key = format!("{prefix}manifest.json");
    let keys = testkit::cloud::list_keys(s3, "out", "").await;
    assert_eq!(keys, [key.as_str()], "only the record stays");
    let record: serde_json::Value =
        serde_json::from_slice(&testkit::cloud::get(s3, "out", &key).await).unwrap();
    assert_eq!(record["status"], "failed");
    assert_eq!(record["error"]["kind"], "invalid_input");
    record
}
