//! `transcoder`: parses the command line and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use transcoder::cli::{self, Cli};

fn main() -> ExitCode {
    // A missing .env is normal; a broken one is worth a word but not a refusal to run.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("transcoder: ignoring .env: {e}");
        }
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            // --help and --version are not errors; a bad command line is not the source's
            // fault, so it must not exit 2 (invalid input).
            return if e.use_stderr() {
                ExitCode::from(cli::EXIT_RETRYABLE)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    transcoder::telemetry::init(cli.log_format, "warn");
    // Two TLS backends are compiled in (ring for tonic, aws-lc for the AWS SDK), so rustls
    // cannot pick a process default by itself and would panic at the first TLS handshake.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("transcoder: error: cannot start the async runtime: {e}");
            return ExitCode::from(cli::EXIT_RETRYABLE);
        }
    };
    runtime.block_on(cli::run(cli))
}
