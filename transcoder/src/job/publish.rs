//! The order outputs are published in, the same for every sink: a reader must never see a
//! playlist that names something missing. Segments first, then each media playlist, the
//! poster, the master playlist, and (by the caller) the `done` manifest last.

use std::path::Path;

use futures::{StreamExt, TryStreamExt};

use super::{JobError, Transcoded};
use crate::encode::{MEDIA_PLAYLIST, POSTER};
use crate::storage::{ObjectKind, OutputSink};

/// The master playlist's name under the output root.
pub const MASTER_PLAYLIST: &str = "master.m3u8";
/// The job record's name under the output root.
pub const MANIFEST: &str = "manifest.json";

/// Segments uploaded at once: enough to fill a link to S3, few enough to stay polite.
const UPLOAD_CONCURRENCY: usize = 8;

/// Publishes every rendition and the poster from `work_dir`.
pub async fn publish_renditions<S: OutputSink>(
    sink: &S,
    work_dir: &Path,
    transcoded: &Transcoded,
) -> Result<(), JobError> {
    for rendition in &transcoded.renditions {
        let name = &rendition.rung.name;
        // Owned names: a closure over borrowed ones trips rustc's higher-ranked lifetime check
        // once this future must be Send (the gRPC server spawns it).
        let objects: Vec<String> = rendition
            .stats
            .segment_uris
            .iter()
            .map(|uri| format!("{name}/{uri}"))
            .collect();
        futures::stream::iter(objects)
            .map(|object| async move {
                sink.put_file(&object, &work_dir.join(&object), ObjectKind::Segment)
                    .await
            })
            .buffer_unordered(UPLOAD_CONCURRENCY)
            .try_collect::<()>()
            .await?;
        let playlist = format!("{name}/{MEDIA_PLAYLIST}");
        sink.put_file(&playlist, &work_dir.join(&playlist), ObjectKind::Playlist)
            .await?;
    }
    sink.put_file(POSTER, &work_dir.join(POSTER), ObjectKind::Image)
        .await?;
    Ok(())
}

/// Publishes the master playlist: after this the stream is playable.
pub async fn publish_master<S: OutputSink>(
    sink: &S,
    transcoded: &Transcoded,
) -> Result<(), JobError> {
    sink.put_bytes(
        MASTER_PLAYLIST,
        transcoded.master.clone().into_bytes(),
        ObjectKind::Playlist,
    )
    .await?;
    Ok(())
}
