//! Writing the joined stream into the version folder as ranges land, and remembering every
//! object the job wrote so that a failed job can take them back: a lost range must never
//! leave a stream behind that stops half-way.
//!
//! What to write and when is decided elsewhere (`landed` and `master`); this file only
//! writes, with retries, and keeps the list.

use super::coordinator::SplitJob;
use super::landed::Landed;
use super::master::{audio_outputs, master_playlist, range_folders, renditions, rung_playlist};
use super::retry::split_error;
use super::stitch::{joined_playlist, joined_segments, RangeOutput};
use crate::config::SegmentFormat;
use crate::encode::{Trickplay, INIT_SEGMENT, POSTER, THUMBNAILS};
use crate::hls::{render_iframe_playlist, IFrame, IFRAME_PLAYLIST};
use crate::input::SourceInput;
use crate::manifest::Manifest;
use crate::publish::{announce_playable, retract, with_retries, LivePublisher, MASTER_PLAYLIST};
use crate::storage::{ObjectKind, OutputSink};
use crate::transcode::{
    measured_master, write_subtitles, JobError, JobEvent, Rendition, SubtitleOutput, Transcoded,
    SUBTITLE_FILE,
};

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
        for folder in folders(job) {
            let playlist = joined_playlist(&growth.ranges, &folder, false);
            self.put(job, &rung_playlist(&folder), playlist).await?;
        }
        if growth.first && self.record.playable_at.is_none() {
            let segments = job.template.settings.segments;
            let master = master_playlist(job.prepared, segments, &growth.ranges).into_bytes();
            announce_playable(job.dest, master, &mut self.record, events).await?;
            self.objects.push(MASTER_PLAYLIST.to_string());
        }
        self.landed.grown(&growth);
        Ok(())
    }

    /// Every range is in: VOD playlists, the subtitles, the poster, then the measured master.
    pub async fn finish(&mut self, job: &SplitJob<'_>) -> Result<Transcoded, JobError> {
        let all = self.landed.leading();
        let segments = job.template.settings.segments;
        if segments == SegmentFormat::Cmaf {
            check_numbering(&all, &folders(job))?;
        }
        for folder in folders(job) {
            let playlist = joined_playlist(&all, &folder, true);
            self.put(job, &rung_playlist(&folder), playlist).await?;
        }
        let (subtitles, mut notes) = self.publish_subtitles(job).await?;
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
        if !made {
            notes.push("seek preview left out: ffmpeg wrote too few sprites".into());
        }
        let mut renditions = renditions(job.prepared, &all);
        if segments == SegmentFormat::Cmaf {
            self.publish_iframes(job, &all, &mut renditions, &mut notes)
                .await?;
        }
        let audio = audio_outputs(job.prepared, segments, &all);
        let fps = job.prepared.fps;
        let master = measured_master(&renditions, &audio, &subtitles, segments, fps);
        self.put(job, MASTER_PLAYLIST, master.clone().into_bytes())
            .await?;
        Ok(Transcoded {
            source: job.prepared.source.clone(),
            fps,
            renditions,
            audio,
            subtitles,
            trickplay: made.then_some(trickplay),
            notes,
            segments,
            master,
        })
    }

    /// Each CMAF rung's I-frame playlist, from where its ranges' workers found each segment's
    /// keyframe to end; left out (with a note) when a worker did not say.
    async fn publish_iframes(
        &mut self,
        job: &SplitJob<'_>,
        all: &[RangeOutput],
        renditions: &mut [Rendition],
        notes: &mut Vec<String>,
    ) -> Result<(), JobError> {
        let mut playlists = Vec::with_capacity(renditions.len());
        for rendition in renditions.iter() {
            let frames: Option<Vec<IFrame>> = joined_segments(all, &rendition.rung.name)
                .into_iter()
                .map(|s| {
                    (s.first_frame_end > 0).then(|| IFrame {
                        uri: s.uri.clone(),
                        duration_s: s.duration_s,
                        length: s.first_frame_end,
                    })
                })
                .collect();
            let Some(frames) = frames else {
                notes.push(
                    "I-frame playlists left out: a range's worker did not report its keyframes"
                        .into(),
                );
                return Ok(());
            };
            playlists.push(render_iframe_playlist(&frames, INIT_SEGMENT));
        }
        for (rendition, (playlist, bandwidth)) in renditions.iter_mut().zip(playlists) {
            let name = format!("{}/{IFRAME_PLAYLIST}", rendition.rung.name);
            self.put(job, &name, playlist.into_bytes()).await?;
            rendition.iframe_bandwidth = Some(bandwidth);
        }
        Ok(())
    }

    /// With CMAF, the source's text tracks and sidecars as WebVTT renditions, converted here
    /// from the downloaded file (no range sees the whole video) and published with their
    /// playlists; with MPEG-TS, a note when there were any.
    async fn publish_subtitles(
        &mut self,
        job: &SplitJob<'_>,
    ) -> Result<(Vec<SubtitleOutput>, Vec<String>), JobError> {
        let (source, sidecars) = (&job.prepared.source, &job.prepared.sidecars);
        let settings = &job.template.settings;
        if settings.segments == SegmentFormat::Ts {
            let any = !source.subtitles.is_empty() || !sidecars.is_empty();
            let note = "subtitles left out: they are published with --segments cmaf only";
            return Ok((
                Vec::new(),
                any.then(|| note.to_string()).into_iter().collect(),
            ));
        }
        let input = SourceInput::File(job.input.to_path_buf());
        let (subtitles, notes) =
            write_subtitles(&input, source, sidecars, job.work_dir, settings).await;
        for track in &subtitles {
            let file = format!("{}/{SUBTITLE_FILE}", track.folder);
            let path = job.work_dir.join(&file);
            with_retries(&file, || {
                job.dest
                    .version()
                    .put_file(&file, &path, ObjectKind::Subtitles)
            })
            .await?;
            self.objects.push(file);
            let playlist = track.playlist();
            let body = tokio::fs::read(job.work_dir.join(&playlist))
                .await
                .map_err(JobError::output(&job.work_dir.join(&playlist)))?;
            self.put(job, &playlist, body).await?;
        }
        Ok((subtitles, notes))
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

fn folders(job: &SplitJob<'_>) -> Vec<String> {
    let (prepared, segments) = (job.prepared, job.template.settings.segments);
    range_folders(&prepared.ladder, &prepared.source, segments)
}

/// A DASH manifest numbers segments from 0 without a gap (`$Number$`): each folder's joined
/// segments must be `seg_00000`, `seg_00001` ... A range that numbered its audio otherwise
/// fails the job rather than publish a manifest that names the wrong files.
fn check_numbering(ranges: &[RangeOutput], folders: &[String]) -> Result<(), JobError> {
    for folder in folders {
        let segments = joined_segments(ranges, folder);
        for (i, segment) in segments.iter().enumerate() {
            if segment.uri != format!("seg_{i:05}.m4s") {
                return Err(split_error(
                    &format!(
                        "{folder}: segment {i} is named {}, not numbered in order",
                        segment.uri
                    ),
                    false,
                ));
            }
        }
    }
    Ok(())
}
