//! S3 locations, and the output prefix for an upload: always under the configured prefix,
//! whatever the uploaded key holds (`..`, leading slashes, control characters, 1 KiB names).

use std::fmt;

/// Longest output prefix we build: S3 keys stop at 1,024 bytes, and the longest name we put
/// under a prefix (`1080p/seg_00000.ts`, `manifest.json.tmp`) needs a few dozen.
pub const MAX_PREFIX_BYTES: usize = 960;

/// An object: `s3://bucket/key`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Object {
    /// Bucket.
    pub bucket: String,
    /// Key, exactly as S3 stores it.
    pub key: String,
}

/// A prefix: `s3://bucket/prefix/` (the prefix is empty or ends with `/`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Prefix {
    /// Bucket.
    pub bucket: String,
    /// Key prefix, empty or ending with `/`.
    pub prefix: String,
}

/// Splits `s3://bucket/rest` into bucket and rest.
fn split_url(url: &str) -> Result<(&str, &str), String> {
    let rest = url
        .strip_prefix("s3://")
        .ok_or_else(|| format!("{url:?} is not an s3:// URL"))?;
    let (bucket, path) = rest.split_once('/').unwrap_or((rest, ""));
    if bucket.is_empty() {
        return Err(format!("{url:?} names no bucket"));
    }
    Ok((bucket, path))
}

impl S3Object {
    /// Parses `s3://bucket/key`; the key is taken literally (no percent-decoding).
    pub fn parse(url: &str) -> Result<Self, String> {
        let (bucket, key) = split_url(url)?;
        if key.is_empty() {
            return Err(format!("{url:?} names no object key"));
        }
        Ok(Self {
            bucket: bucket.into(),
            key: key.into(),
        })
    }
}

impl fmt::Display for S3Object {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl S3Prefix {
    /// Parses `s3://bucket/prefix/`, sanitising the prefix.
    pub fn parse(url: &str) -> Result<Self, String> {
        let (bucket, prefix) = split_url(url)?;
        Ok(Self::new(bucket, prefix))
    }

    /// A prefix in `bucket`, sanitised by [`sanitize_prefix`].
    pub fn new(bucket: &str, prefix: &str) -> Self {
        Self {
            bucket: bucket.into(),
            prefix: sanitize_prefix(prefix),
        }
    }

    /// The key of `name` under this prefix.
    pub fn key(&self, name: &str) -> String {
        format!("{}{name}", self.prefix)
    }

    /// `s3://bucket/prefix/name`.
    pub fn url(&self, name: &str) -> String {
        format!("s3://{}/{}", self.bucket, self.key(name))
    }

    /// The folder `name` (one segment of our own choosing, such as a version) under this
    /// prefix. Not sanitised: names from uploads go through [`default_output`] instead.
    pub fn folder(&self, name: &str) -> Self {
        Self {
            bucket: self.bucket.clone(),
            prefix: format!("{}{}/", self.prefix, name.trim_end_matches('/')),
        }
    }
}

/// How a version folder's name starts: `_v`, the UTC second it began and 8 random hex digits
/// (`_v20261207T093000Z-1a2b3c4d`). Sortable by age, unique per job attempt.
const VERSION_MARK: &str = "_v";

/// A fresh version folder name for a job starting now.
pub fn new_version_name() -> String {
    let now = time::OffsetDateTime::now_utc();
    let random = uuid::Uuid::new_v4().simple().to_string();
    format!(
        "{VERSION_MARK}{:04}{:02}{:02}T{:02}{:02}{:02}Z-{}",
        now.year(),
        u8::from(now.month()),
        now.day(),
        now.hour(),
        now.minute(),
        now.second(),
        &random[..8]
    )
}

/// True for a name [`new_version_name`] could have made.
pub fn is_version_name(segment: &str) -> bool {
    let Some(rest) = segment.strip_prefix(VERSION_MARK) else {
        return false;
    };
    let b = rest.as_bytes();
    b.len() == 25
        && b[..8].iter().all(u8::is_ascii_digit)
        && b[8] == b'T'
        && b[9..15].iter().all(u8::is_ascii_digit)
        && &b[15..17] == b"Z-"
        && b[17..].iter().all(|c| c.is_ascii_hexdigit())
}

impl fmt::Display for S3Prefix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.prefix)
    }
}

/// Makes a key prefix that cannot climb out of where it is put: segments that are empty, `.`
/// or `..` are dropped (CDNs and S3 tools normalise them), control characters and backslashes
/// become `_`, and the result is empty or ends with `/`. Over [`MAX_PREFIX_BYTES`] it is cut
/// and a hash of the whole keeps two long names apart.
pub fn sanitize_prefix(raw: &str) -> String {
    let mut out = String::new();
    for segment in raw.split('/') {
        let clean: String = segment
            .chars()
            .map(|c| if c.is_control() || c == '\\' { '_' } else { c })
            .collect();
        let trimmed = clean.trim();
        if trimmed.is_empty() || trimmed == "." || trimmed == ".." {
            continue;
        }
        out.push_str(trimmed);
        out.push('/');
    }
    if out.len() > MAX_PREFIX_BYTES {
        let hash = format!("{:016x}/", fnv1a(raw.as_bytes()));
        let mut cut = MAX_PREFIX_BYTES - hash.len() - 1;
        while !out.is_char_boundary(cut) {
            cut -= 1;
        }
        out.truncate(cut);
        out.push('~');
        out.push_str(&hash);
    }
    out
}

/// A key without its file extension: `uploads/clip.mp4` is `uploads/clip`. A dot in a folder
/// name (`v1.2/clip`) or a leading one (`dir/.hidden`) is no extension.
pub fn key_stem(key: &str) -> &str {
    match key.rsplit_once('.') {
        Some((stem, ext)) if !ext.contains('/') && !stem.ends_with('/') && !stem.is_empty() => stem,
        _ => key,
    }
}

/// The default output for an upload (docs/contract.md): `OUTPUT_PREFIX` + the source key without
/// its extension + `/`, in `OUTPUT_BUCKET`. The two parts are sanitised separately so the key
/// can never eat into the configured prefix.
pub fn default_output(source_key: &str, bucket: &str, prefix: &str) -> S3Prefix {
    // A subtitle sidecar (`film.en.vtt`) names its video's folder: its job republishes that
    // video with it.
    let stem = match super::sidecar_name(source_key) {
        Some(sidecar) => sidecar.video_stem,
        None => key_stem(source_key),
    };
    let mut own = sanitize_prefix(stem);
    // A key that sanitizing had to change (`a//b.mp4`, `x/../y.mp4`, a control character)
    // would share a folder with the key it now reads as (`a/b.mp4`, `x/y.mp4`): it gets a hash
    // of itself in its folder's name. Keys that need no change keep the plain name; so do
    // `clip.mp4` and `clip.mov`, which share one by docs/contract.md (their jobs take turns, and
    // the record says which source is out).
    let changed = own.trim_end_matches('/') != stem;
    if changed && !own.is_empty() && own.len() + 10 <= MAX_PREFIX_BYTES {
        own.pop();
        // Of the stem, so that a sidecar's folder is its video's.
        own.push_str(&format!("~{:08x}/", fnv1a(stem.as_bytes()) as u32));
    }
    // An upload named like a version folder (`clip/_v20261207T093000Z-1a2b3c4d.mp4`) would
    // get its outputs inside another video's version: give it a name no version has.
    if own.split('/').any(is_version_name) {
        own = own
            .split_inclusive('/')
            .map(|s| match is_version_name(s.trim_end_matches('/')) {
                true => format!("_{s}"),
                false => s.to_string(),
            })
            .collect();
    }
    if own.is_empty() {
        // A key of only dots and slashes still gets a folder of its own.
        own = format!("_{:016x}/", fnv1a(source_key.as_bytes()));
    }
    S3Prefix {
        bucket: bucket.into(),
        prefix: format!("{}{own}", sanitize_prefix(prefix)),
    }
}

/// FNV-1a: a stable, dependency-free hash for names (not for security).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn output_prefix_table() {
        let cases = [
            ("movie.mp4", "hls/", "hls/movie/"),
            ("a/b/clip.final.mov", "hls/", "hls/a/b/clip.final/"),
            ("no extension", "", "no extension/"),
            ("my holiday+video é.mp4", "out", "out/my holiday+video é/"),
            ("../../etc/passwd.mp4", "hls/", "hls/etc/passwd~"),
            ("/absolute//path/./x.mp4", "hls/", "hls/absolute/path/x~"),
            ("dir.v2/file", "", "dir.v2/file/"),
            ("tab\there\u{7}.mp4", "", "tab_here_~"),
            ("..", "hls/", "hls/_"),
            (".hidden", "", ".hidden/"),
        ];
        for (key, prefix, want) in cases {
            let got = default_output(key, "out-bucket", prefix);
            assert!(
                got.prefix.starts_with(want),
                "{key:?} -> {:?}, want {want:?}",
                got.prefix
            );
            assert_eq!(got.bucket, "out-bucket");
        }
    }

    #[test]
    fn a_sidecar_names_its_videos_folder() {
        for (video, sidecar) in [
            ("up/film.mp4", "up/film.en.vtt"),
            ("film.final.mov", "film.final.fra.srt"),
            ("a//b.mp4", "a//b.de.vtt"),
            ("x/../y.mkv", "x/../y.en.srt"),
        ] {
            assert_eq!(
                default_output(video, "out", "hls/"),
                default_output(sidecar, "out", "hls/"),
                "{sidecar}"
            );
        }
        // Not a sidecar's name: a folder of its own.
        assert_eq!(default_output("notes.vtt", "out", "").prefix, "notes/");
    }

    #[test]
    fn output_always_stays_under_the_configured_prefix() {
        let hostile = [
            "..",
            "../..",
            "/",
            "//",
            "./../x",
            "\u{0}",
            "a/../../b",
            " .. / .. /c.mp4",
            &"é".repeat(600),
            &"a/".repeat(700),
        ];
        for key in hostile {
            let out = default_output(key, "b", "safe/area/");
            assert!(
                out.prefix.starts_with("safe/area/"),
                "{key:?} -> {:?}",
                out.prefix
            );
            assert!(
                out.prefix.len() > "safe/area/".len(),
                "{key:?} got a folder of its own"
            );
            assert!(out.prefix.ends_with('/'));
            assert!(out.prefix.len() <= MAX_PREFIX_BYTES + "safe/area/".len());
            assert!(
                !out.prefix.split('/').any(|s| s == ".." || s == "."),
                "{:?}",
                out.prefix
            );
            assert!(!out.prefix.chars().any(char::is_control));
        }
    }

    #[test]
    fn version_names_are_recognised_and_never_made_from_uploads() {
        let name = new_version_name();
        assert!(is_version_name(&name), "{name}");
        assert_ne!(name, new_version_name());
        for not in [
            "_v",
            "_video",
            "_v20261207T093000Z-1a2b3c4",
            "v20261207T093000Z-1a2b3c4d",
        ] {
            assert!(!is_version_name(not), "{not}");
        }
        let hostile = format!("clip/{name}.mp4");
        let out = default_output(&hostile, "b", "hls/");
        assert_eq!(out.prefix, format!("hls/clip/_{name}/"));
        assert!(!out.prefix.split('/').any(is_version_name));
        let folder = S3Prefix::new("b", "hls/clip/").folder(&name);
        assert_eq!(folder.prefix, format!("hls/clip/{name}/"));
    }

    #[test]
    fn keys_that_read_alike_get_folders_of_their_own() {
        let out = |key| default_output(key, "b", "hls/").prefix;
        assert_eq!(out("a/b.mp4"), "hls/a/b/");
        assert_eq!(out("x/y.mp4"), "hls/x/y/");
        for (changed, plain) in [
            ("a//b.mp4", "a/b.mp4"),
            ("x/../y.mp4", "x/y.mp4"),
            ("/a/b.mp4", "a/b.mp4"),
        ] {
            assert_ne!(out(changed), out(plain), "{changed} and {plain}");
            assert_eq!(out(changed), out(changed), "stable");
        }
        assert_ne!(out("a//b.mp4"), out("a///b.mp4"));
        // The contract's one shared folder: the same name with another extension.
        assert_eq!(out("clip.mp4"), out("clip.mov"));
    }

    #[test]
    fn long_names_are_cut_and_kept_apart() {
        let a = default_output(&format!("{}a.mp4", "x".repeat(1200)), "b", "");
        let b = default_output(&format!("{}b.mp4", "x".repeat(1200)), "b", "");
        assert!(a.prefix.len() <= MAX_PREFIX_BYTES && b.prefix.len() <= MAX_PREFIX_BYTES);
        assert_ne!(a.prefix, b.prefix);
    }

    #[test]
    fn urls() {
        let o = S3Object::parse("s3://raw/uploads/a b+c.mp4").unwrap();
        assert_eq!(
            (o.bucket.as_str(), o.key.as_str()),
            ("raw", "uploads/a b+c.mp4")
        );
        assert_eq!(o.to_string(), "s3://raw/uploads/a b+c.mp4");
        assert!(S3Object::parse("s3://raw/").is_err());
        assert!(S3Object::parse("http://raw/x").is_err());
        let p = S3Prefix::parse("s3://out/hls/../x").unwrap();
        assert_eq!(p.prefix, "hls/x/");
        assert_eq!(p.url("master.m3u8"), "s3://out/hls/x/master.m3u8");
        assert_eq!(S3Prefix::parse("s3://out").unwrap().prefix, "");
    }
}
