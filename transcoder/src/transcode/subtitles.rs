//! Subtitles as WebVTT renditions: each text track of the source and each sidecar converted by
//! its own short ffmpeg run after the encode, into `subs/`, `subs_2/` ..., each a whole-file
//! `subtitles.vtt` behind a one-segment VOD playlist. A track that fails to convert, or comes
//! out too big, is left out with a note in the record: subtitles never fail a video.

use std::ffi::OsString;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio_util::task::AbortOnDropHandle;

use super::sidecar::{Sidecar, MAX_SIDECAR_BYTES};
use crate::config::EncodeSettings;
use crate::encode::{input_guards, MEDIA_PLAYLIST};
use crate::input::{file_url, SourceInput};
use crate::probe::{SourceInfo, MAX_AUDIO_TRACKS};

/// The WebVTT file in each subtitle folder.
pub const SUBTITLE_FILE: &str = "subtitles.vtt";
/// The largest WebVTT kept: ten times a long film's subtitles.
const MAX_VTT_BYTES: u64 = 8 * 1024 * 1024;
/// A conversion reads a demuxed text stream: longer than this is a hostile file.
const CONVERT_TIMEOUT: Duration = Duration::from_secs(120);

/// One subtitle rendition, written.
#[derive(Debug, Clone, PartialEq)]
pub struct SubtitleOutput {
    /// Its folder (`subs`, `subs_2`).
    pub folder: String,
    /// The name players list, unique in the job.
    pub name: String,
    /// Its language, when known.
    pub language: Option<String>,
}

impl SubtitleOutput {
    /// Its media playlist, relative to the output root.
    pub fn playlist(&self) -> String {
        format!("{}/{MEDIA_PLAYLIST}", self.folder)
    }
}

/// Where one rendition's cues come from.
enum Origin<'a> {
    Track { index: u32 },
    Sidecar(&'a Sidecar),
}

/// Converts the text tracks of `input` (probed as `source`) and the `sidecars`, at most
/// [`MAX_AUDIO_TRACKS`] in all, into `work_dir`; returns what was written and a note for each
/// thing left out.
pub async fn write_subtitles(
    input: &SourceInput,
    source: &SourceInfo,
    sidecars: &[Sidecar],
    work_dir: &Path,
    settings: &EncodeSettings,
) -> (Vec<SubtitleOutput>, Vec<String>) {
    let mut notes = Vec::new();
    if source.subtitles_left_out > 0 {
        notes.push(format!(
            "{} subtitle track(s) left out: bitmap subtitles (DVD, Blu-ray, DVB) are not text",
            source.subtitles_left_out
        ));
    }
    let origins = source
        .subtitles
        .iter()
        .map(|t| {
            (
                Origin::Track { index: t.index },
                t.language.clone(),
                "track",
            )
        })
        .chain(
            sidecars
                .iter()
                .map(|s| (Origin::Sidecar(s), Some(s.language.clone()), "sidecar")),
        );
    let mut written: Vec<SubtitleOutput> = Vec::new();
    for (i, (origin, language, kind)) in origins.enumerate() {
        if written.len() == MAX_AUDIO_TRACKS {
            notes.push(format!(
                "subtitles past the first {MAX_AUDIO_TRACKS} left out"
            ));
            break;
        }
        let folder = match written.len() {
            0 => "subs".to_string(),
            n => format!("subs_{}", n + 1),
        };
        match convert(input, &origin, work_dir, &folder, settings).await {
            Ok(()) => {
                write_playlist(work_dir, &folder, source.duration_s).await;
                let mut name = language
                    .clone()
                    .unwrap_or_else(|| format!("Subtitles {}", i + 1));
                if written.iter().any(|w| w.name == name) {
                    name = format!("{name} {}", written.len() + 1);
                }
                written.push(SubtitleOutput {
                    folder,
                    name,
                    language,
                });
            }
            Err(why) => {
                tracing::warn!(%why, kind, "a subtitle track left out");
                notes.push(format!("a subtitle {kind} left out: {why}"));
                let _ = tokio::fs::remove_dir_all(work_dir.join(&folder)).await;
            }
        }
    }
    (written, notes)
}

/// One ffmpeg run: the cues of `origin` as WebVTT in `work_dir/folder/subtitles.vtt`.
async fn convert(
    input: &SourceInput,
    origin: &Origin<'_>,
    work_dir: &Path,
    folder: &str,
    settings: &EncodeSettings,
) -> Result<(), String> {
    tokio::fs::create_dir_all(work_dir.join(folder))
        .await
        .map_err(|e| e.to_string())?;
    let mut args: Vec<OsString> = ["-hide_banner", "-nostdin", "-y", "-v", "error"]
        .iter()
        .map(OsString::from)
        .collect();
    let map = match origin {
        Origin::Track { index } => {
            args.extend(input_guards(settings, input.protocol()));
            args.extend([OsString::from("-i"), input.url()]);
            format!("0:{index}")
        }
        Origin::Sidecar(sidecar) => {
            let size = tokio::fs::metadata(&sidecar.path)
                .await
                .map_err(|e| e.to_string())?
                .len();
            if size > MAX_SIDECAR_BYTES {
                return Err(format!("{size} bytes, more than subtitles ever need"));
            }
            // Its own demuxer only: a file named .srt that is a playlist stays unread.
            for item in [
                "-protocol_whitelist",
                "file",
                "-format_whitelist",
                sidecar.format.demuxer(),
                "-f",
                sidecar.format.demuxer(),
                "-i",
            ] {
                args.push(item.into());
            }
            args.push(file_url(&sidecar.path));
            "0:s:0".to_string()
        }
    };
    let output = format!("{folder}/{SUBTITLE_FILE}");
    for item in [
        "-map",
        &map,
        "-c:s",
        "webvtt",
        "-map_metadata",
        "-1",
        "-f",
        "webvtt",
        &output,
    ] {
        args.push(item.into());
    }
    let feeds = matches!(origin, Origin::Track { .. });
    let mut command = crate::child::tool_command(&settings.ffmpeg);
    command
        .args(&args)
        .current_dir(work_dir)
        .stdin(if feeds { input.stdin() } else { Stdio::null() })
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| e.to_string())?;
    let _feeding = feeds
        .then(|| input.feed(&mut child))
        .flatten()
        .map(AbortOnDropHandle::new);
    let result = tokio::time::timeout(CONVERT_TIMEOUT, child.wait_with_output())
        .await
        .map_err(|_| "the conversion took too long".to_string())?
        .map_err(|e| e.to_string())?;
    if !result.status.success() {
        let stderr = String::from_utf8_lossy(&result.stderr);
        let last = stderr
            .lines()
            .rev()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("");
        return Err(format!("ffmpeg could not read it ({})", last.trim()));
    }
    let vtt = tokio::fs::read(work_dir.join(&output))
        .await
        .map_err(|e| e.to_string())?;
    if vtt.len() as u64 > MAX_VTT_BYTES {
        return Err(format!(
            "{} bytes of WebVTT, more than subtitles ever need",
            vtt.len()
        ));
    }
    // A file ffmpeg read without finding a cue (a playlist dressed as WebVTT) is not subtitles.
    if !vtt.windows(3).any(|w| w == b"-->") {
        return Err("it holds no cues".to_string());
    }
    Ok(())
}

/// The rendition's VOD playlist: the whole WebVTT file as its one segment.
async fn write_playlist(work_dir: &Path, folder: &str, duration_s: f64) {
    let body = subtitle_playlist(duration_s);
    let path = work_dir.join(folder).join(MEDIA_PLAYLIST);
    if let Err(error) = tokio::fs::write(&path, body).await {
        tracing::warn!(%error, "could not write a subtitle playlist");
    }
}

/// A VOD playlist with `subtitles.vtt` as its one segment, lasting the whole video.
pub fn subtitle_playlist(duration_s: f64) -> String {
    format!(
        "#EXTM3U\n#EXT-X-VERSION:3\n#EXT-X-TARGETDURATION:{}\n#EXT-X-PLAYLIST-TYPE:VOD\n\
         #EXTINF:{duration_s:.3},\n{SUBTITLE_FILE}\n#EXT-X-ENDLIST\n",
        duration_s.ceil().max(1.0) as u64
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_segment_lasts_the_whole_video() {
        let text = subtitle_playlist(12.4);
        let parsed = m3u8_rs::parse_media_playlist_res(text.as_bytes()).unwrap();
        assert_eq!(parsed.target_duration, 13);
        assert!(parsed.end_list);
        assert_eq!(parsed.segments.len(), 1);
        assert_eq!(parsed.segments[0].uri, SUBTITLE_FILE);
        assert!((parsed.segments[0].duration - 12.4).abs() < 0.001);
    }
}
