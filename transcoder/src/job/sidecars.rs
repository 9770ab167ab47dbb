//! A job's subtitle sidecars on S3: objects beside the source named `STEM.LANG.vtt|srt`, found
//! by one listing and downloaded (small ones only) into the work folder under names of ours.
//! Anything that goes wrong here costs the job its sidecars, never its video.

use std::path::Path;

use crate::manifest::SidecarSource;
use crate::storage::{key_stem, ListedObject, S3Object, S3Store};
use crate::transcode::{sidecar_of, Sidecar, SidecarFormat, MAX_SIDECAR_BYTES};

/// Keys looked at beside a source: sidecars of one video, not a bucket's worth.
const LISTED: i32 = 100;

/// The sidecars beside `source`, as listed (a failed listing finds none).
pub async fn list_sidecars(store: &S3Store, source: &S3Object) -> Vec<ListedObject> {
    let stem = key_stem(&source.key);
    match store
        .list(&source.bucket, &format!("{stem}."), LISTED)
        .await
    {
        Ok(listed) => listed
            .into_iter()
            .filter(|o| sidecar_of(&source.key, &o.key).is_some())
            .collect(),
        Err(error) => {
            tracing::warn!(%error, "could not look for subtitle sidecars");
            Vec::new()
        }
    }
}

/// What the job's record says of `listed`.
pub fn sidecar_sources(listed: &[ListedObject]) -> Vec<SidecarSource> {
    listed
        .iter()
        .map(|o| SidecarSource {
            key: o.key.clone(),
            etag: o.etag.clone(),
        })
        .collect()
}

/// Downloads the sidecars of `source` that were `listed` (the bytes listed only) into
/// `work_dir`, leaving out any too big to be subtitles.
pub async fn fetch_sidecars(
    store: &S3Store,
    source: &S3Object,
    listed: &[ListedObject],
    work_dir: &Path,
) -> Vec<Sidecar> {
    let mut sidecars = Vec::new();
    for ListedObject { key, size, etag } in listed {
        let Some((language, format)) = sidecar_of(&source.key, key) else {
            continue;
        };
        if *size > MAX_SIDECAR_BYTES {
            tracing::warn!(
                key,
                size,
                "a subtitle sidecar too big to be subtitles: left out"
            );
            continue;
        }
        let object = S3Object {
            bucket: source.bucket.clone(),
            key: key.clone(),
        };
        let bytes = match store
            .get_range(&object, etag.as_deref(), 0, (*size).max(1))
            .await
        {
            Ok(bytes) => bytes,
            Err(error) => {
                tracing::warn!(%error, key, "could not download a subtitle sidecar");
                continue;
            }
        };
        let extension = match format {
            SidecarFormat::WebVtt => "vtt",
            SidecarFormat::SubRip => "srt",
        };
        // A name of ours: object keys never become local paths.
        let path = work_dir.join(format!("sidecar_{}.{extension}", sidecars.len() + 1));
        if let Err(error) = tokio::fs::write(&path, bytes).await {
            tracing::warn!(%error, key, "could not keep a subtitle sidecar");
            continue;
        }
        tracing::info!(key, language, "subtitle sidecar found");
        sidecars.push(Sidecar {
            path,
            language,
            format,
        });
    }
    sidecars
}
