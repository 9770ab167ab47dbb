//! What a peer downloads of the source for its range: of an MP4, everything but the media,
//! then only the media its range reads (`input::byte_span`) and the first samples ffmpeg reads
//! while probing (`input::probe_span`), each at its own offset in a sparse file of the object's
//! size. ffmpeg seeks by the index and never reads the holes. Anything else, or anything odd,
//! is downloaded whole as before.

use std::ops::Range;
use std::path::Path;

use tokio::io::{AsyncSeekExt, AsyncWriteExt};

use crate::input::{self, HeadVerdict, MAX_HEAD_BYTES, MAX_TAIL_BYTES};
use crate::liveness::Liveness;
use crate::storage::{ObjectInfo, S3Object, S3Store, StorageError};

/// Downloads what a range of `[start_s, end_s)` (source seconds read by ffmpeg, pre-roll and
/// margins included) needs of `object` into `path`. Returns the object's details and how many
/// bytes came down.
pub async fn fetch_for_range(
    store: &S3Store,
    object: &S3Object,
    etag: Option<&str>,
    path: &Path,
    window: (f64, Option<f64>),
    max_bytes: u64,
) -> Result<(ObjectInfo, u64), StorageError> {
    let info = store.head(object).await?;
    if let Some(wanted) = etag.filter(|e| info.etag.as_deref() != Some(*e)) {
        return Err(StorageError::SourceChanged {
            bucket: object.bucket.clone(),
            key: object.key.clone(),
            etag: wanted.to_string(),
        });
    }
    if info.size <= max_bytes {
        match pieces_for(store, object, etag, info.size, window).await {
            Ok(Some(pieces)) => {
                let fetched = write_sparse(store, object, etag, path, info.size, pieces).await?;
                return Ok((info, fetched));
            }
            Ok(None) => {}
            Err(error) => {
                tracing::info!(%error, "the source's index did not give the range's bytes: downloading it whole");
            }
        }
    }
    let whole = store
        .download(object, etag, path, max_bytes, &Liveness::default(), &|_| {})
        .await?;
    let size = whole.size;
    Ok((whole, size))
}

/// Why a partial download is not possible.
#[derive(Debug, thiserror::Error)]
enum Unfit {
    #[error(transparent)]
    Layout(#[from] input::LayoutError),
    #[error(transparent)]
    Storage(#[from] StorageError),
    #[error("the top-level boxes after the media are {0} bytes")]
    LargeTail(u64),
}

/// The byte ranges to fetch, merged and sorted; `None` for a source that is not an MP4.
async fn pieces_for(
    store: &S3Store,
    object: &S3Object,
    etag: Option<&str>,
    size: u64,
    window: (f64, Option<f64>),
) -> Result<Option<Vec<Range<u64>>>, Unfit> {
    let head = store
        .get_range(object, etag, 0, MAX_HEAD_BYTES.min(size))
        .await?;
    let (tail_start, tail) = match input::read_head(&head, size)? {
        HeadVerdict::IndexFirst => (None, None),
        HeadVerdict::IndexAtEnd { tail_start } => {
            let tail = store.get_range(object, etag, tail_start, size).await?;
            (Some(tail_start), Some(tail))
        }
        HeadVerdict::NotMp4 | HeadVerdict::NeedMore { .. } => return Ok(None),
    };
    let moov_at = input::moov_location(&head, size, tail_start, tail.as_deref())?;
    let moov = match (tail_start, &tail) {
        (Some(start), Some(tail)) if moov_at.start >= start => {
            tail[(moov_at.start - start) as usize..(moov_at.end - start) as usize].to_vec()
        }
        _ => {
            store
                .get_range(object, etag, moov_at.start, moov_at.end)
                .await?
        }
    };
    let media = input::first_media(&head, size)?;
    if size - media.end > MAX_TAIL_BYTES {
        return Err(Unfit::LargeTail(size - media.end));
    }
    let mut pieces = vec![
        0..media.start,
        media.end..size,
        input::probe_span(&moov, size)?,
        input::byte_span(&moov, window.0, window.1, size)?,
    ];
    pieces.retain(|r| r.start < r.end);
    pieces.sort_by_key(|r| r.start);
    let mut merged: Vec<Range<u64>> = Vec::new();
    for piece in pieces {
        match merged.last_mut() {
            Some(last) if piece.start <= last.end => last.end = last.end.max(piece.end),
            _ => merged.push(piece),
        }
    }
    Ok(Some(merged))
}

/// Writes `pieces` of `object` at their offsets into a sparse `size`-byte file at `path`;
/// returns the bytes fetched.
async fn write_sparse(
    store: &S3Store,
    object: &S3Object,
    etag: Option<&str>,
    path: &Path,
    size: u64,
    pieces: Vec<Range<u64>>,
) -> Result<u64, StorageError> {
    let io = StorageError::io(path);
    let mut file = tokio::fs::File::create(path).await.map_err(io)?;
    file.set_len(size).await.map_err(StorageError::io(path))?;
    let mut fetched = 0;
    for piece in pieces {
        let bytes = store
            .get_range(object, etag, piece.start, piece.end)
            .await?;
        if bytes.len() as u64 != piece.end - piece.start {
            return Err(StorageError::S3 {
                operation: "GetObject",
                bucket: object.bucket.clone(),
                key: object.key.clone(),
                message: format!("a ranged read came back with {} bytes", bytes.len()),
            });
        }
        file.seek(std::io::SeekFrom::Start(piece.start))
            .await
            .map_err(StorageError::io(path))?;
        file.write_all(&bytes)
            .await
            .map_err(StorageError::io(path))?;
        fetched += bytes.len() as u64;
    }
    file.flush().await.map_err(StorageError::io(path))?;
    Ok(fetched)
}
