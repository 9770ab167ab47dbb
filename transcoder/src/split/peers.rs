//! The other warm transcoders a coordinator hands ranges to, over the same gRPC service.

use std::time::Duration;

use proto::v1;

use super::convert;
use super::stitch::RangeOutput;
use super::worker::RangeJob;
use crate::manifest::ErrorKind;
use crate::serve::client::{client, endpoint, error_chain, BearerToken, EndpointOptions};

/// A peer that does not accept a connection in this long is treated as down for this range.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Where ranges can go besides this transcoder.
#[derive(Debug, Clone, Default)]
pub struct Peers {
    /// gRPC URLs (`http://transcoder-2:50051`), one worker each.
    pub endpoints: Vec<String>,
    /// The bearer token they require, if any.
    pub auth_token: Option<String>,
}

/// Why a peer did not return a range.
#[derive(Debug, Clone, PartialEq)]
pub enum RangeFailure {
    /// It is running all the jobs it takes: try elsewhere, nothing went wrong.
    Busy,
    /// The source cannot be transcoded: no retry can help.
    Invalid(String),
    /// Anything else (unreachable, crashed, storage): another worker may succeed.
    Failed(String),
}

impl std::fmt::Display for RangeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Busy => write!(f, "busy"),
            Self::Invalid(m) | Self::Failed(m) => write!(f, "{m}"),
        }
    }
}

/// Asks the peer at `url` to encode `job`, and waits for its segments.
pub async fn encode_remote(
    url: &str,
    auth_token: Option<&str>,
    job: &RangeJob,
) -> Result<RangeOutput, RangeFailure> {
    let failed =
        |what: &str, detail: String| RangeFailure::Failed(format!("{url}: {what}: {detail}"));
    let channel = endpoint(url, &EndpointOptions::default())
        .map_err(|e| failed("endpoint", e))?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .map_err(|e| failed("connect", error_chain(&e)))?;
    let token = BearerToken::new(auth_token).map_err(|e| failed("token", e))?;
    let mut stream = client(channel, token)
        .encode_range(convert::range_request(job))
        .await
        .map_err(|status| match status.code() {
            tonic::Code::ResourceExhausted => RangeFailure::Busy,
            code => failed("EncodeRange", format!("{code:?}: {}", status.message())),
        })?
        .into_inner();
    loop {
        let event = stream
            .message()
            .await
            .map_err(|s| failed("stream", format!("{:?}: {}", s.code(), s.message())))?
            .ok_or_else(|| failed("stream", "ended without a result".into()))?;
        match event.event {
            Some(v1::range_event::Event::Done(done)) => {
                return Ok(convert::range_output(job.range.index, done))
            }
            Some(v1::range_event::Event::Failed(f)) => {
                let message = format!("{url}: {}", f.message);
                return Err(
                    if crate::serve::convert::kind_from_proto(f.kind) == ErrorKind::InvalidInput {
                        RangeFailure::Invalid(message)
                    } else {
                        RangeFailure::Failed(message)
                    },
                );
            }
            Some(v1::range_event::Event::Progress(_)) | None => {}
        }
    }
}
