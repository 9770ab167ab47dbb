//! Assembling the consumer from its configuration and running it until a signal.

use std::process::ExitCode;
use std::sync::Arc;
use std::time::Duration;

use common::status::StatusReporter;
use common::storage::S3Store;
use tokio_util::sync::CancellationToken;

use crate::config::{Config, DispatchMode};
use crate::dead_letters::{sweep_forever, SweepSettings};
use crate::dispatch::{
    Auto, Dispatcher, EcsLauncher, EcsSettings, FollowContext, PoolSettings, WarmPool,
};
use crate::in_flight::InFlight;
use crate::queue::Inbox;
use crate::worker::{OutputRoot, Worker};

/// How long an ECS job counts as running for duplicate notifications: longer than any job.
const IN_FLIGHT_TTL: Duration = Duration::from_secs(3600);

/// Runs the consumer; returns when a signal has stopped it and its jobs are drained.
pub async fn run(config: Config) -> ExitCode {
    let aws = aws_config::load_from_env().await;
    let inbox = Inbox::new(aws_sdk_sqs::Client::new(&aws), config.queue_url.clone());
    // ECS jobs are not followed: they count as running for this long after their start.
    let in_flight = Arc::new(InFlight::new(IN_FLIGHT_TTL));
    let shutdown = CancellationToken::new();
    let on_signal = shutdown.clone();
    tokio::spawn(async move {
        common::signal::shutdown_signal().await;
        tracing::info!("signal received; shutting down");
        on_signal.cancel();
    });

    let ecs = || {
        EcsLauncher::new(
            aws_sdk_ecs::Client::new(&aws),
            inbox.clone(),
            ecs_settings(&config),
        )
    };
    let warm = || async {
        let follow = FollowContext {
            inbox: inbox.clone(),
            reporter: StatusReporter::new(
                config.status.config(),
                aws_sdk_sqs::Client::new(&aws),
                S3Store::new(&aws),
            ),
            in_flight: in_flight.clone(),
        };
        let settings = PoolSettings {
            endpoints: config.warm.endpoints.clone(),
            auth_token: config.warm.auth_token.clone(),
            ca_cert: config.warm.ca_cert.clone(),
            jobs_per_endpoint: config.warm.jobs_per_endpoint.into(),
            health_interval: Duration::from_secs(config.warm.health_seconds),
        };
        WarmPool::start(settings, follow).await
    };
    start_dead_letter_sweep(&config, &aws, shutdown.clone());
    let result = async {
        match config.dispatch_mode {
            DispatchMode::Grpc => {
                serve(
                    &config,
                    inbox.clone(),
                    warm().await?,
                    shutdown,
                    in_flight.clone(),
                )
                .await
            }
            DispatchMode::Ecs => {
                serve(&config, inbox.clone(), ecs(), shutdown, in_flight.clone()).await
            }
            DispatchMode::Auto => {
                let auto = Auto::new(warm().await?, ecs());
                serve(&config, inbox.clone(), auto, shutdown, in_flight.clone()).await
            }
        }
        Ok::<(), String>(())
    }
    .await;
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("consumer: error: {e}");
            ExitCode::from(1)
        }
    }
}

async fn serve<D: Dispatcher>(
    config: &Config,
    inbox: Inbox,
    dispatcher: D,
    shutdown: CancellationToken,
    in_flight: Arc<InFlight>,
) {
    let output = config
        .output
        .output_bucket
        .as_ref()
        .map(|bucket| OutputRoot {
            bucket: bucket.clone(),
            prefix: config.output.output_prefix.clone(),
        });
    tracing::info!(
        queue_url = %config.queue_url,
        mode = format!("{:?}", config.dispatch_mode).to_lowercase(),
        free_slots = dispatcher.free_slots(),
        "consumer started"
    );
    let worker = Worker::new(
        inbox,
        dispatcher,
        config.filters.filters(),
        output,
        config.poll.wait(),
        in_flight,
    );
    worker.run(shutdown, config.poll.grace()).await;
}

/// The dead-letter sweep beside the loop, when it is on and the records' bucket is known.
fn start_dead_letter_sweep(
    config: &Config,
    aws: &aws_config::SdkConfig,
    shutdown: CancellationToken,
) {
    let every = config.poll.dead_letter_sweep_seconds;
    let Some(bucket) = config.output.output_bucket.clone().filter(|_| every > 0) else {
        tracing::info!(
            "the dead-letter sweep is off (DEAD_LETTER_SWEEP_SECONDS is 0 or OUTPUT_BUCKET unset)"
        );
        return;
    };
    let settings = SweepSettings {
        queue_url: config.queue_url.clone(),
        output: OutputRoot {
            bucket,
            prefix: config.output.output_prefix.clone(),
        },
        every: Duration::from_secs(every),
    };
    tokio::spawn(sweep_forever(
        aws_sdk_sqs::Client::new(aws),
        S3Store::new(aws),
        settings,
        shutdown,
    ));
}

fn ecs_settings(config: &Config) -> EcsSettings {
    let ecs = &config.ecs;
    EcsSettings {
        placement: ecs.placement.placement(),
        attempts: ecs.run_task_attempts,
        startup: Duration::from_secs(ecs.startup_seconds),
        backoff_base: Duration::from_secs(1),
        backoff_max: Duration::from_secs(30),
        status: config.status.config(),
    }
}
