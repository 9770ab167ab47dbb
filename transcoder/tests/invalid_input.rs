//! Everything that is not a transcodable video: exit 2, one line on stderr saying why, a
//! `failed` manifest, and no master playlist or rendition left behind.

mod common;

use std::path::{Path, PathBuf};

use common::*;

/// Makes one bad input in `dir` and returns its path.
type Maker = fn(&Path) -> PathBuf;

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn good_clip(dir: &Path, name: &str, extra: &[&str]) -> PathBuf {
    let path = dir.join(name);
    make_clip(&path, "testsrc2=s=640x360:r=30", 4.0, true, extra);
    path
}

fn truncate_half(path: &Path) -> PathBuf {
    let bytes = std::fs::read(path).unwrap();
    let cut = path.with_extension("cut.mp4");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    cut
}

/// An MP4 that holds 40 s of samples but whose header says a sixth of that: the movie, track
/// and media durations divided by 6, and the edit lists (which would cut playback to the
/// declared length) made into free space. ffprobe believes the header; only decoding finds
/// the rest, which once was encoded in full (hours of it would fill the disk).
fn lying_duration(dir: &Path) -> PathBuf {
    let path = good_clip_of(dir, "liar.mp4", 40.0);
    let mut bytes = std::fs::read(&path).unwrap();
    let mut patch = |atom: &[u8], offset: usize| {
        let mut at = 0;
        while let Some(found) = bytes[at..].windows(4).position(|w| w == atom) {
            let field = at + found + 4 + offset;
            if bytes[at + found + 4] == 0 {
                let value = u32::from_be_bytes(bytes[field..field + 4].try_into().unwrap());
                bytes[field..field + 4].copy_from_slice(&(value / 6).to_be_bytes());
            }
            at += found + 4;
        }
    };
    // version 0 boxes: mvhd and mdhd keep the duration 16 bytes in, tkhd 20.
    patch(b"mvhd", 16);
    patch(b"mdhd", 16);
    patch(b"tkhd", 20);
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(4).position(|w| w == b"edts") {
        bytes[at + found..at + found + 4].copy_from_slice(b"free");
        at += found + 4;
    }
    std::fs::write(&path, bytes).unwrap();
    path
}

/// One MPEG-TS stream whose first second is 320x240 (what the probe sees) and whose next three
/// are 1280x720: the size it declares is not the size it decodes to.
fn growing_stream(dir: &Path) -> PathBuf {
    let part = |name: &str, size: &str, seconds: &str, offset: &str| {
        let path = dir.join(name);
        ffmpeg(&[
            "-f",
            "lavfi",
            "-i",
            &format!("testsrc2=s={size}:r=25"),
            "-f",
            "lavfi",
            "-i",
            "sine",
            "-t",
            seconds,
            "-c:v",
            "libx264",
            "-preset",
            "ultrafast",
            "-c:a",
            "aac",
            "-output_ts_offset",
            offset,
            "-f",
            "mpegts",
            path.to_str().unwrap(),
        ]);
        std::fs::read(path).unwrap()
    };
    let mut bytes = part("small.ts", "320x240", "1", "0");
    bytes.extend(part("large.ts", "1280x720", "3", "1"));
    write(dir, "growing.ts", &bytes)
}

fn good_clip_of(dir: &Path, name: &str, seconds: f64) -> PathBuf {
    let path = dir.join(name);
    make_clip(
        &path,
        "testsrc2=s=320x240:r=30",
        seconds,
        true,
        &["-movflags", "+faststart"],
    );
    path
}

const CASES: &[(&str, Maker, &[&str], &str)] = &[
    (
        "a header that lies about the length",
        lying_duration,
        &[],
        "decodes longer than it declares",
    ),
    ("empty file", |d| write(d, "empty.mp4", b""), &[], "empty"),
    (
        "random bytes",
        |d| {
            // A fixed pseudo-random pattern: reproducible, and no container signature.
            let bytes: Vec<u8> = (0..200_000u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect();
            write(d, "noise.mp4", &bytes)
        },
        &[],
        "not a media file",
    ),
    (
        "text",
        |d| write(d, "notes.mp4", b"meeting notes\nnot a video at all\n"),
        &[],
        "not a media file",
    ),
    (
        "truncated upload (index at the end)",
        |d| truncate_half(&good_clip(d, "whole.mp4", &[])),
        &[],
        "truncated",
    ),
    (
        "truncated upload (index first)",
        |d| truncate_half(&good_clip(d, "whole.mp4", &["-movflags", "+faststart"])),
        &[],
        "truncated",
    ),
    (
        "audio only",
        |d| {
            let p = d.join("song.m4a");
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "sine=d=3",
                "-c:a",
                "aac",
                p.to_str().unwrap(),
            ]);
            p
        },
        &[],
        "audio only",
    ),
    (
        "an mp3",
        |d| {
            let p = d.join("song.mp3");
            ffmpeg(&["-f", "lavfi", "-i", "sine=d=3", p.to_str().unwrap()]);
            p
        },
        &[],
        "an audio file (mp3)",
    ),
    (
        "audio with cover art",
        |d| {
            let p = d.join("album.m4a");
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "sine=d=3",
                "-f",
                "lavfi",
                "-i",
                "color=blue:s=200x200:d=1",
                "-map",
                "0",
                "-map",
                "1",
                "-frames:v",
                "1",
                "-c:a",
                "aac",
                "-c:v",
                "png",
                "-disposition:v",
                "attached_pic",
                p.to_str().unwrap(),
            ]);
            p
        },
        &[],
        "cover picture",
    ),
    (
        "a still image named like a video",
        |d| {
            let p = d.join("photo.png");
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=s=320x240",
                "-frames:v",
                "1",
                p.to_str().unwrap(),
            ]);
            let disguised = d.join("photo.mp4");
            std::fs::rename(&p, &disguised).unwrap();
            disguised
        },
        &[],
        "still image",
    ),
    (
        "a one-frame video",
        |d| {
            let p = d.join("one.mp4");
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "testsrc2=s=320x240",
                "-frames:v",
                "1",
                "-c:v",
                "libx264",
                p.to_str().unwrap(),
            ]);
            p
        },
        &[],
        "still image",
    ),
    (
        "an encrypted stream",
        |d| {
            let clear = good_clip(d, "clear.mp4", &[]);
            let p = d.join("drm.mp4");
            ffmpeg(&[
                "-i",
                clear.to_str().unwrap(),
                "-c",
                "copy",
                "-encryption_scheme",
                "cenc-aes-ctr",
                "-encryption_key",
                "76a6c65c5ea762046bd749a2e632ccbb",
                "-encryption_kid",
                "a7e61c373e219033c21091fa607bf3b8",
                p.to_str().unwrap(),
            ]);
            p
        },
        &[],
        "cannot be decoded",
    ),
    (
        "an HLS playlist pretending to be a video",
        |d| {
            // If the playlist were followed, this real clip would transcode and exit 0.
            let real = good_clip(d, "real.mp4", &[]);
            let body = format!(
                "#EXTM3U\n#EXT-X-TARGETDURATION:10\n#EXTINF:4,\nfile://{}\n#EXTINF:4,\nfile:///etc/passwd\n#EXT-X-ENDLIST\n",
                real.display()
            );
            write(d, "upload.mp4", body.as_bytes())
        },
        &[],
        "HLS playlist",
    ),
    (
        "a concat script pretending to be a video",
        |d| {
            let real = good_clip(d, "real.mp4", &[]);
            write(
                d,
                "upload.mov",
                format!("ffconcat version 1.0\nfile '{}'\n", real.display()).as_bytes(),
            )
        },
        &[],
        "concat script",
    ),
    (
        "subtitles pretending to be a video",
        |d| {
            write(
                d,
                "subs.mp4",
                b"1\n00:00:00,000 --> 00:00:01,000\n/etc/passwd\n",
            )
        },
        &[],
        "not a video",
    ),
    (
        "a pixel bomb: 200 KB of three 8192x8192 frames (default limits)",
        |d| {
            let p = d.join("bomb.mp4");
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "color=s=8192x8192:d=0.12:r=25",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                "-crf",
                "51",
                p.to_str().unwrap(),
            ]);
            p
        },
        &[],
        "over the limit",
    ),
    (
        "a duration bomb: 1 KB declaring 10,000 hours (default limits)",
        |d| {
            let p = d.join("bomb.mkv");
            // Two frames ten thousand hours apart.
            ffmpeg(&[
                "-f",
                "lavfi",
                "-i",
                "color=s=64x64:r=1:d=2",
                "-vf",
                "setpts=N*36000000/TB",
                "-c:v",
                "libx264",
                "-preset",
                "ultrafast",
                p.to_str().unwrap(),
            ]);
            p
        },
        &[],
        "over the limit",
    ),
    (
        "over the pixel limit",
        |d| good_clip(d, "big.mp4", &[]),
        &["--max-pixels", "100000"],
        "over the limit",
    ),
    (
        "a stream that grows past the pixel limit after its declared size",
        growing_stream,
        &["--max-pixels", "200000"],
        "undecodable",
    ),
    (
        "over the duration limit",
        |d| good_clip(d, "long.mp4", &[]),
        &["--max-duration-secs", "2"],
        "over the limit",
    ),
    (
        "over the size limit",
        |d| good_clip(d, "heavy.mp4", &[]),
        &["--max-input-bytes", "1000"],
        "over the limit",
    ),
];

#[test]
fn every_kind_of_bad_input_exits_2_with_one_line_and_no_output() {
    let mut failures = Vec::new();
    for (label, make, flags, reason) in CASES {
        let dir = scratch();
        let input = make(dir.path());
        let out = dir.path().join("out");
        let mut args = vec!["--preset", "ultrafast"];
        args.extend_from_slice(flags);
        let run = transcode_local(&input, &out, &args);
        let stderr = String::from_utf8_lossy(&run.stderr).to_string();

        let mut problems = Vec::new();
        if run.status.code() != Some(2) {
            problems.push(format!("exit {:?}, not 2", run.status.code()));
        }
        if stderr.lines().count() != 1 || !stderr.contains(reason) {
            problems.push(format!("stderr should be one line saying {reason:?}"));
        }
        if out.join("master.m3u8").exists() || !subfolders(&out).is_empty() {
            problems.push("output left behind".into());
        }
        match std::fs::read(out.join("manifest.json")) {
            Ok(bytes) => {
                let m: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
                if m["status"] != "failed" || m["error"]["kind"] != "invalid_input" {
                    problems.push(format!(
                        "manifest is not a failed invalid_input record: {m}"
                    ));
                }
            }
            Err(e) => problems.push(format!("no manifest: {e}")),
        }
        if !problems.is_empty() {
            failures.push(format!(
                "{label}: {}\n{}",
                problems.join("; "),
                describe(&run)
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn a_missing_input_is_not_the_source_s_fault() {
    // Exit 1: nothing says the source is bad, so a caller may retry (docs/contract.md).
    let dir = scratch();
    let run = transcode_local(
        &dir.path().join("nowhere.mp4"),
        &dir.path().join("out"),
        &[],
    );
    assert_eq!(run.status.code(), Some(1), "{}", describe(&run));
    let m = manifest(&dir.path().join("out"));
    assert_eq!(m["error"]["kind"], "internal");
}

#[test]
fn a_bad_command_line_exits_1_and_help_exits_0() {
    let bin = env!("CARGO_BIN_EXE_transcoder");
    let bad = std::process::Command::new(bin)
        .args(["local", "--preset", "warp-speed", "a", "b"])
        .output()
        .unwrap();
    assert_eq!(bad.status.code(), Some(1), "{}", describe(&bad));
    let help = std::process::Command::new(bin)
        .args(["local", "--help"])
        .output()
        .unwrap();
    assert_eq!(help.status.code(), Some(0));
    let text = String::from_utf8(help.stdout).unwrap();
    for needle in [
        "TRANSCODER_PRESET",
        "TRANSCODER_MAX_PIXELS",
        "[default: veryfast]",
        "FFMPEG",
    ] {
        assert!(text.contains(needle), "--help mentions {needle}:\n{text}");
    }
}

#[test]
fn a_playlist_pointing_at_a_url_opens_no_connection() {
    // A server the upload points at: it must never hear from us.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.set_nonblocking(true).unwrap();
    let address = listener.local_addr().unwrap();
    let dir = scratch();
    for (name, body) in [
        (
            "hls.mp4",
            format!("#EXTM3U\n#EXT-X-TARGETDURATION:4\n#EXTINF:4,\nhttp://{address}/seg.ts\n#EXT-X-ENDLIST\n"),
        ),
        (
            "concat.mov",
            format!("ffconcat version 1.0\nfile 'http://{address}/clip.mp4'\n"),
        ),
    ] {
        let input = write(dir.path(), name, body.as_bytes());
        let out = dir.path().join(format!("out-{name}"));
        let run = transcode_local(&input, &out, &["--preset", "ultrafast"]);
        assert_eq!(run.status.code(), Some(2), "{name}: {}", describe(&run));
        match listener.accept() {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            other => panic!("{name}: the transcoder connected out: {other:?}"),
        }
    }
}
