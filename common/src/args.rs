//! The settings both programs read the same way: where outputs go when a job names none, and
//! what to do when a job ends (`transcoder run` and `serve`, and the consumer for the jobs it
//! follows). Every flag also reads an environment variable (docs/contract.md).

use clap::Args;

/// Default output location for jobs that name none.
#[derive(Debug, Clone, Args)]
pub struct OutputArgs {
    /// Output bucket for jobs that name no output.
    #[arg(long, env = "OUTPUT_BUCKET")]
    pub output_bucket: Option<String>,
    /// Key prefix under the output bucket (the source key without its extension follows).
    #[arg(long, env = "OUTPUT_PREFIX", default_value = "")]
    pub output_prefix: String,
}

/// What to do when a job ends, besides its manifest (`run`; the consumer does the same for
/// the jobs it follows over gRPC).
#[derive(Debug, Clone, Args)]
pub struct StatusArgs {
    /// SQS queue that receives one JSON event per finished job (job id, source, status,
    /// master playlist, error).
    #[arg(long, env = "NOTIFY_QUEUE_URL")]
    pub notify_queue_url: Option<String>,
    /// Delete the raw upload once its job is done (never after a failure).
    #[arg(long, env = "DELETE_SOURCE", default_value_t = false, action = clap::ArgAction::Set,
          value_parser = clap::builder::BoolishValueParser::new(), num_args = 0..=1,
          default_missing_value = "true")]
    pub delete_source: bool,
}

impl StatusArgs {
    /// The configuration these flags describe.
    pub fn config(&self) -> crate::status::StatusConfig {
        crate::status::StatusConfig {
            notify_queue_url: self.notify_queue_url.clone(),
            delete_source: self.delete_source,
        }
    }
}
