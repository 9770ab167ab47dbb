//! `transcoder serve`: the warm transcoder.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use super::{cannot_start, shutdown_signal, CloudArgs, JobArgs, EXIT_DONE, EXIT_RETRYABLE};
use crate::aws::Aws;
use crate::serve::{self, ServerOptions, ServiceConfig};

/// Arguments of `transcoder serve`.
#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (port 0 picks a free port; the chosen address is printed).
    #[arg(long, env = "TRANSCODER_LISTEN", default_value = "0.0.0.0:50051")]
    pub listen: SocketAddr,
    /// Jobs run at once; one more call is refused with RESOURCE_EXHAUSTED.
    #[arg(long, env = "TRANSCODER_MAX_JOBS", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..))]
    pub max_jobs: u16,
    /// When set, every Transcode call must carry `authorization: Bearer <token>`.
    #[arg(long, env = "TRANSCODER_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// PEM certificate chain: serve TLS (with --tls-key).
    #[arg(long, env = "TRANSCODER_TLS_CERT", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-cert.
    #[arg(long, env = "TRANSCODER_TLS_KEY", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Seconds running jobs get to finish after SIGTERM before they are stopped and their
    /// messages handed back (under ECS's stopTimeout: Spot gives two minutes).
    #[arg(long, env = "TRANSCODER_DRAIN_SECONDS", default_value_t = 100)]
    pub drain_seconds: u64,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub cloud: CloudArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub job: JobArgs,
}

/// Runs the server until SIGTERM or SIGINT, then drains.
pub async fn run(args: ServeArgs) -> ExitCode {
    let tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => match (std::fs::read(cert), std::fs::read(key)) {
            (Ok(cert), Ok(key)) => Some((cert, key)),
            (Err(e), _) | (_, Err(e)) => {
                eprintln!("transcoder: error: cannot read the TLS certificate or key: {e}");
                return ExitCode::from(EXIT_RETRYABLE);
            }
        },
        _ => None,
    };
    // Before the health service can say SERVING: every job starts these two.
    let encode = args.job.settings();
    for tool in [&encode.ffprobe, &encode.ffmpeg] {
        if let Err(e) = crate::child::check_tool(tool).await {
            eprintln!("transcoder: error: {e}");
            return ExitCode::from(EXIT_RETRYABLE);
        }
    }
    let aws = Aws::from_env().await;
    let split = match args.cloud.split.settings(&aws.ecs) {
        Ok(split) => split,
        Err(e) => return cannot_start(e),
    };
    let listener = match tokio::net::TcpListener::bind(args.listen).await {
        Ok(listener) => listener,
        Err(e) => {
            eprintln!("transcoder: error: cannot listen on {}: {e}", args.listen);
            return ExitCode::from(EXIT_RETRYABLE);
        }
    };
    let address = listener.local_addr().map_or(args.listen, |a| a);
    // Scripts and tests read this line to find a port picked with :0.
    println!("listening on {address}");
    tracing::info!(%address, max_jobs = args.max_jobs, tls = tls.is_some(), "serving");

    let config = ServiceConfig {
        settings: encode,
        limits: args.job.limits.limits(),
        max_jobs: usize::from(args.max_jobs),
        output_bucket: args.cloud.output.output_bucket.clone(),
        output_prefix: args.cloud.output.output_prefix.clone(),
        visibility_extension: Duration::from_secs(args.cloud.queue.visibility_extension_seconds),
        max_receive_count: args.cloud.queue.max_receive_count,
        work_root: args.cloud.work_dir.clone(),
        split,
        keep_replaced: args.cloud.publish.keep_replaced(),
        lease: args.cloud.publish.lease(),
    };
    let options = ServerOptions {
        auth_token: args.auth_token.clone(),
        tls,
        drain: Duration::from_secs(args.drain_seconds),
    };
    match serve::run(listener, aws, config, options, shutdown_signal()).await {
        Ok(()) => ExitCode::from(EXIT_DONE),
        Err(e) => {
            eprintln!("transcoder: error: {e}");
            ExitCode::from(EXIT_RETRYABLE)
        }
    }
}
