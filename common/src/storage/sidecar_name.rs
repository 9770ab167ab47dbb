//! Subtitle files uploaded beside a video, known by name alone: `film.en.vtt` or
//! `dir/film.fra.srt` belong to the video `film.*` (`dir/film.*`). The consumer, the output
//! folder and the transcoder all read a name the same way, from here.

/// A sidecar's format, from its extension.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SidecarFormat {
    /// WebVTT (`.vtt`).
    WebVtt,
    /// SubRip (`.srt`).
    SubRip,
}

impl SidecarFormat {
    /// The ffmpeg demuxer that reads it, and the only one allowed to.
    pub fn demuxer(self) -> &'static str {
        match self {
            Self::WebVtt => "webvtt",
            Self::SubRip => "srt",
        }
    }
}

/// What a sidecar's name says.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SidecarName<'a> {
    /// Its video's key without extension (`dir/film`).
    pub video_stem: &'a str,
    /// Its language, a checked code (`en`).
    pub language: String,
    /// Its format.
    pub format: SidecarFormat,
}

/// Reads `key` (an S3 key or a file name) as a sidecar's: `STEM.LANG.vtt|srt`, where `LANG` is
/// a two- or three-letter code and `STEM` a name of its own (not empty, not a folder).
pub fn sidecar_name(key: &str) -> Option<SidecarName<'_>> {
    let (rest, extension) = key.rsplit_once('.')?;
    let format = match extension.to_ascii_lowercase().as_str() {
        "vtt" => SidecarFormat::WebVtt,
        "srt" => SidecarFormat::SubRip,
        _ => return None,
    };
    let (video_stem, language) = rest.rsplit_once('.')?;
    if video_stem.is_empty() || video_stem.ends_with('/') || language.contains('/') {
        return None;
    }
    Some(SidecarName {
        video_stem,
        language: language_code(language)?,
        format,
    })
}

/// A language tag as a plain lowercase code of two or three letters (`en`, `fra`); `und`
/// (undetermined) and anything else is no language.
pub fn language_code(tag: &str) -> Option<String> {
    let tag = tag.trim().to_ascii_lowercase();
    let letters = (2..=3).contains(&tag.len()) && tag.bytes().all(|b| b.is_ascii_lowercase());
    (letters && tag != "und").then_some(tag)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecar_names_table() {
        let cases = [
            ("film.en.vtt", Some(("film", "en", SidecarFormat::WebVtt))),
            (
                "up/film.FRA.SRT",
                Some(("up/film", "fra", SidecarFormat::SubRip)),
            ),
            (
                "a.b/talk.v2.de.vtt",
                Some(("a.b/talk.v2", "de", SidecarFormat::WebVtt)),
            ),
            ("film.vtt", None),
            ("film.und.vtt", None),
            ("film.english.vtt", None),
            ("film.e1.srt", None),
            ("film.en.mp4", None),
            (".en.vtt", None),
            ("dir/.en.vtt", None),
            ("dir.en/x.vtt", None),
            ("film.en.vtt.exe", None),
        ];
        for (key, want) in cases {
            let got = sidecar_name(key).map(|s| (s.video_stem, s.language, s.format));
            let want = want.map(|(stem, lang, format)| (stem, lang.to_string(), format));
            assert_eq!(got, want, "{key}");
        }
    }
}
