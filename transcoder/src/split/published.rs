//! Writing the joined stream into the version folder as ranges land, and remembering every
//! object the job wrote so that a failed job can take them back: a lost range must never
//! leave a stream behind that stops half-way.
//!
//! What to write and when is decided elsewhere (`landed` and `master`); this file only
//! writes, with retries, and keeps the list.

use super::coordinator::SplitJob;
use super::landed::Landed;
use super::master::{master_playlist, renditions, rung_playlist};
use super::stitch::{joined_playlist, RangeOutput};
use crate::config::SegmentFormat;
use crate::encode::{Trickplay, POSTER, THUMBNAILS};
use crate::manifest::Manifest;
use crate::publish::{announce_playable, retract, with_retries, LivePublisher, MASTER_PLAYLIST};
use crate::storage::{ObjectKind, OutputSink};
use crate::transcode::{JobError, JobEvent, Transcoded};

/// What has been published so far.
pub struct Published {
    record: Manifest,
    landed: Landed,
    /// Object names this job published, for `retract`.
    objects: Vec<String>,
}

impl Published {
    /// Nothing published yet; `record` is updated once the stream is playable.
    pub fn new(record: Manifest) -> Self {
        Self {
            record,
            landed: Landed::default(),
            objects: Vec::new(),
        }
    }

    /// The record as last written.
    pub fn record(&self) -> &Manifest {
        &self.record
    }

    /// Takes over what the first range's live publisher did: the objects it published, and its
    /// record once the stream was playable (the master is then not announced again).
    pub fn adopt<S: OutputSink + Clone + 'static>(&mut self, live: &LivePublisher<S>) {
        self.objects
            .extend(live.published_objects().iter().cloned());
        if live.record().playable_at.is_some() {
            self.record = live.record().clone();
        }
    }

    /// The finished ranges.
    pub fn landed(&self) -> &Landed {
        &self.landed
    }

    /// Records a finished range, whose worker already uploaded its segments.
    pub fn add(&mut self, output: RangeOutput) {
        self.objects.extend(output.segment_objects());
        self.landed.add(output);
    }

    /// Grows the EVENT playlists to the finished ranges from the first; with the first range,
    /// publishes the master.
    pub async fn grow(
        &mut self,
        job: &SplitJob<'_>,
        events: &(dyn Fn(JobEvent) + Send + Sync),
    ) -> Result<(), JobError> {
        let Some(growth) = self.landed.growth(job.ranges.len()) else {
            return Ok(());
        };
        for rung in &job.prepared.ladder {
            let playlist = joined_playlist(&growth.ranges, &rung.name, false);
            self.put(job, &rung_playlist(&rung.name), playlist).await?;
        }
        if growth.first && self.record.playable_at.is_none() {
            let master = master_playlist(job.prepared, &growth.ranges, None).into_bytes();
            announce_playable(job.dest, master, &mut self.record, events).await?;
            self.objects.push(MASTER_PLAYLIST.to_string());
        }
        self.landed.grown(&growth);
        Ok(())
    }

    /// Every range is in: VOD playlists, the poster, then the measured master.
    pub async fn finish(&mut self, job: &SplitJob<'_>) -> Result<Transcoded, JobError> {
        let all = self.landed.leading();
        for rung in &job.prepared.ladder {
            let playlist = joined_playlist(&all, &rung.name, true);
            self.put(job, &rung_playlist(&rung.name), playlist).await?;
        }
        let poster = job.work_dir.join(POSTER);
        with_retries(POSTER, || {
            job.dest
                .version()
                .put_file(POSTER, &poster, ObjectKind::Image)
        })
        .await?;
        self.objects.push(POSTER.to_string());
        let duration_s = job.prepared.source.duration_s;
        let trickplay = Trickplay::plan(duration_s, &job.prepared.ladder[0]);
        let sprites = trickplay.sprites(duration_s);
        let made = sprites.iter().all(|s| job.work_dir.join(s).is_file());
        if made {
            for sprite in &sprites {
                let path = job.work_dir.join(sprite);
                with_retries(sprite, || {
                    job.dest
                        .version()
                        .put_file(sprite, &path, ObjectKind::Image)
                })
                .await?;
                self.objects.push(sprite.clone());
            }
            let index = trickplay.render_vtt(duration_s, "").into_bytes();
            with_retries(THUMBNAILS, || {
                job.dest
                    .version()
                    .put_bytes(THUMBNAILS, index.clone(), ObjectKind::Thumbnails)
            })
            .await?;
            self.objects.push(THUMBNAILS.to_string());
        }
        let renditions = renditions(job.prepared, &all);
        let master = master_playlist(job.prepared, &all, Some(&renditions));
        self.put(job, MASTER_PLAYLIST, master.clone().into_bytes())
            .await?;
        Ok(Transcoded {
            source: job.prepared.source.clone(),
            fps: job.prepared.fps,
            renditions,
            audio: Vec::new(),
            subtitles: Vec::new(),
            trickplay: made.then_some(trickplay),
            notes: match made {
                true => Vec::new(),
                false => vec!["seek preview left out: ffmpeg wrote too few sprites".into()],
            },
            segments: SegmentFormat::Ts,
            master,
        })
    }

    /// Removes what this job published (see `publish::retract`).
    pub async fn retract(&self, job: &SplitJob<'_>) {
        let names: Vec<&String> = self.objects.iter().collect();
        retract(job.dest, &names).await;
    }

    async fn put(&mut self, job: &SplitJob<'_>, name: &str, body: Vec<u8>) -> Result<(), JobError> {
        with_retries(name, || {
            job.dest
                .version()
                .put_bytes(name, body.clone(), ObjectKind::Playlist)
        })
        .await?;
        self.objects.push(name.to_string());
        Ok(())
    }
}
