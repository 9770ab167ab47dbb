//! `consumer`: parses the command line and hands over to the library: the service, or with a
//! subcommand an operator's tool.

use std::future::Future;
use std::process::ExitCode;

use clap::Parser;
use consumer::config::{Cli, Tool};

fn main() -> ExitCode {
    // A missing .env is normal; a broken one is worth a word but not a refusal to run.
    if let Err(e) = dotenvy::dotenv() {
        if !e.not_found() {
            eprintln!("consumer: ignoring .env: {e}");
        }
    }
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            let _ = e.print();
            return if e.use_stderr() {
                ExitCode::from(1)
            } else {
                ExitCode::SUCCESS
            };
        }
    };
    match cli {
        Cli::Serve(config) => {
            if let Err(problem) = config.check() {
                eprintln!("consumer: error: {problem}");
                return ExitCode::from(1);
            }
            common::telemetry::init(config.log_format, "info");
            block_on(consumer::app::run(config))
        }
        Cli::Tool(Tool::DeadLetters(args)) => block_on(consumer::dead_letters::run(args)),
    }
}

fn block_on(run: impl Future<Output = ExitCode>) -> ExitCode {
    // As in the transcoder: ring for tonic beside aws-lc for the SDK, so pick one.
    let _ = rustls::crypto::ring::default_provider().install_default();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(runtime) => runtime,
        Err(e) => {
            eprintln!("consumer: error: cannot start the async runtime: {e}");
            return ExitCode::from(1);
        }
    };
    runtime.block_on(run)
}
