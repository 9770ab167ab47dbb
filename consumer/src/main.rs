//! `consumer`: parses the configuration and hands over to the library.

use std::process::ExitCode;

use clap::Parser;
use consumer::config::Config;

fn main() -> ExitCode {
    // A missing .env is normal; a broken one is worth a word but not a refusal to run.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("consumer: ignoring .env: {e}");
        }
    }
    let config = match Config::try_parse() {
        Ok(config) => config,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    if let Err(problem) = config.check() {
        eprintln!("consumer: error: {problem}");
        return ExitCode::from(1);
    }
    transcoder::telemetry::init(config.log_format, "info");
    // As in the transcoder: ring for tonic beside aws-lc for the SDK, so pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("consumer: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(consumer::app::run(config))
}
