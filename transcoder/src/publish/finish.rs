//! The end of a job, the same order for every sink: a reader must never see a playlist that
//! names something missing. Segments first, then each VOD media playlist, the poster, the
//! master playlist, and (by the caller) the `done` manifest last.

use std::collections::HashSet;
use std::path::Path;

use futures::{StreamExt, TryStreamExt};

use super::retry::with_retries;
use super::{MASTER_PLAYLIST, UPLOAD_CONCURRENCY};
use crate::config::SegmentFormat;
use crate::dash::MPD;
use crate::encode::{INIT_SEGMENT, MEDIA_PLAYLIST, POSTER, THUMBNAILS};
use crate::hls::IFRAME_PLAYLIST;
use crate::storage::{ObjectKind, OutputSink, StorageError};
use crate::transcode::{JobError, Transcoded, SUBTITLE_FILE};

/// Publishes every rendition and the poster from `work_dir`, skipping the segments named in
/// `already` (published while the encode ran).
pub async fn publish_renditions<S: OutputSink>(
    sink: &S,
    work_dir: &Path,
    transcoded: &Transcoded,
    already: &HashSet<String>,
) -> Result<(), JobError> {
    let audio = transcoded
        .audio
        .iter()
        .map(|audio| (audio.track.folder.as_str(), &audio.stats.segment_uris));
    let folders = transcoded
        .renditions
        .iter()
        .map(|r| (r.rung.name.as_str(), &r.stats.segment_uris))
        .chain(audio);
    for (name, segment_uris) in folders {
        // A CMAF rendition's init segment goes up with its segments, before its playlist.
        let init = (transcoded.segments == SegmentFormat::Cmaf).then_some(INIT_SEGMENT);
        // Owned names: a closure over borrowed ones trips rustc's higher-ranked lifetime check
        // once this future must be Send (the gRPC server spawns it).
        let objects: Vec<String> = init
            .into_iter()
            .chain(segment_uris.iter().map(String::as_str))
            .map(|uri| format!("{name}/{uri}"))
            .filter(|object| !already.contains(object))
            .collect();
        upload_segments(sink, work_dir, objects).await?;
        let playlist = format!("{name}/{MEDIA_PLAYLIST}");
        let path = work_dir.join(&playlist);
        with_retries(&playlist, || {
            sink.put_file(&playlist, &path, ObjectKind::Playlist)
        })
        .await?;
    }
    for rendition in transcoded
        .renditions
        .iter()
        .filter(|r| r.iframe_bandwidth.is_some())
    {
        let playlist = format!("{}/{IFRAME_PLAYLIST}", rendition.rung.name);
        let path = work_dir.join(&playlist);
        with_retries(&playlist, || {
            sink.put_file(&playlist, &path, ObjectKind::Playlist)
        })
        .await?;
    }
    for subtitles in &transcoded.subtitles {
        let file = format!("{}/{SUBTITLE_FILE}", subtitles.folder);
        upload_segments(sink, work_dir, vec![file]).await?;
        let playlist = subtitles.playlist();
        let path = work_dir.join(&playlist);
        with_retries(&playlist, || {
            sink.put_file(&playlist, &path, ObjectKind::Playlist)
        })
        .await?;
    }
    for sprite in transcoded.sprites() {
        let path = work_dir.join(&sprite);
        with_retries(&sprite, || sink.put_file(&sprite, &path, ObjectKind::Image)).await?;
    }
    let path = work_dir.join(POSTER);
    with_retries(POSTER, || sink.put_file(POSTER, &path, ObjectKind::Image)).await?;
    Ok(())
}

/// Uploads the segments `objects` (names under the output root, files under `work_dir`), a
/// few at once, each retried.
pub async fn upload_segments<S: OutputSink>(
    sink: &S,
    work_dir: &Path,
    objects: Vec<String>,
) -> Result<(), StorageError> {
    futures::stream::iter(objects)
        .map(|object| async move {
            let path = work_dir.join(&object);
            with_retries(&object, || {
                sink.put_file(&object, &path, ObjectKind::segment_named(&object))
            })
            .await
        })
        .buffer_unordered(UPLOAD_CONCURRENCY)
        .try_collect::<()>()
        .await
}

/// Publishes a CMAF job's DASH manifest, then the master playlist with the measured
/// bandwidths: after this the stream is complete.
pub async fn publish_master<S: OutputSink>(
    sink: &S,
    transcoded: &Transcoded,
) -> Result<(), JobError> {
    if let Some(index) = transcoded.thumbnails_vtt("") {
        with_retries(THUMBNAILS, || {
            sink.put_bytes(
                THUMBNAILS,
                index.clone().into_bytes(),
                ObjectKind::Thumbnails,
            )
        })
        .await?;
    }
    if let Some(mpd) = transcoded.mpd("") {
        with_retries(MPD, || {
            sink.put_bytes(MPD, mpd.clone().into_bytes(), ObjectKind::DashManifest)
        })
        .await?;
    }
    with_retries(MASTER_PLAYLIST, || {
        sink.put_bytes(
            MASTER_PLAYLIST,
            transcoded.master.clone().into_bytes(),
            ObjectKind::Playlist,
        )
    })
    .await?;
    Ok(())
}
