//! The consumer's one typed configuration: flags that each read an environment variable
//! (docs/contract.md), loaded once after `.env` and checked before anything starts. [`Cli`] puts the
//! operator's tools (`consumer dead-letters ...`) beside it on the same command line.

use std::path::PathBuf;
use std::time::Duration;

use clap::{ArgMatches, Args, CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use common::telemetry::LogFormat;

use crate::dead_letters::DeadLetters;
use crate::event::Filters;
use common::tasks::TaskPlacementArgs;

/// The command line: the service ([`Config`]) when no subcommand is given, else a tool.
#[derive(Debug)]
#[allow(clippy::large_enum_variant)] // made once, in main: its size does not matter
pub enum Cli {
    /// `consumer` alone: the long-polling service.
    Serve(Config),
    /// `consumer <TOOL> ...`.
    Tool(Tool),
}

/// The operator's tools beside the service. Each reads only the variables it needs.
#[derive(Debug, Subcommand)]
pub enum Tool {
    /// Lists the dead-letter queue of QUEUE_URL, or moves messages from it back to QUEUE_URL.
    ///
    /// `list` prints one line per message (its id, when it was first sent, how many times it
    /// was received, and the upload(s) it names, or the start of a body that is not an S3
    /// notification) and a count, and leaves every message as it was.
    ///
    /// `redrive MESSAGE_ID...` (or `redrive --all`) sends each message's exact body back to
    /// QUEUE_URL, then deletes it from the dead-letter queue, and prints one line per message
    /// moved and a count. Run it once the cause is fixed.
    #[command(after_help = crate::dead_letters::HELP_VARIABLES)]
    DeadLetters(DeadLetters),
}

impl CommandFactory for Cli {
    fn command() -> clap::Command {
        // The service's flags, with the tools as subcommands. A tool takes none of the
        // service's flags (args_conflicts_with_subcommands) and needs none of its required
        // ones (subcommand_negates_reqs): a tool names what it needs itself.
        let service = Config::command();
        // `consumer --help` describes the service: the tools' doc must not replace it.
        let about = service.get_about().cloned().unwrap_or_default();
        let long_about = service.get_long_about().cloned().unwrap_or_default();
        Tool::augment_subcommands(service)
            .about(about)
            .long_about(long_about)
            .args_conflicts_with_subcommands(true)
            .subcommand_negates_reqs(true)
    }

    fn command_for_update() -> clap::Command {
        Self::command()
    }
}

impl FromArgMatches for Cli {
    fn from_arg_matches(matches: &ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut matches.clone())
    }

    fn from_arg_matches_mut(matches: &mut ArgMatches) -> Result<Self, clap::Error> {
        if matches.subcommand_name().is_some() {
            Tool::from_arg_matches_mut(matches).map(Cli::Tool)
        } else {
            Config::from_arg_matches_mut(matches).map(Cli::Serve)
        }
    }

    fn update_from_arg_matches(&mut self, matches: &ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl Parser for Cli {}

/// Long-polls an SQS queue of S3 upload notifications and hands each upload to a warm
/// transcoder over gRPC, or to a one-shot ECS Fargate task.
///
/// Exit codes: 0 after a clean shutdown (SIGTERM or Ctrl-C); 1 when the configuration is
/// wrong or the consumer cannot start.
#[derive(Debug, Parser)]
#[command(name = "consumer", version, max_term_width = 100)]
pub struct Config {
    /// The SQS queue that receives the S3 upload notifications.
    #[arg(long, env = "QUEUE_URL")]
    pub queue_url: String,
    /// Where jobs go: `grpc` (warm transcoders), `ecs` (one Fargate task per job) or `auto`
    /// (warm first, ECS when every warm transcoder is busy).
    #[arg(long, env = "DISPATCH_MODE", value_enum, default_value_t = DispatchMode::Grpc)]
    pub dispatch_mode: DispatchMode,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub warm: WarmArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub ecs: EcsArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub output: common::args::OutputArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub status: common::args::StatusArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub filters: FilterArgs,
    #[command(flatten)]
    #[allow(missing_docs)]
    pub poll: PollArgs,
    /// Log format on stderr.
    #[arg(long, env = "LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,
}

/// Where jobs go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum DispatchMode {
    /// Warm transcoders over gRPC only; while all are busy no upload is received (one received
    /// and then refused waits in the consumer).
    Grpc,
    /// One ECS task per upload.
    Ecs,
    /// Warm transcoders first; an ECS task when every one is busy.
    Auto,
}

/// The warm pool.
#[derive(Debug, Clone, Args)]
pub struct WarmArgs {
    /// Comma-separated gRPC URLs of warm transcoders (http://HOST:PORT, https:// for TLS). A
    /// name that resolves to several addresses (ECS service discovery) is one transcoder per
    /// address.
    #[arg(long, env = "TRANSCODER_ENDPOINTS", value_delimiter = ',')]
    pub endpoints: Vec<String>,
    /// Bearer token the transcoders require.
    #[arg(long, env = "TRANSCODER_AUTH_TOKEN", hide_env_values = true)]
    pub auth_token: Option<String>,
    /// PEM CA certificate to trust for https:// endpoints (besides the public roots).
    #[arg(long, env = "TRANSCODER_CA_CERT")]
    pub ca_cert: Option<PathBuf>,
    /// Jobs sent to one transcoder at once (its `serve --max-jobs`).
    #[arg(long, env = "TRANSCODER_JOBS_PER_ENDPOINT", default_value_t = 1,
          value_parser = clap::value_parser!(u16).range(1..=64))]
    pub jobs_per_endpoint: u16,
    /// Seconds between health checks of each transcoder, and between DNS look-ups.
    #[arg(long, env = "TRANSCODER_HEALTH_SECONDS", default_value_t = 5,
          value_parser = clap::value_parser!(u64).range(1..=300))]
    pub health_seconds: u64,
}

/// How to start an ECS task.
#[derive(Debug, Clone, Args)]
pub struct EcsArgs {
    #[command(flatten)]
    #[allow(missing_docs)]
    pub placement: TaskPlacementArgs,
    /// RunTask attempts per upload when ECS answers with failures (no capacity) or throttles;
    /// with FARGATE_SPOT, the attempts after the first two use FARGATE.
    #[arg(long, env = "ECS_RUN_TASK_ATTEMPTS", default_value_t = 5,
          value_parser = clap::value_parser!(u32).range(1..=20))]
    pub run_task_attempts: u32,
    /// Seconds the message is kept invisible for a new task to start and take it over
    /// (Fargate needs 30 to 90 s to pull and start). At most an hour: SQS refuses to keep a
    /// message invisible beyond 12 hours from its first receive, and a task that has not
    /// started in an hour will not.
    #[arg(long, env = "ECS_STARTUP_SECONDS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(30..=3600))]
    pub startup_seconds: u64,
}

/// Which uploads to take.
#[derive(Debug, Clone, Args)]
pub struct FilterArgs {
    /// Only keys that start with this (others are logged and their message deleted).
    #[arg(long, env = "KEY_PREFIX")]
    pub key_prefix: Option<String>,
    /// Only keys that end with one of these, comma-separated, case-insensitive (`.mp4,.mov`).
    #[arg(long, env = "KEY_SUFFIXES", value_delimiter = ',')]
    pub key_suffixes: Vec<String>,
    /// Largest upload accepted, in bytes, when the event gives its size (the transcoder also
    /// enforces its own limit).
    #[arg(long, env = "MAX_SOURCE_BYTES")]
    pub max_source_bytes: Option<u64>,
}

impl FilterArgs {
    /// The filters these flags describe.
    pub fn filters(&self) -> Filters {
        Filters {
            prefix: self.key_prefix.clone().filter(|p| !p.is_empty()),
            suffixes: self
                .key_suffixes
                .iter()
                .filter(|s| !s.is_empty())
                .cloned()
                .collect(),
            max_size: self.max_source_bytes,
        }
    }
}

/// The poll loop and shutdown.
#[derive(Debug, Clone, Args)]
pub struct PollArgs {
    /// Long-poll wait in seconds (20 is SQS's maximum and the cheapest; 0, short polling, is
    /// refused: an idle consumer would call SQS in a tight loop).
    #[arg(long, env = "POLL_WAIT_SECONDS", default_value_t = 20,
          value_parser = clap::value_parser!(u8).range(1..=20))]
    pub poll_wait_seconds: u8,
    /// Seconds between two looks into the dead-letter queue of QUEUE_URL for uploads whose job
    /// died on its message's last delivery: their records, which would say `processing` for
    /// ever, are marked `dead_lettered` once the job's lease on its output has lapsed. The
    /// messages stay where they are. 0 turns the sweep off; it needs OUTPUT_BUCKET.
    #[arg(long, env = "DEAD_LETTER_SWEEP_SECONDS", default_value_t = 300)]
    pub dead_letter_sweep_seconds: u64,
    /// Seconds the consumer follows running gRPC jobs after SIGTERM before it exits; jobs still
    /// running then go on in their transcoders, which own their messages and report their ends
    /// (keep it under the container's stop timeout).
    #[arg(long, env = "SHUTDOWN_GRACE_SECONDS", default_value_t = 60)]
    pub shutdown_grace_seconds: u64,
}

impl PollArgs {
    /// The long-poll wait.
    pub fn wait(&self) -> Duration {
        Duration::from_secs(self.poll_wait_seconds.into())
    }

    /// The grace period.
    pub fn grace(&self) -> Duration {
        Duration::from_secs(self.shutdown_grace_seconds)
    }
}

impl Config {
    /// Checks what clap cannot: the settings each mode needs. One message names every problem.
    pub fn check(&self) -> Result<(), String> {
        let mut problems = Vec::new();
        let warm = matches!(self.dispatch_mode, DispatchMode::Grpc | DispatchMode::Auto);
        let ecs = matches!(self.dispatch_mode, DispatchMode::Ecs | DispatchMode::Auto);
        if warm && self.warm.endpoints.iter().all(|e| e.trim().is_empty()) {
            problems.push("TRANSCODER_ENDPOINTS (--endpoints) is required");
        }
        if ecs {
            problems.extend(self.ecs.placement.missing());
        }
        if problems.is_empty() {
            Ok(())
        } else {
            let mode = format!("{:?}", self.dispatch_mode).to_lowercase();
            Err(format!("DISPATCH_MODE={mode}: {}", problems.join("; ")))
        }
    }
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::*;
    use crate::dead_letters::Action;

    /// docs/contract.md: every flag also reads an environment variable.
    #[test]
    fn every_flag_reads_an_environment_variable() {
        let command = Config::command();
        let missing: Vec<_> = command
            .get_arguments()
            .filter(|a| !matches!(a.get_id().as_str(), "help" | "version"))
            .filter(|a| a.get_env().is_none())
            .map(|a| a.get_id().to_string())
            .collect();
        assert!(command.get_arguments().count() > 20);
        assert!(missing.is_empty(), "flags without a variable: {missing:?}");
        command.debug_assert();
    }

    #[test]
    fn each_mode_names_what_it_lacks() {
        let parse = |args: &[&str]| {
            let mut all = vec!["consumer", "--queue-url", "http://q"];
            all.extend(args);
            Config::try_parse_from(all).unwrap().check()
        };
        let cases: &[(&[&str], Result<(), &str>)] = &[
            (&["--endpoints", "http://a:1"], Ok(())),
            (
                &[],
                Err("DISPATCH_MODE=grpc: TRANSCODER_ENDPOINTS (--endpoints) is required"),
            ),
            (
                &["--dispatch-mode", "ecs", "--cluster", "c"],
                Err(
                    "DISPATCH_MODE=ecs: ECS_TASK_DEFINITION (--task-definition) is required; \
                     ECS_SUBNETS (--subnets) is required: Fargate tasks use awsvpc",
                ),
            ),
            (
                &[
                    "--dispatch-mode",
                    "ecs",
                    "--cluster",
                    "c",
                    "--task-definition",
                    "t",
                    "--subnets",
                    "s-1",
                ],
                Ok(()),
            ),
            (
                &[
                    "--dispatch-mode",
                    "auto",
                    "--cluster",
                    "c",
                    "--task-definition",
                    "t",
                    "--subnets",
                    "s-1",
                ],
                Err("DISPATCH_MODE=auto: TRANSCODER_ENDPOINTS (--endpoints) is required"),
            ),
        ];
        for (args, want) in cases {
            assert_eq!(parse(args), want.map_err(str::to_string), "{args:?}");
        }
    }

    /// A tool needs QUEUE_URL, not the service's settings; the service is parsed as before.
    #[test]
    fn a_subcommand_is_a_tool_and_none_is_the_service() {
        Cli::command().debug_assert();
        let parse = |args: &[&str]| Cli::try_parse_from([&["consumer"], args].concat());
        match parse(&["dead-letters", "list", "--queue-url", "q"]).unwrap() {
            Cli::Tool(Tool::DeadLetters(DeadLetters {
                action: Action::List(queues),
            })) => assert_eq!(queues.queue_url, "q"),
            other => panic!("{other:?}"),
        }
        match parse(&["dead-letters", "redrive", "--queue-url", "q", "a", "b"]).unwrap() {
            Cli::Tool(Tool::DeadLetters(DeadLetters {
                action: Action::Redrive(redrive),
            })) => assert_eq!(
                (redrive.all, redrive.message_ids),
                (false, vec!["a".into(), "b".into()])
            ),
            other => panic!("{other:?}"),
        }
        match parse(&["--queue-url", "q", "--endpoints", "http://a:1"]).unwrap() {
            Cli::Serve(config) => assert_eq!(config.check(), Ok(())),
            other => panic!("{other:?}"),
        }
        let refused: &[&[&str]] = &[
            // The service still needs its queue.
            &[],
            // A tool takes none of the service's flags, and needs its own queue.
            &[
                "--endpoints",
                "http://a:1",
                "dead-letters",
                "list",
                "--queue-url",
                "q",
            ],
            &["dead-letters", "list"],
            // redrive names what it moves: ids, or --all, not both.
            &["dead-letters", "redrive", "--queue-url", "q"],
            &["dead-letters", "redrive", "--queue-url", "q", "--all", "a"],
        ];
        for args in refused {
            assert!(parse(args).is_err(), "{args:?}");
        }
    }

    /// The tools' queues read the same variables as the service.
    #[test]
    fn the_tools_read_the_queue_variables() {
        let command = Cli::command();
        let tool = command.find_subcommand("dead-letters").unwrap();
        for action in ["list", "redrive"] {
            let envs: Vec<_> = tool
                .find_subcommand(action)
                .unwrap()
                .get_arguments()
                .filter_map(|a| a.get_env())
                .collect();
            assert_eq!(envs, ["QUEUE_URL", "DEAD_LETTER_QUEUE_URL"], "{action}");
        }
    }

    #[test]
    fn capacity_provider_reads_ecs_names() {
        let config = Config::try_parse_from([
            "consumer",
            "--queue-url",
            "q",
            "--capacity-provider",
            "FARGATE",
        ])
        .unwrap();
        assert_eq!(config.ecs.placement.capacity_provider.as_str(), "FARGATE");
        let default = Config::try_parse_from(["consumer", "--queue-url", "q"]).unwrap();
        assert_eq!(
            default.ecs.placement.capacity_provider,
            common::tasks::CapacityProvider::FargateSpot
        );
    }
}
