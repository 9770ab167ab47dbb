//! Where the output being previewed is, and reading one of its files by a path a browser asked
//! for: only plain relative paths inside the output, never `..`, an absolute path or a link
//! that leads out of the folder.

use std::path::{Component, Path, PathBuf};

use crate::storage::{OutputSink, S3Sink};

/// An output to preview.
#[derive(Debug, Clone)]
pub enum Origin {
    /// A folder `transcoder local` wrote.
    Folder(PathBuf),
    /// A prefix a job from S3 wrote.
    S3(S3Sink),
}

impl Origin {
    /// The file at `path` (as the page asked, relative to the output), `Ok(None)` when there is
    /// none or the path is not a plain one inside the output.
    pub async fn read(&self, path: &str) -> Result<Option<Vec<u8>>, String> {
        if !is_plain(path) {
            return Ok(None);
        }
        match self {
            Self::Folder(root) => read_inside(root, path).await,
            Self::S3(sink) => sink.get_bytes(path).await.map_err(|e| e.to_string()),
        }
    }
}

/// A relative path of normal components only.
fn is_plain(path: &str) -> bool {
    !path.is_empty()
        && !path.contains('\\')
        && !path.contains('\0')
        && Path::new(path)
            .components()
            .all(|c| matches!(c, Component::Normal(_)))
}

/// Reads `path` under `root`, refusing a file whose real location (links followed) is not
/// inside `root`.
async fn read_inside(root: &Path, path: &str) -> Result<Option<Vec<u8>>, String> {
    let (Ok(root), Ok(file)) = (
        tokio::fs::canonicalize(root).await,
        tokio::fs::canonicalize(root.join(path)).await,
    ) else {
        return Ok(None);
    };
    if !file.starts_with(&root) || !file.is_file() {
        return Ok(None);
    }
    tokio::fs::read(&file)
        .await
        .map(Some)
        .map_err(|e| e.to_string())
}

/// The Content-Type of an output file, by its name.
pub fn media_type(path: &str) -> &'static str {
    let extension = path.rsplit_once('.').map_or("", |(_, e)| e);
    match extension {
        "m3u8" => "application/vnd.apple.mpegurl",
        "mpd" => "application/dash+xml",
        "m4s" | "mp4" => "video/mp4",
        "ts" => "video/mp2t",
        "vtt" => "text/vtt; charset=utf-8",
        "jpg" => "image/jpeg",
        "json" => "application/json",
        "js" => "text/javascript; charset=utf-8",
        _ => "application/octet-stream",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn only_files_inside_the_output_are_read() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("out");
        std::fs::create_dir_all(out.join("720p")).unwrap();
        std::fs::write(out.join("720p/index.m3u8"), b"#EXTM3U").unwrap();
        std::fs::write(dir.path().join("secret"), b"no").unwrap();
        std::os::unix::fs::symlink(dir.path().join("secret"), out.join("link")).unwrap();
        let origin = Origin::Folder(out);
        assert_eq!(
            origin.read("720p/index.m3u8").await.unwrap().as_deref(),
            Some(b"#EXTM3U".as_slice())
        );
        for outside in [
            "../secret",
            "/etc/passwd",
            "link",
            "720p/../../secret",
            "",
            "720p",
            "a\\b",
        ] {
            assert_eq!(origin.read(outside).await.unwrap(), None, "{outside:?}");
        }
    }

    #[test]
    fn players_get_the_types_they_expect() {
        assert_eq!(media_type("master.m3u8"), "application/vnd.apple.mpegurl");
        assert_eq!(media_type("_v1/720p/seg_00001.m4s"), "video/mp4");
        assert_eq!(media_type("manifest.mpd"), "application/dash+xml");
        assert_eq!(media_type("thumbnails.vtt"), "text/vtt; charset=utf-8");
        assert_eq!(media_type("strange"), "application/octet-stream");
    }
}
