//! `transcoder submit`: sends one job to a warm transcoder and follows it to the end.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use proto::v1::transcode_event::Event;
use proto::v1::{self, EncodeOverrides};

use super::progress_view::ProgressView;
use super::{report_failure, EXIT_DONE, EXIT_RETRYABLE};
use crate::config::X264_PRESETS;
use crate::manifest::ErrorKind;
use crate::rpc::{client, convert, Refusal};
use crate::storage::{S3Object, S3Prefix};

/// Arguments of `transcoder submit`.
#[derive(Debug, Args)]
pub struct SubmitArgs {
    /// The warm transcoder: http://HOST:PORT, or https:// for TLS.
    #[arg(long, env = "TRANSCODER_ENDPOINT")]
    pub endpoint: String,
    /// The upload to transcode: s3://BUCKET/KEY.
    #[arg(value_parser = S3Object::parse)]
    pub source: S3Object,
    /// Where the outputs go: s3://BUCKET/PREFIX/ (default: the server's OUTPUT_BUCKET and
    /// OUTPUT_PREFIX plus the source key without its extension).
    #[arg(long, env = "JOB_OUTPUT", value_parser = S3Prefix::parse)]
    pub output: Option<S3Prefix>,
    /// libx264 preset for this job (default: the server's).
    #[arg(long, env = "TRANSCODER_PRESET", value_parser = clap::builder::PossibleValuesParser::new(X264_PRESETS))]
    pub preset: Option<String>,
    /// Rungs to produce, by shorter side, comma-separated (default: every rung that fits).
    #[arg(long, env = "TRANSCODER_RUNGS", value_delimiter = ',')]
    pub rungs: Vec<u32>,
    /// Bearer token the server requires.
    #[arg(long, env = "TRANSCODER_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// PEM CA certificate to trust for an https:// endpoint (besides the public roots).
    #[arg(long, env = "TRANSCODER_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// Submits the job and shows its progress; the exit code is the job's (docs/contract.md).
pub async fn run(args: SubmitArgs) -> ExitCode {
    match submit(args).await {
        Ok(code) => code,
        Err(message) => {
            eprintln!("transcoder: error: {message}");
            ExitCode::from(EXIT_RETRYABLE)
        }
    }
}

async fn submit(args: SubmitArgs) -> Result<ExitCode, String> {
    let options = client::EndpointOptions {
        ca_cert: args.ca_cert.as_deref(),
        tls_domain: None,
    };
    let channel = client::endpoint(&args.endpoint, &options)
        .map_err(|e| e.to_string())?
        .connect()
        .await
        .map_err(|e| {
            format!(
                "cannot reach {}: {}",
                args.endpoint,
                client::error_chain(&e)
            )
        })?;
    let mut client = client::client(
        channel,
        client::BearerToken::new(args.auth_token.as_deref()).map_err(|e| e.to_string())?,
    );

    let request = v1::TranscodeRequest {
        source: Some(v1::S3Object {
            bucket: args.source.bucket.clone(),
            key: args.source.key.clone(),
        }),
        output: args.output.as_ref().map(|o| v1::S3Prefix {
            bucket: o.bucket.clone(),
            prefix: o.prefix.clone(),
        }),
        overrides: Some(EncodeOverrides {
            preset: args.preset.clone().unwrap_or_default(),
            rungs: args.rungs.clone(),
            crf: None,
        }),
        message: None,
        job_id: String::new(),
        // A job without a message stops when `submit` goes away: nothing to report.
        report: None,
    };
    let mut stream = client
        .transcode(request)
        .await
        .map_err(|status| match Refusal::of(&status) {
            Refusal::Busy => format!("the transcoder is busy: {}", status.message()),
            Refusal::Rejected(why) => format!("refused: {why}"),
            Refusal::Down(why) => why,
        })?
        .into_inner();

    let view = ProgressView::new();
    let result = loop {
        let event = match stream.message().await {
            Ok(Some(event)) => event.event,
            Ok(None) => break Err("the transcoder ended the stream without a result".to_string()),
            Err(status) => {
                break Err(format!(
                    "the stream broke: {:?}: {}",
                    status.code(),
                    status.message()
                ))
            }
        };
        match event {
            Some(Event::Accepted(a)) => view.note(&format!("accepted job {}", a.job_id)),
            Some(Event::Completed(done)) => break Ok(Ok(done)),
            Some(Event::Failed(failed)) => break Ok(Err(failed)),
            Some(other) => {
                if let Some(event) = convert::event_from_proto(&other) {
                    view.show(&event);
                }
            }
            None => {}
        }
    };
    view.finish();
    match result? {
        Ok(done) => {
            let note = if done.already_done {
                " (already published for this ETag)"
            } else {
                ""
            };
            println!("done: {}{note}", done.master_playlist);
            println!("manifest: {}", done.manifest);
            Ok(ExitCode::from(EXIT_DONE))
        }
        Err(failed) => {
            let kind: ErrorKind = convert::kind_from_proto(failed.kind);
            Ok(report_failure(kind, &failed.message))
        }
    }
}
