//! Calling a warm transcoder: the endpoint (plain or TLS, by [`Target`]'s one rule) and the
//! bearer token. `submit`, `healthcheck`, split peers and the consumer's warm pool all connect
//! this way.

use std::path::Path;
use std::time::Duration;

use proto::v1::transcoder_client::TranscoderClient;
use tonic::metadata::{Ascii, MetadataValue};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Certificate, Channel, ClientTlsConfig, Endpoint};

use super::{Target, TargetError};

/// Why a connection to a transcoder cannot even be set up.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// The URL breaks the rule.
    #[error(transparent)]
    Target(#[from] TargetError),
    /// The CA certificate to trust cannot be read.
    #[error("{}: {source}", path.display())]
    CaCert {
        /// The file.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// TLS could not be configured.
    #[error("TLS: {0}")]
    Tls(String),
    /// The token cannot travel in a header.
    #[error("the auth token has characters a header cannot carry")]
    BadToken,
}

/// Why a health question got no answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthError {
    /// Nothing came back in time.
    #[error("no answer in {} s", .0.as_secs_f64())]
    NoAnswer(Duration),
    /// The server answered with an error (an unknown service: a transcoder too old to say).
    #[error("{code:?}: {message}")]
    Refused {
        /// The gRPC code.
        code: tonic::Code,
        /// Its message.
        message: String,
    },
}

/// A `Transcoder` client whose every call carries the bearer token, when there is one.
pub type Client = TranscoderClient<InterceptedService<Channel, BearerToken>>;

/// Adds `authorization: Bearer <token>` to every call.
#[derive(Debug, Clone)]
pub struct BearerToken(Option<MetadataValue<Ascii>>);

impl BearerToken {
    /// The token to send, or none.
    pub fn new(token: Option<&str>) -> Result<Self, ConnectError> {
        let value = token
            .map(|t| {
                format!("Bearer {t}")
                    .parse::<MetadataValue<Ascii>>()
                    .map_err(|_| ConnectError::BadToken)
            })
            .transpose()?;
        Ok(Self(value))
    }
}

impl tonic::service::Interceptor for BearerToken {
    fn call(
        &mut self,
        mut request: tonic::Request<()>,
    ) -> Result<tonic::Request<()>, tonic::Status> {
        if let Some(value) = &self.0 {
            request
                .metadata_mut()
                .insert("authorization", value.clone());
        }
        Ok(request)
    }
}

/// How to reach one transcoder.
#[derive(Debug, Clone, Default)]
pub struct EndpointOptions<'a> {
    /// A PEM CA certificate to trust for https:// besides the public roots.
    pub ca_cert: Option<&'a Path>,
    /// The name to check the server's certificate against, when the URL holds an address
    /// instead (the consumer connects to each address a name resolves to).
    pub tls_domain: Option<&'a str>,
}

/// How often both ends of a connection ping the other (HTTP/2 PING), even while idle or in a
/// long stream: a peer that is frozen (SIGSTOP), partitioned or gone without a FIN answers no
/// PING, and its calls fail within [`KEEPALIVE_INTERVAL`] + [`KEEPALIVE_TIMEOUT`] instead of
/// waiting for a progress event that never comes. (A TCP keepalive alone would not do: the
/// kernel of a frozen process still answers it.) The server sends the same pings.
pub const KEEPALIVE_INTERVAL: Duration = Duration::from_secs(10);
/// How long a PING may go unanswered before the connection is given up.
pub const KEEPALIVE_TIMEOUT: Duration = Duration::from_secs(20);

/// The endpoint for `url` (`http://HOST[:PORT]`, or `https://` for TLS; see [`Target`]), with
/// keepalives.
pub fn endpoint(url: &str, options: &EndpointOptions<'_>) -> Result<Endpoint, ConnectError> {
    let target = Target::parse(url)?;
    let mut endpoint = Endpoint::from_shared(target.to_string())
        .map_err(|e| TargetError::Unparsable {
            url: url.to_string(),
            reason: e.to_string(),
        })?
        .http2_keep_alive_interval(KEEPALIVE_INTERVAL)
        .keep_alive_timeout(KEEPALIVE_TIMEOUT)
        .keep_alive_while_idle(true)
        .tcp_keepalive(Some(KEEPALIVE_INTERVAL));
    if target.tls {
        let mut tls = ClientTlsConfig::new().with_webpki_roots();
        if let Some(path) = options.ca_cert {
            let pem = std::fs::read(path).map_err(|source| ConnectError::CaCert {
                path: path.to_path_buf(),
                source,
            })?;
            tls = tls.ca_certificate(Certificate::from_pem(pem));
        }
        if let Some(domain) = options.tls_domain {
            tls = tls.domain_name(domain);
        }
        endpoint = endpoint
            .tls_config(tls)
            .map_err(|e| ConnectError::Tls(e.to_string()))?;
    }
    Ok(endpoint)
}

/// A client on `channel` that sends `token`.
pub fn client(channel: Channel, token: BearerToken) -> Client {
    TranscoderClient::with_interceptor(channel, token)
}

/// "transport error" alone helps nobody: name every cause (connection refused, certificate
/// not trusted...).
pub fn error_chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// What the standard health service (`grpc.health.v1`) says of the whole server: `Ok(true)`
/// when SERVING, `Ok(false)` for any other status, `Err` when it did not answer in `timeout`.
pub async fn is_serving(channel: Channel, timeout: Duration) -> Result<bool, HealthError> {
    service_is_serving(channel, "", timeout).await
}

/// Whether the server has a free slot (its [`super::CAPACITY_SERVICE`] health status);
/// `Err` when it did not answer, or does not publish one (an older transcoder).
pub async fn has_room(channel: Channel, timeout: Duration) -> Result<bool, HealthError> {
    service_is_serving(channel, super::CAPACITY_SERVICE, timeout).await
}

async fn service_is_serving(
    channel: Channel,
    service: &str,
    timeout: Duration,
) -> Result<bool, HealthError> {
    use tonic_health::pb::health_check_response::ServingStatus;
    use tonic_health::pb::health_client::HealthClient;
    use tonic_health::pb::HealthCheckRequest;

    let mut health = HealthClient::new(channel);
    let request = HealthCheckRequest {
        service: service.to_string(),
    };
    match tokio::time::timeout(timeout, health.check(request)).await {
        Err(_) => Err(HealthError::NoAnswer(timeout)),
        Ok(Err(status)) => Err(HealthError::Refused {
            code: status.code(),
            message: status.message().to_string(),
        }),
        Ok(Ok(response)) => Ok(response.into_inner().status == ServingStatus::Serving as i32),
    }
}
