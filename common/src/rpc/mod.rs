//! The gRPC wire, as both ends use it: connecting to a transcoder (endpoints, bearer token,
//! TLS, keepalives) and converting between the job's own types and the `transcoder.v1`
//! messages. The server itself is `serve`'s; callers are `split`'s peers, `submit`,
//! `healthcheck` and the consumer.

pub mod client;
pub mod convert;
mod refusal;
mod target;

pub use refusal::Refusal;
pub use target::{Target, TargetError, DEFAULT_PORT};

/// The health service name under which a transcoder says whether it has a free slot
/// (SERVING) or not (NOT_SERVING): a job or a split range takes one.
pub const CAPACITY_SERVICE: &str = "transcoder.v1.Capacity";
