//! `EncodeRange`: one range of a coordinator's split job, run like a job (a slot, stopped
//! when the coordinator goes away or the server shuts down), streaming its progress and
//! ending with the range's segments.

use proto::v1;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::Status;
use tracing::Instrument;

use super::capacity::Taken;
use super::service::{TranscoderService, EVENT_BUFFER};
use crate::job::JobEvent;
use crate::rpc::convert;
use crate::split::{self, RangeJob};

impl TranscoderService {
    /// Runs `job` in the background, holding `permit`; its events come on the stream.
    pub(super) fn start_range(
        &self,
        job: RangeJob,
        permit: Taken,
    ) -> ReceiverStream<Result<v1::RangeEvent, Status>> {
        let (tx, rx) = mpsc::channel(EVENT_BUFFER);
        let cancel = self.stop_jobs.child_token();
        let service = self.clone();
        self.jobs.spawn(async move {
            let _permit = permit;
            let span = tracing::info_span!("range", job_id = %job.job_id, range = job.range.index);
            let events = {
                let tx = tx.clone();
                move |event: JobEvent| {
                    if let JobEvent::Progress(p) = event {
                        let progress = v1::RangeEvent {
                            event: Some(v1::range_event::Event::Progress(
                                convert::progress_to_proto(&p),
                            )),
                        };
                        let _ = tx.try_send(Ok(progress));
                    }
                }
            };
            let work = split::run_range_job(
                &service.aws.s3,
                &job,
                &service.config.limits,
                service.config.work_root.as_deref(),
                &events,
            )
            .instrument(span);
            // The coordinator going away (its stream dropped) or a shutdown stops the range.
            let last = tokio::select! {
                result = work => match result {
                    Ok(output) => split::convert::range_done(&output),
                    Err(error) => {
                        tracing::warn!(%error, "range failed");
                        v1::RangeEvent {
                            event: Some(v1::range_event::Event::Failed(v1::Failed {
                                kind: convert::kind_to_proto(error.kind()) as i32,
                                message: error.to_string(),
                            })),
                        }
                    }
                },
                () = tx.closed() => return,
                () = cancel.cancelled() => return,
            };
            let _ = tx.send(Ok(last)).await;
        });
        ReceiverStream::new(rx)
    }
}
