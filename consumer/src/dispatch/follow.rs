//! Following one job on a warm transcoder to its end: progress into the log, the finished job
//! into the status report, and a broken stream into a handed-back message. A job this consumer
//! stops following at shutdown goes on: its transcoder owns the message and reports the end.

use std::sync::Arc;

use common::rpc::convert;
use common::status::{Finish, FinishedJob, StatusReporter};
use proto::v1::{self, transcode_event::Event};
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use super::Job;
use crate::in_flight::InFlight;
use crate::queue::Inbox;

/// Progress is logged at info each time it crosses a multiple of this, at debug otherwise.
const PROGRESS_LOG_STEP: f64 = 25.0;

/// What followers share.
#[derive(Debug, Clone)]
pub struct FollowContext {
    /// For handing messages back when a stream breaks.
    pub inbox: Inbox,
    /// Where finished jobs are reported.
    pub reporter: StatusReporter,
    /// Jobs running, by upload: a followed job leaves it when its stream ends.
    pub in_flight: Arc<InFlight>,
}

/// Reads the job's events until it ends, the stream breaks, or `stop` is cancelled.
pub(super) async fn follow(
    mut stream: tonic::Streaming<v1::TranscodeEvent>,
    job: &Job,
    transcoder: &str,
    context: &FollowContext,
    stop: &CancellationToken,
) {
    let span = tracing::info_span!("job", job_id = %job.job_id, message_id = %job.message.message_id, %transcoder);
    async {
        let mut logged_step = -1.0;
        let ended = loop {
            let next = tokio::select! {
                next = stream.message() => next,
                () = stop.cancelled() => break Ended::Stopped,
            };
            let event = match next {
                Ok(Some(event)) => event.event,
                Ok(None) => break Ended::Broken("the stream ended without a result".into()),
                Err(status) => {
                    break Ended::Broken(format!("{:?}: {}", status.code(), status.message()))
                }
            };
            match event {
                Some(Event::Accepted(_)) => tracing::info!(source = %job.source, "job accepted"),
                Some(Event::Stage(_)) | Some(Event::Progress(_)) | Some(Event::Playable(_)) => {
                    log_progress(event.as_ref(), &mut logged_step)
                }
                Some(Event::Completed(done)) => {
                    break Ended::Finished(Finish::Done {
                        master_playlist: done.master_playlist,
                        already_done: done.already_done,
                        source_etag: Some(done.source_etag).filter(|e| !e.is_empty()),
                    })
                }
                Some(Event::Failed(failed)) => {
                    break Ended::Finished(Finish::Failed {
                        kind: convert::kind_from_proto(failed.kind),
                        message: failed.message,
                    })
                }
                None => {}
            }
        };
        context.in_flight.release(&job.message.message_id);
        match ended {
            Ended::Finished(finish) => {
                match &finish {
                    Finish::Done {
                        master_playlist,
                        already_done,
                        ..
                    } => {
                        tracing::info!(%master_playlist, already_done, "job done")
                    }
                    Finish::Failed { kind, message } => {
                        tracing::warn!(?kind, error = %message, "job failed")
                    }
                }
                // The transcoder settled the message itself; only the report is ours.
                let finished = FinishedJob {
                    job_id: job.job_id.clone(),
                    source: job.source.clone(),
                    finish,
                };
                context.reporter.report(&finished).await;
            }
            Ended::Broken(why) => {
                // The transcoder may be gone mid-job: its heartbeat has stopped, so hand the
                // message back rather than wait out the visibility it last set.
                tracing::warn!(error = %why, "lost the job's stream; handing its message back");
                context.inbox.hand_back(&job.message).await;
            }
            Ended::Stopped => {
                // The job goes on without us: its transcoder owns the message, finishes the
                // work and reports it (the request said how). Handing the message back here
                // would start the same work a second time.
                drop(stream);
                tracing::info!(
                    "stopped following the job at shutdown; its transcoder finishes and reports it"
                );
            }
        }
    }
    .instrument(span)
    .await
}

enum Ended {
    Finished(Finish),
    Broken(String),
    Stopped,
}

fn log_progress(event: Option<&Event>, logged_step: &mut f64) {
    let Some(event) = event.and_then(convert::event_from_proto) else {
        return;
    };
    match event {
        common::events::JobEvent::Stage(stage) => tracing::info!(?stage, "stage"),
        common::events::JobEvent::Playable { master } => {
            tracing::info!(master_playlist = %master, "playable")
        }
        common::events::JobEvent::Progress(p) => {
            let step = (p.percent / PROGRESS_LOG_STEP).floor();
            if step > *logged_step {
                *logged_step = step;
                tracing::info!(
                    percent = format!("{:.0}", p.percent),
                    speed = p.speed.unwrap_or(0.0),
                    "progress"
                );
            } else {
                tracing::debug!(percent = format!("{:.1}", p.percent), "progress");
            }
        }
    }
}
