//! Publishing while ffmpeg encodes, so that a stream is playable seconds after the encode
//! starts and the upload hides behind the encode.
//!
//! ffmpeg renames each segment into place only once it is complete (`temp_file`) and then
//! rewrites its media playlist the same way. We poll those playlists, upload every newly
//! listed segment (a few at once, retried), publish each rung as an EVENT playlist of the
//! segments already uploaded, and once every rung has one, a first master playlist. That
//! master carries bandwidths estimated from the rungs' caps; `finish` replaces it with the
//! measured one. The order keeps docs/contract.md's promise: a playlist never names a missing object.

use std::collections::{HashSet, VecDeque};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use m3u8_rs::MediaPlaylist;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::retry::with_retries;
use super::{
    announce_playable, early_layout, estimated_bandwidth, retract, Destination, MASTER_PLAYLIST,
    UPLOAD_CONCURRENCY,
};
use crate::config::{EncodeSettings, SegmentFormat};
use crate::encode::{audio_tracks, INIT_SEGMENT, MEDIA_PLAYLIST};
use crate::hls::{self, MasterLayout, Variant};
use crate::ladder::Rung;
use crate::manifest::Manifest;
use crate::probe::Rational;
use crate::storage::{ObjectKind, OutputSink, StorageError};
use crate::transcode::{JobError, JobEvent, Prepared};

/// How often ffmpeg's playlists are read: a segment waits at most this long to start uploading.
/// Reading five small local files ten times a second costs nothing beside the encode, and the
/// first segment's wait is part of the time to first playable.
const POLL: Duration = Duration::from_millis(100);
/// Segments published one by one as soon as they are uploaded, before updates are paced.
const LEAD_SEGMENTS: usize = 3;

/// One rendition as it grows: a video rung, or a CMAF job's audio.
struct LiveRung {
    /// Its folder under the work folder and the version folder.
    folder: String,
    /// The rung, `None` for the audio rendition.
    rung: Option<Rung>,
    /// The init segment (CMAF), once ffmpeg's playlist names it: queued with the first
    /// segment, and published before any playlist that needs it.
    init: Option<String>,
    /// ffmpeg's playlist as last read.
    playlist: Option<MediaPlaylist>,
    /// Segments handed to the uploader so far.
    queued: usize,
    /// Segments in the EVENT playlist last published.
    published: usize,
    /// When that playlist was published.
    published_at: Option<Instant>,
}

/// Publishes a job's outputs as ffmpeg writes them. Not `Send`-bound to one task: `watch` runs
/// beside the encode, and `finish`/`retract` after it, on the same value.
pub struct LivePublisher<S> {
    dest: Destination<S>,
    /// The version folder, where segments and playlists go.
    sink: S,
    work_dir: PathBuf,
    ffmpeg: PathBuf,
    rungs: Vec<LiveRung>,
    fps: Rational,
    has_audio: bool,
    /// How the master lays out the variants (and the audio rendition's language).
    layout: MasterLayout,
    segments: SegmentFormat,
    /// The least time between two updates of one EVENT playlist (half a segment): a player
    /// at the live edge waits at most that much longer, and an encode faster than real time
    /// makes fewer PUTs.
    refresh: Duration,
    /// The `processing` record, updated once the stream is playable.
    record: Manifest,
    /// Object names published (segments, playlists, master), for `retract`.
    uploaded: HashSet<String>,
    master_published: bool,
}

impl<S: OutputSink + Clone + 'static> LivePublisher<S> {
    /// A publisher of `prepared`'s renditions, written as `segments`, from `work_dir` to `dest`.
    pub fn new(
        dest: Destination<S>,
        work_dir: PathBuf,
        prepared: &Prepared,
        settings: &EncodeSettings,
        record: Manifest,
    ) -> Self {
        let live = |folder: &str, rung: Option<&Rung>| LiveRung {
            folder: folder.to_string(),
            rung: rung.cloned(),
            init: None,
            playlist: None,
            queued: 0,
            published: 0,
            published_at: None,
        };
        let mut rungs: Vec<LiveRung> = prepared
            .ladder
            .iter()
            .map(|rung| live(&rung.name, Some(rung)))
            .collect();
        if settings.segments == SegmentFormat::Cmaf {
            let tracks = audio_tracks(&prepared.source);
            rungs.extend(tracks.iter().map(|t| live(&t.folder, None)));
        }
        let layout = early_layout(prepared, settings.segments);
        let segment_seconds = settings.segment_seconds;
        Self {
            sink: dest.version().clone(),
            dest,
            work_dir,
            ffmpeg: settings.ffmpeg.clone(),
            rungs,
            fps: prepared.fps,
            has_audio: prepared.source.audio.is_some(),
            layout,
            segments: settings.segments,
            refresh: Duration::from_secs_f64(f64::from(segment_seconds.max(2)) / 2.0),
            record,
            uploaded: HashSet::new(),
            master_published: false,
        }
    }

    /// Where rungs go: the version folder.
    pub fn sink(&self) -> &S {
        &self.sink
    }

    /// The record as last written: with `playable_at` once the stream was playable.
    pub fn record(&self) -> &Manifest {
        &self.record
    }

    /// Segments published so far, by object name.
    pub fn published_objects(&self) -> &HashSet<String> {
        &self.uploaded
    }

    /// Publishes until `stop` (the encode ended) or an upload fails for good. A playlist being
    /// written when `stop` comes is finished first: dropped mid-request, it could still land
    /// after the final VOD playlist and leave a `done` video that never ends. Segments still
    /// uploading are waited for, not dropped: a request already sent can land after it is
    /// dropped, after a failed job's `retract`, which would not know of it (seen once in CI: a
    /// segment left beside a failed record).
    pub async fn watch(
        &mut self,
        events: &(dyn Fn(JobEvent) + Send + Sync),
        stop: &CancellationToken,
    ) -> Result<(), JobError> {
        let mut uploads: JoinSet<(String, Result<(), StorageError>)> = JoinSet::new();
        let mut waiting: VecDeque<String> = VecDeque::new();
        let mut tick = tokio::time::interval(POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => {
                    self.settle(uploads).await;
                    return Ok(());
                }
                _ = tick.tick() => self.scan(&mut waiting).await?,
                Some(joined) = uploads.join_next(), if !uploads.is_empty() => match joined {
                    Ok((name, Ok(()))) => {
                        self.uploaded.insert(name);
                    }
                    Ok((_, Err(error))) => {
                        self.settle(uploads).await;
                        return Err(error.into());
                    }
                    Err(panic) => {
                        self.settle(uploads).await;
                        return Err(JobError::Output {
                            path: "segment upload".into(),
                            source: std::io::Error::other(panic.to_string()),
                        });
                    }
                },
            }
            self.publish_progress(events).await?;
            while uploads.len() < UPLOAD_CONCURRENCY {
                let Some(name) = waiting.pop_front() else {
                    break;
                };
                let (sink, path) = (self.sink.clone(), self.work_dir.join(&name));
                uploads.spawn(async move {
                    let kind = ObjectKind::segment_named(&name);
                    let result = with_retries(&name, || sink.put_file(&name, &path, kind)).await;
                    (name, result)
                });
            }
        }
    }

    /// Waits for the uploads under way, counting those that landed as published.
    async fn settle(&mut self, mut uploads: JoinSet<(String, Result<(), StorageError>)>) {
        while let Some(joined) = uploads.join_next().await {
            if let Ok((name, Ok(()))) = joined {
                self.uploaded.insert(name);
            }
        }
    }

    /// Reads each rung's playlist and queues its new segments.
    async fn scan(&mut self, waiting: &mut VecDeque<String>) -> Result<(), JobError> {
        for live in &mut self.rungs {
            let path = self.work_dir.join(&live.folder).join(MEDIA_PLAYLIST);
            let Some(playlist) = hls::read_media_playlist(&path).await? else {
                continue;
            };
            let map = playlist.segments.first().and_then(|s| s.map.as_ref());
            if let (None, Some(map)) = (&live.init, map) {
                let init = format!("{}/{}", live.folder, map.uri);
                waiting.push_back(init.clone());
                live.init = Some(init);
            }
            for segment in playlist.segments.iter().skip(live.queued) {
                waiting.push_back(format!("{}/{}", live.folder, segment.uri));
            }
            live.queued = live.queued.max(playlist.segments.len());
            live.playlist = Some(playlist);
        }
        Ok(())
    }

    /// Publishes the EVENT playlists that have grown, then the first master once every rung
    /// has a segment.
    async fn publish_progress(
        &mut self,
        events: &(dyn Fn(JobEvent) + Send + Sync),
    ) -> Result<(), JobError> {
        for live in &mut self.rungs {
            let Some(playlist) = &live.playlist else {
                continue;
            };
            // Only an unbroken run from the first segment, after the init segment if there
            // is one: uploads finish in any order.
            let init_up = live.init.as_ref().is_none_or(|i| self.uploaded.contains(i));
            let ready = playlist
                .segments
                .iter()
                .take_while(|s| {
                    init_up
                        && self
                            .uploaded
                            .contains(&format!("{}/{}", live.folder, s.uri))
                })
                .count();
            // The first few segments go out at once, so that a player starting at the first
            // master has a few segments of lead; after that, one update per refresh period.
            let due = live.published < LEAD_SEGMENTS
                || live
                    .published_at
                    .is_none_or(|at| at.elapsed() >= self.refresh);
            if ready > live.published && due {
                let name = format!("{}/{MEDIA_PLAYLIST}", live.folder);
                let body = hls::render_event_playlist(playlist, ready);
                with_retries(&name, || {
                    self.sink
                        .put_bytes(&name, body.clone(), ObjectKind::Playlist)
                })
                .await?;
                live.published = ready;
                live.published_at = Some(Instant::now());
                self.uploaded.insert(name);
            }
        }
        if !self.master_published && self.rungs.iter().all(|r| r.published > 0) {
            self.publish_first_master(events).await?;
        }
        Ok(())
    }

    /// The master playlist while the encode runs: codecs read from each rung's first segment,
    /// bandwidths estimated from the caps (the measured ones replace them in `finish`).
    async fn publish_first_master(
        &mut self,
        events: &(dyn Fn(JobEvent) + Send + Sync),
    ) -> Result<(), JobError> {
        let mut variants = Vec::with_capacity(self.rungs.len());
        for live in &self.rungs {
            let Some(rung) = &live.rung else {
                continue; // The audio rendition: in the layout, not a variant.
            };
            let first = &live.playlist.as_ref().expect("published").segments[0];
            let dir = self.work_dir.join(&live.folder);
            let segment = dir.join(&first.uri);
            let init = dir.join(INIT_SEGMENT);
            let mut codecs =
                hls::rung_codec_string(self.segments, &self.ffmpeg, &init, &segment).await?;
            if self.has_audio {
                codecs = format!("{codecs},{}", hls::AAC_LC);
            }
            let bandwidth = estimated_bandwidth(rung, self.has_audio);
            variants.push(Variant {
                uri: format!("{}/{MEDIA_PLAYLIST}", live.folder),
                bandwidth,
                average_bandwidth: bandwidth,
                width: rung.width,
                height: rung.height,
                codecs,
                frame_rate: self.fps.as_f64(),
            });
        }
        let master = hls::render_master(&variants, &self.layout).into_bytes();
        announce_playable(&self.dest, master, &mut self.record, events).await?;
        self.master_published = true;
        self.uploaded.insert(MASTER_PLAYLIST.to_string());
        Ok(())
    }

    /// After a failure: removes what this job published (see `retract`).
    pub async fn retract(&self) {
        let names: Vec<&String> = self.uploaded.iter().collect();
        retract(&self.dest, &names).await;
    }
}
