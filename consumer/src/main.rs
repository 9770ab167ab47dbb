//! `consumer`: not built yet. The SQS long-poll and the dispatchers arrive with their own issue;
//! until then the binary says so and exits non-zero, so that nothing mistakes it for working.

use std::process::ExitCode;

fn main() -> ExitCode {
    eprintln!("consumer: not built yet (see the consumer issue); use `transcoder local` for now");
    ExitCode::from(1)
}
