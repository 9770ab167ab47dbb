//! Where sources come from and outputs go: S3, or a local folder for `transcoder local`.
//!
//! One trait, [`OutputSink`], because publishing really differs between the two (an upload
//! with headers, or a rename), while the order of publishing does not (see `job::publish`).

mod keys;
mod lease;
mod local;
mod s3;
mod sidecar_name;

use std::future::Future;
use std::path::Path;

pub use keys::{
    default_output, is_version_name, key_stem, new_version_name, sanitize_prefix, S3Object,
    S3Prefix, MAX_PREFIX_BYTES,
};
pub use lease::{current_holder, Holder, LeaseSettings, OwnerError, PrefixLease, LEASE, LEASE_TTL};
pub use local::LocalFolder;
pub use s3::{Condition, ListedObject, ObjectInfo, S3Sink, S3Store};
pub use sidecar_name::{language_code, sidecar_name, SidecarFormat, SidecarName};

/// What an output object is, which decides its Content-Type and Cache-Control.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ObjectKind {
    /// A media or master playlist: changes when a job is redone, so cached briefly.
    Playlist,
    /// An MPEG-TS segment: never changes once written.
    Segment,
    /// A CMAF (fragmented MP4) segment or init segment: never changes once written.
    CmafSegment,
    /// A DASH manifest (`manifest.mpd`): changes when a job is redone, like a playlist.
    DashManifest,
    /// A WebVTT subtitle file: never changes once written.
    Subtitles,
    /// `thumbnails.vtt`, the seek preview's index: changes when a job is redone.
    Thumbnails,
    /// The poster.
    Image,
    /// `manifest.json`: the job's live status, never cached.
    Json,
}

impl ObjectKind {
    /// The kind of a segment file by its name: CMAF's `.m4s` segments and `.mp4` init
    /// segments, WebVTT subtitles, MPEG-TS otherwise.
    pub fn segment_named(name: &str) -> Self {
        if name.ends_with(".m4s") || name.ends_with(".mp4") {
            Self::CmafSegment
        } else if name.ends_with(".vtt") {
            Self::Subtitles
        } else {
            Self::Segment
        }
    }

    /// The Content-Type players and browsers expect.
    pub fn content_type(self) -> &'static str {
        match self {
            Self::Playlist => "application/vnd.apple.mpegurl",
            Self::Segment => "video/mp2t",
            Self::CmafSegment => "video/mp4",
            Self::DashManifest => "application/dash+xml",
            Self::Subtitles | Self::Thumbnails => "text/vtt",
            Self::Image => "image/jpeg",
            Self::Json => "application/json",
        }
    }

    /// Cache-Control for CDNs: segments are immutable, playlists short-lived, status never
    /// cached.
    pub fn cache_control(self) -> &'static str {
        match self {
            Self::Segment | Self::CmafSegment | Self::Subtitles => {
                "public, max-age=31536000, immutable"
            }
            Self::Playlist | Self::DashManifest | Self::Thumbnails => "public, max-age=10",
            Self::Image => "public, max-age=3600",
            Self::Json => "no-cache",
        }
    }
}

/// Why reading or writing an object failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The source object is gone (deleted before the job ran): retrying cannot help.
    #[error("the source s3://{bucket}/{key} does not exist")]
    SourceMissing {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
    },
    /// The source was replaced since the job read its ETag: worth retrying, on the new bytes.
    #[error("the source s3://{bucket}/{key} changed since the job read it (ETag {etag}): it will be tried again on the new bytes")]
    SourceChanged {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The ETag the job expected.
        etag: String,
    },
    /// The source is larger than the configured limit.
    #[error("the file is {size} bytes, over the limit of {max} bytes")]
    TooLarge {
        /// Size of the source (at least this much).
        size: u64,
        /// The limit.
        max: u64,
    },
    /// An S3 call failed.
    #[error("S3 {operation} s3://{bucket}/{key}: {message}")]
    S3 {
        /// The operation (`GetObject`...).
        operation: &'static str,
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// The SDK's full error.
        message: String,
    },
    /// A local file operation failed.
    #[error("{path}: {source}")]
    Io {
        /// The local path.
        path: String,
        /// The underlying error.
        source: std::io::Error,
    },
}

impl StorageError {
    /// True when the source itself is the problem.
    pub fn is_invalid_input(&self) -> bool {
        matches!(self, Self::SourceMissing { .. } | Self::TooLarge { .. })
    }

    /// The error of an I/O failure on the local `path`.
    pub fn io(path: &Path) -> impl FnOnce(std::io::Error) -> Self + '_ {
        move |source| Self::Io {
            path: path.display().to_string(),
            source,
        }
    }
}

/// The place a job's outputs are published to. Names are relative to the output root
/// (`720p/seg_00000.ts`) and chosen by us, never taken from an upload.
pub trait OutputSink: Send + Sync {
    /// Publishes the local file `path` as `name`. The file may be moved.
    fn put_file(
        &self,
        name: &str,
        path: &Path,
        kind: ObjectKind,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Publishes `bytes` as `name`; readers see the old object or the new one, never a part.
    fn put_bytes(
        &self,
        name: &str,
        bytes: Vec<u8>,
        kind: ObjectKind,
    ) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Reads `name`, or `None` when it does not exist.
    fn get_bytes(
        &self,
        name: &str,
    ) -> impl Future<Output = Result<Option<Vec<u8>>, StorageError>> + Send;

    /// Removes `name`; absent is fine.
    fn delete(&self, name: &str) -> impl Future<Output = Result<(), StorageError>> + Send;

    /// Where `name` is, for people (`s3://bucket/prefix/name` or a path).
    fn locate(&self, name: &str) -> String;
}
