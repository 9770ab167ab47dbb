//! `transcoder serve`: the warm transcoder. A gRPC server with the `Transcoder` service, the
//! standard health service (so load balancers and the container HEALTHCHECK can ask) and
//! server reflection (so grpcurl works without the proto file).
//!
//! Shutdown (SIGTERM, as ECS sends before stopping a task, Spot interruptions included): health
//! turns NOT_SERVING, new calls are refused, running jobs get `drain` to finish; any still
//! running then are stopped and hand their messages back.

mod auth;
mod capacity;
mod ranges;
mod service;

use std::future::Future;
use std::time::Duration;

use proto::v1::transcoder_server::TranscoderServer;
use tokio::net::TcpListener;
use tokio_stream::wrappers::TcpListenerStream;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Identity, Server, ServerTlsConfig};

use crate::rpc::client;

pub use auth::BearerAuth;
pub use service::{ServiceConfig, TranscoderService};

/// Requests are a few hundred bytes; anything near this is not a real request.
const MAX_REQUEST_BYTES: usize = 64 * 1024;

/// How the server listens and whom it lets in.
#[derive(Debug, Clone, Default)]
pub struct ServerOptions {
    /// Bearer token every Transcode call must carry, if any.
    pub auth_token: Option<String>,
    /// PEM certificate chain and key for TLS, if any.
    pub tls: Option<(Vec<u8>, Vec<u8>)>,
    /// Time running jobs get to finish after shutdown is asked for.
    pub drain: Duration,
}

/// Serves on `listener` until `shutdown` resolves, then drains.
pub async fn run(
    listener: TcpListener,
    aws: crate::aws::Aws,
    config: ServiceConfig,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), tonic::transport::Error> {
    let stop_jobs = CancellationToken::new();
    let jobs = TaskTracker::new();
    let service = TranscoderService::new(aws, config, stop_jobs.clone(), jobs.clone());
    let capacity = service.capacity.clone();

    let (health, health_service) = tonic_health::server::health_reporter();
    health
        .set_serving::<TranscoderServer<TranscoderService>>()
        .await;
    health
        .set_service_status("", tonic_health::ServingStatus::Serving)
        .await;
    capacity.publish(health.clone(), {
        let jobs = jobs.clone();
        move || jobs.is_closed()
    });
    // Both reflection versions: grpcurl before 1.8.8 and many load balancer tools speak only
    // v1alpha.
    let reflection = || {
        tonic_reflection::server::Builder::configure()
            .register_encoded_file_descriptor_set(proto::FILE_DESCRIPTOR_SET)
            .register_encoded_file_descriptor_set(tonic_health::pb::FILE_DESCRIPTOR_SET)
    };
    let reflection_v1 = reflection()
        .build_v1()
        .expect("the embedded descriptor sets are valid");
    let reflection_v1alpha = reflection()
        .build_v1alpha()
        .expect("the embedded descriptor sets are valid");

    let auth = BearerAuth::new(options.auth_token.as_deref());
    let transcoder = InterceptedService::new(
        TranscoderServer::new(service).max_decoding_message_size(MAX_REQUEST_BYTES),
        move |request| auth.check(request),
    );

    // The server pings too: a caller that froze or vanished mid-stream is noticed, and its job
    // stopped, instead of encoding for nobody (client.rs says why HTTP/2 PING and not TCP).
    let mut builder = Server::builder()
        .http2_keepalive_interval(Some(client::KEEPALIVE_INTERVAL))
        .http2_keepalive_timeout(Some(client::KEEPALIVE_TIMEOUT))
        .tcp_keepalive(Some(client::KEEPALIVE_INTERVAL));
    if let Some((cert, key)) = &options.tls {
        builder =
            builder.tls_config(ServerTlsConfig::new().identity(Identity::from_pem(cert, key)))?;
    }

    // On shutdown: stop saying we are healthy, stop taking calls, and give running jobs the
    // drain period before stopping them.
    let drain = options.drain;
    let draining = {
        let (health, stop_jobs, jobs) = (health.clone(), stop_jobs.clone(), jobs.clone());
        async move {
            shutdown.await;
            tracing::info!(
                drain_s = drain.as_secs(),
                "shutting down: draining running jobs"
            );
            health
                .set_not_serving::<TranscoderServer<TranscoderService>>()
                .await;
            health
                .set_service_status("", tonic_health::ServingStatus::NotServing)
                .await;
            jobs.close();
            capacity.poke();
            tokio::spawn(async move {
                if tokio::time::timeout(drain, jobs.wait()).await.is_err() {
                    tracing::warn!("drain period over: stopping the jobs still running");
                    stop_jobs.cancel();
                }
            });
        }
    };

    let incoming = TcpListenerStream::new(listener);
    builder
        .add_service(health_service)
        .add_service(reflection_v1)
        .add_service(reflection_v1alpha)
        .add_service(transcoder)
        .serve_with_incoming_shutdown(incoming, draining)
        .await?;
    // Every job has settled its message before the process exits.
    jobs.close();
    jobs.wait().await;
    Ok(())
}
