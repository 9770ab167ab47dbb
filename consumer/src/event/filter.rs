//! Which decoded uploads the consumer acts on: a key prefix, key suffixes and a size cap.
//!
//! S3 notification configurations can filter by prefix and suffix too, but EventBridge rules and
//! shared topics may deliver more than this consumer wants, so it checks again itself.

use common::storage::sidecar_name;

use super::error::quoted;
use super::Upload;

/// Subtitle files uploaded beside videos (`film.en.vtt` for `film.mp4`).
const SUBTITLE_SUFFIXES: [&str; 2] = [".vtt", ".srt"];

/// Filters an upload must pass to be transcoded. The default (all empty) accepts everything.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Filters {
    /// Only keys that start with this. Case-sensitive, because S3 keys are.
    pub prefix: Option<String>,
    /// Only keys that end with one of these, ignoring case, so ".mp4" also takes "CLIP.MP4".
    /// Empty means any key.
    pub suffixes: Vec<String>,
    /// Only objects of at most this many bytes. An upload whose size the event did not give
    /// passes, since the transcoder learns the size when it fetches the object anyway.
    pub max_size: Option<u64>,
}

impl Filters {
    /// `Ok` when `upload` passes every filter; otherwise the one-line reason it is skipped.
    /// A subtitle sidecar (`film.en.vtt` for `film.mp4`) is a job whatever the suffixes, which
    /// are for videos: the transcoder republishes its video with it. Any other subtitle file
    /// (`.vtt`, `.srt`) belongs to no video, and is never a job.
    pub fn check(&self, upload: &Upload) -> Result<(), String> {
        let lower = upload.key.to_lowercase();
        let sidecar = sidecar_name(&upload.key).is_some();
        if !sidecar && SUBTITLE_SUFFIXES.iter().any(|s| lower.ends_with(s)) {
            return Err(format!(
                "key {} is a subtitle file not named NAME.LANG.vtt|srt after a video",
                quoted(&tail(&upload.key), 81)
            ));
        }
        if let Some(prefix) = &self.prefix {
            if !upload.key.starts_with(prefix.as_str()) {
                return Err(format!(
                    "key {} does not start with {}",
                    quoted(&upload.key, 80),
                    quoted(prefix, 40)
                ));
            }
        }
        let wanted_suffix = |s: &String| lower.ends_with(&s.to_lowercase());
        if !self.suffixes.is_empty() && !sidecar && !self.suffixes.iter().any(wanted_suffix) {
            return Err(format!(
                "key {} does not end with {}",
                quoted(&tail(&upload.key), 81),
                self.suffix_list()
            ));
        }
        if let (Some(max), Some(size)) = (self.max_size, upload.size) {
            if size > max {
                return Err(format!("size {size} bytes is over the {max}-byte limit"));
            }
        }
        Ok(())
    }

    /// The suffixes for a message: quoted, at most five.
    fn suffix_list(&self) -> String {
        const SHOWN: usize = 5;
        let mut out = self
            .suffixes
            .iter()
            .take(SHOWN)
            .map(|s| quoted(s, 20))
            .collect::<Vec<_>>()
            .join(" or ");
        if self.suffixes.len() > SHOWN {
            out.push_str(&format!(" or {} more", self.suffixes.len() - SHOWN));
        }
        out
    }
}

/// The last 80 characters of `key`, marked with `…` when cut: a suffix mismatch shows at its end.
fn tail(key: &str) -> String {
    let n = key.chars().count();
    if n <= 80 {
        return key.to_string();
    }
    let mut out = String::from("…");
    out.extend(key.chars().skip(n - 80));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn upload(key: &str, size: Option<u64>) -> Upload {
        Upload {
            bucket: "b".into(),
            key: key.into(),
            size,
            etag: None,
            event_name: "ObjectCreated:Put".into(),
            event_time: None,
        }
    }

    fn filters(prefix: Option<&str>, suffixes: &[&str], max_size: Option<u64>) -> Filters {
        Filters {
            prefix: prefix.map(Into::into),
            suffixes: suffixes.iter().map(|s| (*s).into()).collect(),
            max_size,
        }
    }

    #[test]
    fn a_sidecar_is_its_videos_job_and_other_subtitle_files_are_none() {
        let videos = filters(Some("uploads/"), &[".mp4"], Some(100));
        for key in ["uploads/film.en.vtt", "uploads/FILM.FR.SRT"] {
            assert_eq!(videos.check(&upload(key, Some(10))), Ok(()), "{key}");
        }
        // Still under the prefix and the size cap.
        assert!(videos
            .check(&upload("other/film.en.vtt", Some(10)))
            .is_err());
        assert!(videos
            .check(&upload("uploads/film.en.vtt", Some(101)))
            .is_err());
        for key in ["uploads/notes.vtt", "uploads/film.english.srt"] {
            let why = Filters::default()
                .check(&upload(key, Some(10)))
                .unwrap_err();
            assert!(why.contains("subtitle file"), "{key}: {why}");
        }
        assert_eq!(
            Filters::default().check(&upload("uploads/film.mp4", None)),
            Ok(())
        );
    }

    #[test]
    fn check_table() {
        let mp4 = &[".mp4", ".MOV"][..];
        let cases: Vec<(Filters, Upload, Result<(), &str>)> = vec![
            // Empty filters accept everything, even an empty key of unknown size.
            (Filters::default(), upload("", None), Ok(())),
            (
                Filters::default(),
                upload("any/thing.bin", Some(u64::MAX)),
                Ok(()),
            ),
            (
                filters(Some("in/"), &[], None),
                upload("in/a.mp4", None),
                Ok(()),
            ),
            (
                filters(Some("in/"), &[], None),
                upload("out/a.mp4", None),
                Err("key \"out/a.mp4\" does not start with \"in/\""),
            ),
            (
                filters(Some("In/"), &[], None),
                upload("in/a.mp4", None),
                Err("key \"in/a.mp4\" does not start with \"In/\""),
            ),
            (filters(Some(""), &[], None), upload("x", None), Ok(())),
            (filters(None, mp4, None), upload("a/CLIP.MP4", None), Ok(())),
            (filters(None, mp4, None), upload("a/clip.mov", None), Ok(())),
            (filters(None, mp4, None), upload("a/été.Mp4", None), Ok(())),
            (
                filters(None, mp4, None),
                upload("a/clip.mp4.txt", None),
                Err("key \"a/clip.mp4.txt\" does not end with \".mp4\" or \".MOV\""),
            ),
            (
                filters(None, mp4, None),
                upload("mp4", None),
                Err("key \"mp4\" does not end with \".mp4\" or \".MOV\""),
            ),
            (
                filters(None, &[], Some(100)),
                upload("a", Some(100)),
                Ok(()),
            ),
            (
                filters(None, &[], Some(100)),
                upload("a", Some(101)),
                Err("size 101 bytes is over the 100-byte limit"),
            ),
            (filters(None, &[], Some(0)), upload("a", None), Ok(())),
            // Every filter must pass; the first that fails is the reason.
            (
                filters(Some("in/"), mp4, Some(10)),
                upload("in/x.mp4", Some(10)),
                Ok(()),
            ),
            (
                filters(Some("in/"), mp4, Some(10)),
                upload("in/x.mp4", Some(11)),
                Err("size 11 bytes is over the 10-byte limit"),
            ),
            (
                filters(Some("in/"), mp4, Some(10)),
                upload("in/x.txt", Some(11)),
                Err("key \"in/x.txt\" does not end with \".mp4\" or \".MOV\""),
            ),
            // Reasons stay on one line whatever the key holds.
            (
                filters(Some("in/"), &[], None),
                upload("a\nb", None),
                Err("key \"a\\nb\" does not start with \"in/\""),
            ),
        ];
        for (f, u, want) in cases {
            assert_eq!(
                f.check(&u),
                want.map_err(String::from),
                "{f:?} on {:?}",
                u.key
            );
        }
    }

    #[test]
    fn long_keys_are_cut_in_reasons() {
        let key = format!("{}/clip.txt", "d".repeat(1000));
        let err = filters(None, &[".mp4"], None)
            .check(&upload(&key, None))
            .unwrap_err();
        assert!(
            err.ends_with("/clip.txt\" does not end with \".mp4\""),
            "{err}"
        );
        assert!(err.len() < 140, "{err}");
        let err = filters(Some("in/"), &[], None)
            .check(&upload(&key, None))
            .unwrap_err();
        assert!(err.len() < 140, "{err}");

        let many: Vec<String> = (0..9).map(|i| format!(".e{i}")).collect();
        let f = Filters {
            suffixes: many,
            ..Filters::default()
        };
        let err = f.check(&upload("x.mp4", None)).unwrap_err();
        assert!(err.ends_with("\".e4\" or 4 more"), "{err}");
    }
}
