//! `transcoder local`: the whole job on local files.
//!
//! ffmpeg writes into a hidden work folder inside OUT_DIR (same filesystem, so publishing is a
//! rename), then the outputs move into place in the order `publish` keeps for every sink.

use std::path::PathBuf;

use tracing::Instrument;

use super::{JobError, JobEvent, Stage};
use crate::config::{EncodeSettings, Limits};
use crate::encode::POSTER;
use crate::input::SourceInput;
use crate::manifest::{Manifest, SourceRecord};
use crate::publish::{publish_master, publish_renditions, MANIFEST, MASTER_PLAYLIST};
use crate::storage::{LocalFolder, ObjectKind, OutputSink};
use crate::transcode::{encode_prepared, local_sidecars, prepare};

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
        sidecars: Vec::new(),
    };
    let manifest = Manifest::processing(uuid::Uuid::new_v4().to_string(), source);
    let sink = LocalFolder::new(&job.out_dir);
    let span = tracing::info_span!("job", job_id = %manifest.job_id);
    match run(job, &sink, &manifest, events).instrument(span).await {
        Ok(done) => Ok(done),
        Err(error) => {
            let failed = manifest.failed(error.kind(), error.to_string().replace('\n', " | "));
            if let Err(write_error) = sink
                .put_bytes(MANIFEST, failed.to_json(), ObjectKind::Json)
                .await
            {
                tracing::warn!(%write_error, "could not record the failure");
            }
            Err((failed, error))
        }
    }
}

async fn run(
    job: &LocalJob,
    sink: &LocalFolder,
    manifest: &Manifest,
    events: &(dyn Fn(JobEvent) + Send + Sync),
) -> Result<Manifest, JobError> {
    let out = &job.out_dir;
    tokio::fs::create_dir_all(out)
        .await
        .map_err(JobError::output(out))?;
    sink.put_bytes(MANIFEST, manifest.to_json(), ObjectKind::Json)
        .await?;
    // An earlier run's master would point at renditions this run is about to replace.
    sink.delete(MASTER_PLAYLIST).await?;

    // Dropped on every path out of this function, so no work folder outlives the job.
    let work = tempfile::Builder::new()
        .prefix(".transcoder-work-")
        .tempdir_in(out)
        .map_err(JobError::output(out))?;
    let input = SourceInput::File(job.input.clone());
    let mut prepared = prepare(&input, &job.settings, &job.limits, events).await?;
    prepared.sidecars = local_sidecars(&job.input);
    let transcoded = encode_prepared(&input, work.path(), prepared, &job.settings, events).await?;

    events(JobEvent::Stage(Stage::Publish));
    // An earlier run's rung folders may hold more segments than this run writes.
    for rendition in &transcoded.renditions {
        let old = out.join(&rendition.rung.name);
        if tokio::fs::try_exists(&old).await.unwrap_or(false) {
            tokio::fs::remove_dir_all(&old)
                .await
                .map_err(JobError::output(&old))?;
        }
    }
    publish_renditions(sink, work.path(), &transcoded, &Default::default()).await?;
    publish_master(sink, &transcoded).await?;
    let mut done = manifest
        .clone()
        .done(transcoded.records(), MASTER_PLAYLIST, POSTER);
    transcoded.describe_source(&mut done, str::to_string);
    sink.put_bytes(MANIFEST, done.to_json(), ObjectKind::Json)
        .await?;
    Ok(done)
}
