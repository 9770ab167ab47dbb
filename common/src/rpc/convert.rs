//! Between the job's own types and the `transcoder.v1` messages.

use proto::v1::{self, transcode_event::Event};

use crate::events::{JobEvent, Progress, Stage};
use crate::manifest::{ErrorKind, Manifest};

/// A job event as a stream message.
pub fn event_to_proto(event: JobEvent) -> v1::TranscodeEvent {
    let event = match event {
        JobEvent::Stage(stage) => Event::Stage(v1::StageChanged {
            stage: stage_to_proto(stage) as i32,
        }),
        JobEvent::Progress(p) => Event::Progress(progress_to_proto(&p)),
        JobEvent::Playable { master } => Event::Playable(v1::Playable {
            master_playlist: master,
        }),
    };
    v1::TranscodeEvent { event: Some(event) }
}

/// A progress report as a stream message.
pub fn progress_to_proto(p: &Progress) -> v1::Progress {
    v1::Progress {
        percent: p.percent,
        fps: p.fps.unwrap_or(0.0),
        speed: p.speed.unwrap_or(0.0),
        eta_seconds: p.eta_s.unwrap_or(-1.0),
    }
}

fn stage_to_proto(stage: Stage) -> v1::Stage {
    match stage {
        Stage::Download => v1::Stage::Download,
        Stage::Probe => v1::Stage::Probe,
        Stage::Encode => v1::Stage::Encode,
        Stage::Upload => v1::Stage::Upload,
        Stage::Publish => v1::Stage::Publish,
    }
}

/// A stream message as a job event, for clients that show progress; `None` for the others.
pub fn event_from_proto(event: &Event) -> Option<JobEvent> {
    match event {
        Event::Stage(s) => {
            let stage = match v1::Stage::try_from(s.stage).ok()? {
                v1::Stage::Download => Stage::Download,
                v1::Stage::Probe => Stage::Probe,
                v1::Stage::Encode => Stage::Encode,
                v1::Stage::Upload => Stage::Upload,
                v1::Stage::Publish => Stage::Publish,
                v1::Stage::Unspecified => return None,
            };
            Some(JobEvent::Stage(stage))
        }
        Event::Progress(p) => Some(JobEvent::Progress(Progress {
            percent: p.percent,
            out_time_s: 0.0,
            frame: 0,
            fps: (p.fps > 0.0).then_some(p.fps),
            speed: (p.speed > 0.0).then_some(p.speed),
            eta_s: (p.eta_seconds >= 0.0).then_some(p.eta_seconds),
            finished: p.percent >= 100.0,
        })),
        Event::Playable(p) => Some(JobEvent::Playable {
            master: p.master_playlist.clone(),
        }),
        _ => None,
    }
}

/// The final message of a successful job: its `done` record, and whether an earlier job had
/// published these bytes already.
pub fn completed(
    done: &Manifest,
    already_done: bool,
    master_url: String,
    manifest_url: String,
) -> v1::TranscodeEvent {
    let renditions = done
        .renditions
        .iter()
        .map(|r| v1::Rendition {
            name: r.name.clone(),
            width: r.width,
            height: r.height,
            bandwidth: r.bandwidth,
            codecs: r.codecs.clone(),
            playlist: r.playlist.clone(),
        })
        .collect();
    v1::TranscodeEvent {
        event: Some(Event::Completed(v1::Completed {
            master_playlist: master_url,
            manifest: manifest_url,
            duration_seconds: done.duration_s.unwrap_or(0.0),
            renditions,
            already_done,
            source_etag: done.source.etag.clone().unwrap_or_default(),
        })),
    }
}

/// The final message of a failed job.
pub fn failed(kind: ErrorKind, message: String) -> v1::TranscodeEvent {
    v1::TranscodeEvent {
        event: Some(Event::Failed(v1::Failed {
            kind: kind_to_proto(kind) as i32,
            message,
        })),
    }
}

/// An error kind as the stream carries it.
pub fn kind_to_proto(kind: ErrorKind) -> v1::ErrorKind {
    match kind {
        ErrorKind::InvalidInput => v1::ErrorKind::InvalidInput,
        ErrorKind::Internal => v1::ErrorKind::Internal,
    }
}

/// The error kind of a `Failed` message.
pub fn kind_from_proto(kind: i32) -> ErrorKind {
    match v1::ErrorKind::try_from(kind) {
        Ok(v1::ErrorKind::InvalidInput) => ErrorKind::InvalidInput,
        _ => ErrorKind::Internal,
    }
}
