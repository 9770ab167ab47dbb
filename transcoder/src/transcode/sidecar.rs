//! Subtitle files uploaded beside a video: `film.en.vtt` or `film.fra.srt` for `film.mp4`.
//! Found by name only; their bytes are read by ffmpeg's SubRip or WebVTT demuxer and nothing
//! else, and only when they are small enough to be subtitles.

use std::path::{Path, PathBuf};

pub use crate::storage::SidecarFormat;
use crate::storage::{key_stem, sidecar_name};

/// The largest sidecar read: a feature film's subtitles are a few hundred kilobytes.
pub const MAX_SIDECAR_BYTES: u64 = 2 * 1024 * 1024;

/// A sidecar on local disk, ready to convert.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Sidecar {
    /// The file.
    pub path: PathBuf,
    /// Its language, from its name.
    pub language: String,
    /// Its format, from its name.
    pub format: SidecarFormat,
}

/// When `candidate` is named as a sidecar of `video` (both file names or S3 keys), its
/// language and format: `talk.en.vtt` for `talk.mp4`, `dir/talk.fra.srt` for `dir/talk.mov`.
/// The language must be a plain two- or three-letter code.
pub fn sidecar_of(video: &str, candidate: &str) -> Option<(String, SidecarFormat)> {
    let sidecar = sidecar_name(candidate)?;
    (sidecar.video_stem == key_stem(video)).then_some((sidecar.language, sidecar.format))
}

/// The sidecars beside a local `video` file, sorted by name.
pub fn local_sidecars(video: &Path) -> Vec<Sidecar> {
    let (Some(dir), Some(name)) = (video.parent(), video.file_name().and_then(|n| n.to_str()))
    else {
        return Vec::new();
    };
    let dir = if dir.as_os_str().is_empty() {
        Path::new(".")
    } else {
        dir
    };
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut found: Vec<Sidecar> = entries
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_file()))
        .filter_map(|e| {
            let candidate = e.file_name().into_string().ok()?;
            let (language, format) = sidecar_of(name, &candidate)?;
            Some(Sidecar {
                path: e.path(),
                language,
                format,
            })
        })
        .collect();
    found.sort_by(|a, b| a.path.cmp(&b.path));
    found
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sidecar_is_named_after_its_video_with_a_language() {
        let en = |c| sidecar_of("uploads/talk.mp4", c);
        assert_eq!(
            en("uploads/talk.en.vtt"),
            Some(("en".into(), SidecarFormat::WebVtt))
        );
        assert_eq!(
            en("uploads/talk.FRA.SRT"),
            Some(("fra".into(), SidecarFormat::SubRip))
        );
        for other in [
            "uploads/talk.vtt",         // no language
            "uploads/talk.english.vtt", // not a code
            "uploads/talk.en.txt",      // not a subtitle format
            "uploads/talks.en.vtt",     // another video's
            "uploads/talk.en.vtt.exe",  // not what it claims
            "other/talk.en.vtt",        // another folder
        ] {
            assert_eq!(en(other), None, "{other}");
        }
    }

    #[test]
    fn a_dot_in_a_folder_name_is_no_extension() {
        // `v1.2/talk` has no extension: `v1.en.vtt` beside its folder is no sidecar of it.
        assert_eq!(sidecar_of("v1.2/talk", "v1.en.vtt"), None);
        assert_eq!(
            sidecar_of("v1.2/talk", "v1.2/talk.en.vtt"),
            Some(("en".into(), SidecarFormat::WebVtt))
        );
    }

    #[test]
    fn local_sidecars_are_found_beside_the_video() {
        let dir = tempfile::tempdir().unwrap();
        for name in [
            "film.mp4",
            "film.en.srt",
            "film.de.vtt",
            "film.txt",
            "filmx.en.vtt",
        ] {
            std::fs::write(dir.path().join(name), b"x").unwrap();
        }
        let found = local_sidecars(&dir.path().join("film.mp4"));
        let names: Vec<(&str, SidecarFormat)> = found
            .iter()
            .map(|s| (s.language.as_str(), s.format))
            .collect();
        assert_eq!(
            names,
            [("de", SidecarFormat::WebVtt), ("en", SidecarFormat::SubRip)]
        );
    }
}
