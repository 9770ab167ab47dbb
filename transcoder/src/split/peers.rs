//! The other warm transcoders a coordinator hands ranges to, over the same gRPC service, and
//! what a worker answers when it returns no range.

use std::time::Duration;

use proto::v1;

use super::convert;
use super::stitch::RangeOutput;
use super::worker::RangeJob;
use crate::config::SegmentFormat;
use crate::liveness::Liveness;
use crate::manifest::ErrorKind;
use crate::rpc::client::{client, endpoint, error_chain, BearerToken, EndpointOptions};

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
    /// The worker can take no range of this job (RunTask is refused): the range goes back,
    /// uncounted, and the worker stops.
    Unavailable(String),
}

impl std::fmt::Display for RangeFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Busy => write!(f, "busy"),
            Self::Invalid(m) | Self::Failed(m) | Self::Unavailable(m) => write!(f, "{m}"),
        }
    }
}

/// One worker per address: a name such as a Cloud Map service or a compose service resolves to
/// every task behind it, and each of them takes ranges. `https` URLs stay as given, since TLS
/// checks the name. A name that does not resolve now is left out of this job.
pub async fn expand_peers(endpoints: &[String]) -> Vec<String> {
    let mut urls = Vec::new();
    for url in endpoints {
        let Some((host, port)) = plain_host_port(url) else {
            urls.push(url.clone());
            continue;
        };
        let resolved = tokio::net::lookup_host((host.as_str(), port)).await;
        match resolved {
            Ok(addresses) => {
                for address in addresses {
                    let expanded = format!("http://{address}");
                    if !urls.contains(&expanded) {
                        urls.push(expanded);
                    }
                }
            }
            Err(error) => {
                tracing::warn!(%url, %error, "cannot resolve a peer; splitting without it")
            }
        }
    }
    urls
}

/// Host and port of an `http://host:port` URL.
fn plain_host_port(url: &str) -> Option<(String, u16)> {
    let uri: tonic::codegen::http::Uri = url.parse().ok()?;
    if uri.scheme_str() != Some("http") {
        return None;
    }
    Some((
        uri.host()?.trim_matches(['[', ']']).to_string(),
        uri.port_u16().unwrap_or(80),
    ))
}

/// Asks the peer at `url` to encode `job`, and waits for its segments; each progress it
/// reports beats `liveness`.
pub async fn encode_remote(
    url: &str,
    auth_token: Option<&str>,
    job: &RangeJob,
    liveness: &Liveness,
) -> Result<RangeOutput, RangeFailure> {
    let failed =
        |what: &str, detail: String| RangeFailure::Failed(format!("{url}: {what}: {detail}"));
    let channel = endpoint(url, &EndpointOptions::default())
        .map_err(|e| failed("endpoint", e.to_string()))?
        .connect_timeout(CONNECT_TIMEOUT)
        .connect()
        .await
        .map_err(|e| failed("connect", error_chain(&e)))?;
    let token = BearerToken::new(auth_token).map_err(|e| failed("token", e.to_string()))?;
    let mut stream = client(channel, token)
        .encode_range(convert::range_request(job))
        .await
        .map_err(|status| match crate::rpc::Refusal::of(&status) {
            crate::rpc::Refusal::Busy => RangeFailure::Busy,
            refused => failed("EncodeRange", refused.to_string()),
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
                let output = convert::range_output(job.range.index, done);
                return if is_what_was_asked(&output, job) {
                    Ok(output)
                } else {
                    Err(failed(
                        "result",
                        "rungs or segment names not as asked".into(),
                    ))
                };
            }
            Some(v1::range_event::Event::Failed(f)) => {
                let message = format!("{url}: {}", f.message);
                return Err(
                    if crate::rpc::convert::kind_from_proto(f.kind) == ErrorKind::InvalidInput {
                        RangeFailure::Invalid(message)
                    } else {
                        RangeFailure::Failed(message)
                    },
                );
            }
            Some(v1::range_event::Event::Progress(_)) => liveness.beat(),
            None => {}
        }
    }
}

/// The peer's segments go into our playlists: they must be the rungs asked for, each with
/// segments named as ffmpeg names them in the format asked for, never a URL or a path
/// elsewhere; with CMAF, audio folders after them (the coordinator checks which).
pub(super) fn is_what_was_asked(output: &RangeOutput, job: &RangeJob) -> bool {
    let extension = match job.settings.segments {
        SegmentFormat::Ts => ".ts",
        SegmentFormat::Cmaf => ".m4s",
    };
    let digits = |n: &str| !n.is_empty() && n.len() <= 5 && n.bytes().all(|b| b.is_ascii_digit());
    let segment_name = |uri: &str| {
        uri.strip_prefix("seg_")
            .and_then(|rest| rest.strip_suffix(extension))
            .is_some_and(digits)
    };
    let audio_folder =
        |name: &str| name == "audio" || name.strip_prefix("audio_").is_some_and(digits);
    let (video, audio) = output
        .rungs
        .split_at(job.ladder.len().min(output.rungs.len()));
    video.len() == job.ladder.len()
        && video.iter().zip(&job.ladder).all(|(got, asked)| {
            got.name == asked.name
                && !got.segments.is_empty()
                && got.segments.iter().all(|s| segment_name(&s.uri))
        })
        && (audio.is_empty() || job.settings.segments == SegmentFormat::Cmaf)
        && audio
            .iter()
            .all(|got| audio_folder(&got.name) && got.segments.iter().all(|s| segment_name(&s.uri)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_result_names_only_the_segments_asked_for() {
        use crate::split::stitch::{RungOutput, SegmentOut};
        let job = crate::split::worker::tests::job_with_rungs(&["360p"]);
        let output = |uri: &str| RangeOutput {
            index: 0,
            rungs: vec![RungOutput {
                name: "360p".into(),
                codecs: String::new(),
                segments: vec![SegmentOut {
                    uri: uri.into(),
                    duration_s: 4.0,
                    bytes: 1,
                    first_frame_end: 0,
                }],
            }],
        };
        assert!(is_what_was_asked(&output("seg_00012.ts"), &job));
        for bad in [
            "https://evil.example/x.ts",
            "../seg_00001.ts",
            "seg_.ts",
            "seg_1.ts.tmp",
            "seg_00012.m4s",
        ] {
            assert!(!is_what_was_asked(&output(bad), &job), "{bad}");
        }
        // A CMAF range: fMP4 segments, and audio folders after the rungs.
        let mut cmaf = job.clone();
        cmaf.settings.segments = SegmentFormat::Cmaf;
        let mut with_audio = output("seg_00012.m4s");
        for name in ["audio", "audio_2"] {
            let mut audio = with_audio.rungs[0].clone();
            audio.name = name.into();
            with_audio.rungs.push(audio);
        }
        assert!(is_what_was_asked(&with_audio, &cmaf));
        assert!(
            !is_what_was_asked(&output("seg_00012.ts"), &cmaf),
            "an older peer's MPEG-TS"
        );
        assert!(
            !is_what_was_asked(&with_audio, &job),
            "audio folders with MPEG-TS"
        );
        with_audio.rungs[2].name = "../audio".into();
        assert!(!is_what_was_asked(&with_audio, &cmaf));
    }

    #[tokio::test]
    async fn a_name_becomes_one_peer_per_address_and_tls_urls_stay() {
        let peers = expand_peers(&[
            "http://localhost:50051".to_string(),
            "http://127.0.0.1:50051".to_string(),
            "https://transcoder.internal:50051".to_string(),
            "http://no-such-host.invalid:50051".to_string(),
        ])
        .await;
        assert!(
            peers.contains(&"http://127.0.0.1:50051".to_string()),
            "{peers:?}"
        );
        assert_eq!(
            peers
                .iter()
                .filter(|p| *p == "http://127.0.0.1:50051")
                .count(),
            1,
            "the same address once"
        );
        assert!(peers.contains(&"https://transcoder.internal:50051".to_string()));
        assert!(!peers.iter().any(|p| p.contains("invalid")));
    }
}
