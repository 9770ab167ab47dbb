//! `transcoder healthcheck`: asks a warm transcoder's gRPC health service whether it serves.
//! The container image's HEALTHCHECK runs it, so the image needs no separate probe binary.

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use crate::rpc::client::{self, EndpointOptions};

/// Arguments of `transcoder healthcheck`.
#[derive(Debug, Args)]
pub struct HealthcheckArgs {
    /// The transcoder to ask (`https://` for TLS; give --ca-cert for a private CA).
    #[arg(
        long,
        env = "TRANSCODER_HEALTH_ENDPOINT",
        default_value = "http://127.0.0.1:50051"
    )]
    pub endpoint: String,
    /// Seconds to wait for the answer.
    #[arg(long, env = "TRANSCODER_HEALTH_TIMEOUT_SECONDS", default_value_t = 3,
          value_parser = clap::value_parser!(u64).range(1..=60))]
    pub timeout_seconds: u64,
    /// PEM CA certificate to trust for an https:// endpoint.
    #[arg(long, env = "TRANSCODER_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
}

/// Exit 0 when the server says SERVING; 1 otherwise (not serving, draining, unreachable).
pub async fn run(args: HealthcheckArgs) -> ExitCode {
    let timeout = Duration::from_secs(args.timeout_seconds);
    let options = EndpointOptions {
        ca_cert: args.ca_cert.as_deref(),
        tls_domain: None,
    };
    let channel = match client::endpoint(&args.endpoint, &options) {
        Ok(endpoint) => endpoint.connect_timeout(timeout).connect_lazy(),
        Err(e) => {
            eprintln!("transcoder: error: {e}");
            return ExitCode::from(1);
        }
    };
    match client::is_serving(channel, timeout).await {
        Ok(true) => {
            println!("serving");
            ExitCode::SUCCESS
        }
        Ok(false) => {
            println!("not serving");
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("transcoder: error: {} did not answer: {e}", args.endpoint);
            ExitCode::from(1)
        }
    }
}
