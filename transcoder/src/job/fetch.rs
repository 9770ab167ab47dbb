//! Getting a job's source: the whole object downloads to a local file in the background while
//! ffprobe and ffmpeg already read it as a stream (`input::Streamed`), so that the first
//! segments come out seconds after the job starts, however long the upload.
//!
//! Streaming needs a layout a demuxer can read without seeking. An MP4 whose index (`moov`)
//! comes first streams as it is; one with its index at the end streams reordered, after a
//! ranged GET of its tail (`input::faststart_order`). Matroska and WebM stream as they are.
//! Anything else, or anything odd on the way, waits for the whole file as before: streaming is
//! a speed-up, never a different verdict.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use tokio::sync::watch;
use tokio_util::task::AbortOnDropHandle;

use crate::input::{self, Arrival, Downloaded, HeadVerdict, Piece, SourceInput, Streamed};
use crate::liveness::Liveness;
use crate::storage::{ObjectInfo, S3Object, S3Store, StorageError};

/// The first bytes read to tell a source's layout: enough for the boxes before an MP4's media
/// and for a Matroska header.
const HEAD_BYTES: u64 = 64 * 1024;
/// Matroska's and WebM's first four bytes (an EBML header).
const EBML_MAGIC: [u8; 4] = [0x1A, 0x45, 0xDF, 0xA3];

/// A source being downloaded, and how tools may read it meanwhile.
pub struct Fetch {
    path: PathBuf,
    download: Option<AbortOnDropHandle<Result<ObjectInfo, StorageError>>>,
    downloaded: Option<ObjectInfo>,
    streamed: Option<SourceInput>,
    whole: Downloaded,
}

impl Fetch {
    /// Starts downloading `object` (the bytes with `head`'s ETag only) to `path`, and reads
    /// its head (and tail) to see whether it can be streamed.
    pub async fn start(
        store: &S3Store,
        object: &S3Object,
        head: &ObjectInfo,
        path: &Path,
        max_bytes: u64,
        liveness: &Liveness,
    ) -> Self {
        let (arrived, arrival) = watch::channel(Arrival::default());
        let whole = Downloaded::new(arrival.clone());
        let download = {
            let (store, object, path) = (store.clone(), object.clone(), path.to_path_buf());
            let (etag, liveness) = (head.etag.clone(), liveness.clone());
            tokio::spawn(async move {
                let report = |bytes| {
                    arrived.send_modify(|a| a.bytes = bytes);
                };
                let result = store
                    .download(
                        &object,
                        etag.as_deref(),
                        &path,
                        max_bytes,
                        &liveness,
                        &report,
                    )
                    .await;
                arrived.send_modify(|a| match &result {
                    Ok(_) => a.complete = true,
                    Err(_) => a.failed = true,
                });
                result
            })
        };
        let streamed = if head.size > max_bytes {
            None // The download says why.
        } else {
            stream_order(store, object, head, path, arrival.clone())
                .await
                .map(|pieces| Streamed::new(path.to_path_buf(), head.size, pieces, arrival))
                .map(|streamed| SourceInput::Streamed(Arc::new(streamed)))
        };
        Self {
            path: path.to_path_buf(),
            download: Some(AbortOnDropHandle::new(download)),
            downloaded: None,
            streamed,
            whole,
        }
    }

    /// The source as a stream, when its layout allows reading it before it is complete.
    pub fn streamed(&self) -> Option<&SourceInput> {
        self.streamed.as_ref()
    }

    /// Waits for the download to end; the complete local file's details, or why it failed.
    pub async fn finished(&mut self) -> Result<ObjectInfo, StorageError> {
        if let Some(download) = self.download.take() {
            let result = download.await.unwrap_or_else(|join| {
                Err(StorageError::Io {
                    path: self.path.display().to_string(),
                    source: std::io::Error::other(join),
                })
            });
            self.downloaded = Some(result?);
        }
        self.downloaded.clone().ok_or_else(|| StorageError::Io {
            path: self.path.display().to_string(),
            source: std::io::Error::other("the download failed before"),
        })
    }

    /// The complete local file, once `finished`.
    pub fn file(&self) -> SourceInput {
        SourceInput::File(self.path.clone())
    }

    /// A way to wait for the whole file without owning the download.
    pub fn whole(&self) -> Downloaded {
        self.whole.clone()
    }

    /// Where the local file is.
    pub fn file_path(&self) -> &Path {
        &self.path
    }
}

/// The order to stream `object` in, or `None` when it must be read whole (the reason is
/// logged). Its head is read from the download as it arrives, which costs no request of its
/// own; an MP4 with its index at the end costs one more, for the index. (Asking for the last
/// megabytes beside the download, in case the index is there, saves that round trip on S3 but
/// costs a whole-object read on moto for every source: measured slower here.)
async fn stream_order(
    store: &S3Store,
    object: &S3Object,
    head: &ObjectInfo,
    path: &Path,
    mut arrival: watch::Receiver<Arrival>,
) -> Option<Vec<Piece>> {
    let size = head.size;
    let etag = head.etag.as_deref();
    let whole = vec![Piece::Object {
        start: 0,
        end: size,
    }];
    let mut head_len = HEAD_BYTES.min(size);
    loop {
        let bytes = match read_arrived(&mut arrival, path, head_len).await {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::info!(%error, "could not read the source's head; downloading it whole first");
                return None;
            }
        };
        let verdict = input::read_head(&bytes, size);
        let tail_start = match verdict {
            Ok(HeadVerdict::IndexFirst) => return Some(whole),
            Ok(HeadVerdict::NotMp4) if bytes.starts_with(&EBML_MAGIC) => return Some(whole),
            Ok(HeadVerdict::NotMp4) => {
                tracing::info!("not MP4 or Matroska: downloading the source whole first");
                return None;
            }
            Ok(HeadVerdict::NeedMore { head_len: more }) if more > head_len && more <= size => {
                head_len = more;
                continue;
            }
            Ok(HeadVerdict::NeedMore { .. }) => {
                tracing::info!("an MP4 head that does not end: downloading the source whole first");
                return None;
            }
            Ok(HeadVerdict::IndexAtEnd { tail_start }) => tail_start,
            Err(error) => {
                tracing::info!(%error, "an MP4 we do not stream: downloading it whole first");
                return None;
            }
        };
        let tail = match store.get_range(object, etag, tail_start, size).await {
            Ok(tail) => tail,
            Err(error) => {
                tracing::info!(%error, "could not read the source's index; downloading it whole first");
                return None;
            }
        };
        return match input::faststart_order(&bytes, size, tail_start, &tail) {
            Ok(pieces) => {
                tracing::info!(
                    index_bytes = tail.len(),
                    "streaming an MP4 with its index moved first"
                );
                Some(pieces)
            }
            Err(error) => {
                tracing::info!(%error, "an MP4 index we do not move: downloading it whole first");
                None
            }
        };
    }
}

/// The first `len` bytes of the download, once they have arrived.
async fn read_arrived(
    arrival: &mut watch::Receiver<Arrival>,
    path: &Path,
    len: u64,
) -> std::io::Result<Vec<u8>> {
    let stopped = || std::io::Error::other("the download stopped first");
    let arrived = arrival
        .wait_for(|a| a.bytes >= len || a.failed || a.complete)
        .await
        .map_err(|_| stopped())?
        .bytes;
    if arrived < len {
        return Err(stopped());
    }
    let mut file = tokio::fs::File::open(path).await?;
    let mut bytes = vec![0u8; len as usize];
    tokio::io::AsyncReadExt::read_exact(&mut file, &mut bytes).await?;
    Ok(bytes)
}
