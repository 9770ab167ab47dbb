//! The command line: every flag also reads an environment variable (docs/contract.md), and
//! `--help` shows both with the default.

mod healthcheck;
mod local;
mod preview;
mod progress_view;
mod run;
mod run_range;
mod serve;
mod submit;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

use crate::config::{EncodeSettings, Limits, SegmentFormat, X264_PRESETS};
use crate::manifest::ErrorKind;
use crate::telemetry::LogFormat;
pub use common::args::{OutputArgs, StatusArgs};
pub use common::signal::shutdown_signal;
pub use healthcheck::HealthcheckArgs;
pub use local::LocalArgs;
pub use preview::PreviewArgs;
pub use run::RunArgs;
pub use run_range::RunRangeArgs;
pub use serve::ServeArgs;
pub use submit::SubmitArgs;

/// Exit code of a job that is done and published.
pub const EXIT_DONE: u8 = 0;
/// Exit code for anything worth retrying (network, storage, a crash on valid input), and for
/// a command line that cannot be understood.
pub const EXIT_RETRYABLE: u8 = 1;
/// Exit code for a source that can never be transcoded.
pub const EXIT_INVALID_INPUT: u8 = 2;

/// Turns uploaded videos into HLS adaptive-bitrate ladders with one ffmpeg process.
///
/// Exit codes: 0 done and published; 2 invalid input (the source can never be transcoded; one
/// line on stderr says why); 1 anything else, worth retrying.
#[derive(Debug, Parser)]
#[command(name = "transcoder", version, max_term_width = 100)]
pub struct Cli {
    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text, global = true)]
    pub log_format: LogFormat,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Transcode a local file into an HLS ladder in a local folder: probe, ladder, encode,
    /// poster, manifest. No cloud involved.
    Local(LocalArgs),
    /// Run a warm transcoder: a gRPC server taking jobs from S3 to S3 and streaming progress,
    /// with the gRPC health service and server reflection.
    Serve(ServeArgs),
    /// Run one job from S3 to S3 and exit, as an ECS task does; the job comes from the
    /// environment (JOB_SOURCE, JOB_OUTPUT, JOB_QUEUE_URL, JOB_RECEIPT_HANDLE) or the flags.
    Run(RunArgs),
    /// Run one range of a split job and exit, as a range task does: the range comes from
    /// RANGE_JOB, set by the coordinator that started the task, and its result goes to
    /// RANGE_RESULT.
    RunRange(RunRangeArgs),
    /// Submit a job to a warm transcoder and follow its progress.
    Submit(SubmitArgs),
    /// Ask a warm transcoder's gRPC health service whether it serves: exit 0 if SERVING, 1
    /// otherwise. The container image's HEALTHCHECK.
    Healthcheck(HealthcheckArgs),
    /// Serve, on loopback, a page that plays an output (a local folder or an S3 prefix) with
    /// hls.js and dash.js: rungs, audio tracks, subtitles and the seek preview.
    Preview(PreviewArgs),
}

/// Encoding and limits: every subcommand that runs jobs.
#[derive(Debug, Clone, Args)]
pub struct JobArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub encode: EncodeArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub limits: LimitArgs,
}

impl JobArgs {
    /// The encode settings, with the pixel limit applied to every decoded frame as well.
    pub fn settings(&self) -> EncodeSettings {
        EncodeSettings {
            max_frame_pixels: self.limits.limits().max_pixels,
            ..self.encode.settings()
        }
    }
}

/// What jobs on S3 share: `serve` and `run`.
#[derive(Debug, Clone, Args)]
pub struct CloudArgs {
    /// Folder for work files (downloaded sources, renditions before upload).
    #[arg(long, env = "TRANSCODER_WORK_DIR")]
    pub work_dir: Option<PathBuf>,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: OutputArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub publish: PublishArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub queue: QueueArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub split: SplitArgs,
}

/// Splitting long sources across other warm transcoders and one-shot ECS tasks.
#[derive(Debug, Clone, Args)]
pub struct SplitArgs {
    /// gRPC URLs of other warm transcoders (comma-separated). A source longer than
    /// --split-min-seconds is then cut into ranges that this transcoder and every peer encode
    /// at once. Without peers or --split-tasks, every job is one pass.
    #[arg(long, env = "TRANSCODER_PEERS", value_delimiter = ',')]
    pub peers: Vec<String>,
    /// Ranges that may run on one-shot ECS tasks at once, each on a task of its own
    /// (`transcoder run-range` in the ECS_TASK_DEFINITION task, placed as ECS_* says): a long
    /// source finishes in minutes when the warm pool is small. 0: none.
    #[arg(long, env = "SPLIT_TASKS", default_value_t = 0,
          value_parser = clap::value_parser!(u32).range(0..=256))]
    pub split_tasks: u32,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub placement: common::tasks::TaskPlacementArgs,
    /// Sources longer than this are split across the peers and range tasks.
    #[arg(long, env = "SPLIT_MIN_SECONDS", default_value_t = 300.0)]
    pub split_min_seconds: f64,
    /// The first range's length (rounded up to whole segments): the
    /// stream is playable once it is encoded.
    #[arg(long, env = "SPLIT_FIRST_RANGE_SECONDS", default_value_t = 8,
          value_parser = clap::value_parser!(u32).range(1..=600))]
    pub split_first_range_seconds: u32,
    /// Bearer token the peers require (the one every transcoder of the pool is given).
    #[arg(long, env = "TRANSCODER_AUTH_TOKEN", hide_env_values = true)]
    pub peer_auth_token: Option<String>,
}

impl SplitArgs {
    /// The settings jobs use; range tasks start with `ecs`. An error names what range tasks
    /// miss.
    pub fn settings(
        &self,
        ecs: &aws_sdk_ecs::Client,
    ) -> Result<crate::split::SplitSettings, String> {
        let tasks = if self.split_tasks == 0 {
            None
        } else {
            let missing = self.placement.missing();
            if !missing.is_empty() {
                return Err(format!(
                    "SPLIT_TASKS={}: {}",
                    self.split_tasks,
                    missing.join("; ")
                ));
            }
            Some(crate::split::tasks::TaskRunners {
                launcher: common::tasks::TaskLauncher::new(ecs.clone(), self.placement.placement()),
                count: self.split_tasks,
            })
        };
        Ok(crate::split::SplitSettings {
            min_seconds: Some(self.split_min_seconds),
            first_range_seconds: self.split_first_range_seconds,
            peers: crate::split::Peers {
                endpoints: self
                    .peers
                    .iter()
                    .map(|p| p.trim().to_string())
                    .filter(|p| !p.is_empty())
                    .collect(),
                auth_token: self.peer_auth_token.clone(),
            },
            tasks,
        })
    }
}

/// How jobs on S3 publish: versions and the hold on their prefix (`serve` and `run`).
#[derive(Debug, Clone, Args)]
pub struct PublishArgs {
    /// How long a version replaced by a newer upload of the same video is kept, so that
    /// players that loaded it finish (deleted by the next job on that prefix after this).
    #[arg(long, env = "TRANSCODER_KEEP_REPLACED_SECONDS",
          default_value_t = crate::job::KEEP_REPLACED.as_secs())]
    pub keep_replaced_seconds: u64,
    /// How long a job's hold on its output prefix (`lease.json`) lasts unless renewed: a job
    /// that dies frees its prefix after this.
    #[arg(long, env = "TRANSCODER_PREFIX_LEASE_SECONDS",
          default_value_t = crate::storage::LEASE_TTL.as_secs(),
          value_parser = clap::value_parser!(u64).range(3..))]
    pub prefix_lease_seconds: u64,
}

impl PublishArgs {
    /// How long replaced versions are kept.
    pub fn keep_replaced(&self) -> std::time::Duration {
        std::time::Duration::from_secs(self.keep_replaced_seconds)
    }

    /// How jobs hold their output prefix.
    pub fn lease(&self) -> crate::storage::LeaseSettings {
        crate::storage::LeaseSettings {
            ttl: std::time::Duration::from_secs(self.prefix_lease_seconds),
            ..Default::default()
        }
    }
}

/// Owning queue messages.
#[derive(Debug, Clone, Args)]
pub struct QueueArgs {
    /// Seconds each heartbeat keeps a job's message invisible; heartbeats come every third of
    /// this, so a job may run far longer than the queue's visibility timeout.
    #[arg(long, env = "TRANSCODER_VISIBILITY_EXTENSION_SECONDS", default_value_t = 120,
          value_parser = clap::value_parser!(u64).range(3..=43200))]
    pub visibility_extension_seconds: u64,
    /// The queue's redrive `maxReceiveCount`: a retryable failure on that delivery is recorded
    /// `dead_lettered` (the queue moves the message to its dead-letter queue next), an earlier
    /// one `retrying`. Unset: every retryable failure is recorded `retrying`.
    #[arg(long, env = "QUEUE_MAX_RECEIVE_COUNT",
          value_parser = clap::value_parser!(u32).range(1..))]
    pub max_receive_count: Option<u32>,
}

/// How to encode; shared by every subcommand that encodes.
#[derive(Debug, Clone, Args)]
pub struct EncodeArgs {
    /// libx264 preset for every rung.
    #[arg(long, env = "TRANSCODER_PRESET", default_value = "veryfast",
          value_parser = clap::builder::PossibleValuesParser::new(X264_PRESETS))]
    pub preset: String,
    /// Constant rate factor (lower is better and bigger); each rung is also capped by its
    /// maxrate.
    #[arg(long, env = "TRANSCODER_CRF", default_value_t = 23,
          value_parser = clap::value_parser!(u8).range(0..=51))]
    pub crf: u8,
    /// HLS segment length in seconds, after the opening. Keyframes fall on segment boundaries
    /// only, the same instants in every rung.
    #[arg(long, env = "TRANSCODER_SEGMENT_SECONDS", default_value_t = 4,
          value_parser = clap::value_parser!(u32).range(1..=30))]
    pub segment_seconds: u32,
    /// The first segment's length in seconds; each next one doubles until the segment length
    /// (1: segments of 1, 1, 2, then 4 s), so that a stream is playable sooner. 0 for none.
    #[arg(long, env = "TRANSCODER_OPENING_SECONDS", default_value_t = 1,
          value_parser = clap::value_parser!(u32).range(0..=30))]
    pub opening_seconds: u32,
    /// The segments' container: `cmaf` (fragmented MP4 with init segments, every audio track
    /// and text subtitle track as its own rendition, I-frame playlists, and a DASH
    /// `manifest.mpd` over the same segments) or `ts` (MPEG-TS with the default audio track
    /// muxed into every rung, for old devices; no subtitles).
    #[arg(long, env = "TRANSCODER_SEGMENTS", value_enum, default_value_t = SegmentFormat::Cmaf)]
    pub segments: SegmentFormat,
    /// The ffmpeg binary.
    #[arg(long, env = "FFMPEG", default_value = "ffmpeg")]
    pub ffmpeg: PathBuf,
    /// The ffprobe binary.
    #[arg(long, env = "FFPROBE", default_value = "ffprobe")]
    pub ffprobe: PathBuf,
    /// Seconds an encode may go without progress before it is stopped as stalled (retried).
    #[arg(long, env = "TRANSCODER_STALL_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub stall_seconds: u64,
    /// An encode may take at most this many times the source's duration (at least 10 minutes)
    /// before it is stopped (retried).
    #[arg(long, env = "TRANSCODER_MAX_ENCODE_FACTOR", default_value_t = 20.0)]
    pub max_encode_factor: f64,
}

impl EncodeArgs {
    /// The settings these flags describe.
    pub fn settings(&self) -> EncodeSettings {
        EncodeSettings {
            preset: self.preset.clone(),
            crf: self.crf,
            segment_seconds: self.segment_seconds,
            rungs: Vec::new(),
            opening_seconds: self.opening_seconds,
            segments: self.segments,
            ffmpeg: self.ffmpeg.clone(),
            ffprobe: self.ffprobe.clone(),
            stall: std::time::Duration::from_secs(self.stall_seconds),
            max_encode_factor: self.max_encode_factor,
            max_frame_pixels: Limits::default().max_pixels,
        }
    }
}

/// What a source may be; anything beyond is refused as invalid input before encoding.
#[derive(Debug, Clone, Args)]
pub struct LimitArgs {
    /// Largest source accepted, in bytes.
    #[arg(long, env = "TRANSCODER_MAX_INPUT_BYTES", default_value_t = Limits::default().max_input_bytes)]
    pub max_input_bytes: u64,
    /// Largest picture accepted, in pixels (width x height; 8K UHD by default).
    #[arg(long, env = "TRANSCODER_MAX_PIXELS", default_value_t = Limits::default().max_pixels)]
    pub max_pixels: u64,
    /// Longest source accepted, in seconds.
    #[arg(long, env = "TRANSCODER_MAX_DURATION_SECS", default_value_t = Limits::default().max_duration_s)]
    pub max_duration_secs: f64,
}

impl LimitArgs {
    /// The limits these flags describe.
    pub fn limits(&self) -> Limits {
        Limits {
            max_input_bytes: self.max_input_bytes,
            max_pixels: self.max_pixels,
            max_duration_s: self.max_duration_secs,
        }
    }
}

/// Runs the parsed command and returns the process exit code.
pub async fn run(cli: Cli) -> ExitCode {
    match cli.command {
        Command::Local(args) => local::run(args).await,
        Command::Serve(args) => serve::run(args).await,
        Command::Run(args) => run::run(args).await,
        Command::RunRange(args) => run_range::run(args).await,
        Command::Submit(args) => submit::run(args).await,
        Command::Healthcheck(args) => healthcheck::run(args).await,
        Command::Preview(args) => preview::run(args).await,
    }
}

/// Prints why a command cannot start (its configuration, a missing file): exit 1, retryable.
fn cannot_start(error: impl std::fmt::Display) -> ExitCode {
    eprintln!("transcoder: error: {error}");
    ExitCode::from(EXIT_RETRYABLE)
}

/// Maps a failure to its exit code and prints the one line that says why.
fn report_failure(kind: ErrorKind, message: &str) -> ExitCode {
    match kind {
        ErrorKind::InvalidInput => {
            eprintln!("transcoder: invalid input: {}", message.replace('\n', " "));
            ExitCode::from(EXIT_INVALID_INPUT)
        }
        ErrorKind::Internal => {
            eprintln!("transcoder: error: {message}");
            ExitCode::from(EXIT_RETRYABLE)
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;

    /// docs/contract.md: every flag also reads an environment variable.
    #[test]
    fn every_flag_of_every_subcommand_reads_an_environment_variable() {
        let cli = Cli::command();
        let mut missing = Vec::new();
        let mut checked = 0;
        for sub in cli.get_subcommands() {
            for arg in sub.get_arguments() {
                checked += 1;
                let builtin = matches!(arg.get_id().as_str(), "help" | "version");
                if !arg.is_positional() && !builtin && arg.get_env().is_none() {
                    missing.push(format!("{} --{}", sub.get_name(), arg.get_id()));
                }
            }
        }
        assert!(
            checked > 50,
            "the walk reached the flattened flags too: {checked}"
        );
        assert!(missing.is_empty(), "flags without a variable: {missing:?}");
        Cli::command().debug_assert();
    }
}
