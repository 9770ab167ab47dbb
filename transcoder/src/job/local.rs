//! `transcoder local`: the whole job on local files.
//!
//! ffmpeg writes into a hidden work folder inside OUT_DIR (same filesystem, so publishing is a
//! rename), then the renditions and poster move into place, the master playlist after them, and
//! the `done` manifest last: a reader never sees a master that points at something missing.

use std::path::{Path, PathBuf};

use tracing::Instrument;

use super::{transcode, JobError, JobEvent, Stage};
use crate::config::{EncodeSettings, Limits};
use crate::encode::POSTER;
use crate::manifest::{Manifest, SourceRecord};

/// The master playlist's name in the output.
pub const MASTER_PLAYLIST: &str = "master.m3u8";
/// The job record's name in the output.
pub const MANIFEST: &str = "manifest.json";

/// A job on local files.
#[derive(Debug, Clone)]
pub struct LocalJob {
    /// The source video.
    pub input: PathBuf,
    /// The output folder (created when missing).
    pub out_dir: PathBuf,
    /// How to encode.
    pub settings: EncodeSettings,
    /// What to refuse.
    pub limits: Limits,
}

/// Runs the job. On failure the `failed` manifest is already written and no master playlist
/// or rendition is left in OUT_DIR.
pub async fn run_local(
    job: &LocalJob,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<Manifest, (Manifest, JobError)> {
    let source = SourceRecord {
        bucket: None,
        key: job.input.display().to_string(),
        etag: None,
        size: std::fs::metadata(&job.input).ok().map(|m| m.len()),
    };
    let manifest = Manifest::processing(uuid::Uuid::new_v4().to_string(), source);
    let span = tracing::info_span!("job", job_id = %manifest.job_id);

    match publish_after_transcode(job, &manifest, events)
        .instrument(span)
        .await
    {
        Ok(done) => Ok(done),
        Err(error) => {
            let failed = manifest.failed(error.kind(), error.to_string().replace('\n', " | "));
            if let Err(write_error) =
                write_atomically(&job.out_dir.join(MANIFEST), &failed.to_json()).await
            {
                tracing::warn!(%write_error, "could not record the failure");
            }
            Err((failed, error))
        }
    }
}

async fn publish_after_transcode(
    job: &LocalJob,
    manifest: &Manifest,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<Manifest, JobError> {
    let out = &job.out_dir;
    tokio::fs::create_dir_all(out)
        .await
        .map_err(JobError::output(out))?;
    write_atomically(&out.join(MANIFEST), &manifest.to_json()).await?;
    // An earlier run's master would point at renditions this run is about to replace.
    remove_if_present(&out.join(MASTER_PLAYLIST)).await?;

    // Dropped on every path out of this function, so no work folder outlives the job.
    let work = tempfile::Builder::new()
        .prefix(".transcoder-work-")
        .tempdir_in(out)
        .map_err(JobError::output(out))?;
    let transcoded = transcode(&job.input, work.path(), &job.settings, &job.limits, events).await?;

    events(JobEvent::Stage(Stage::Publish));
    for rendition in &transcoded.renditions {
        let target = out.join(&rendition.rung.name);
        if tokio::fs::try_exists(&target).await.unwrap_or(false) {
            tokio::fs::remove_dir_all(&target)
                .await
                .map_err(JobError::output(&target))?;
        }
        tokio::fs::rename(work.path().join(&rendition.rung.name), &target)
            .await
            .map_err(JobError::output(&target))?;
    }
    tokio::fs::rename(work.path().join(POSTER), out.join(POSTER))
        .await
        .map_err(JobError::output(&out.join(POSTER)))?;
    write_atomically(&out.join(MASTER_PLAYLIST), transcoded.master.as_bytes()).await?;

    let mut done = manifest
        .clone()
        .done(transcoded.records(), MASTER_PLAYLIST, POSTER);
    done.duration_s = Some(transcoded.source.duration_s);
    write_atomically(&out.join(MANIFEST), &done.to_json()).await?;
    Ok(done)
}

/// Writes beside the target and renames over it, so a reader sees the old file or the new one.
async fn write_atomically(path: &Path, bytes: &[u8]) -> Result<(), JobError> {
    let mut temp = path.as_os_str().to_owned();
    temp.push(".tmp");
    let temp = PathBuf::from(temp);
    tokio::fs::write(&temp, bytes)
        .await
        .map_err(JobError::output(path))?;
    tokio::fs::rename(&temp, path)
        .await
        .map_err(JobError::output(path))
}

async fn remove_if_present(path: &Path) -> Result<(), JobError> {
    match tokio::fs::remove_file(path).await {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => Err(JobError::output(path)(e)),
        _ => Ok(()),
    }
}
