//! What a transcoder's refusal of a call means, decided in one place for every caller (the
//! consumer's pool, split peers, `submit`): busy (RESOURCE_EXHAUSTED: another may take it), a
//! call that is itself wrong (no transcoder will take it), or a transcoder that is down.

use super::client::error_chain;

/// How a call that did not start ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Refusal {
    /// RESOURCE_EXHAUSTED: every slot is taken; try another transcoder, or later.
    Busy,
    /// Unreachable, shutting down, or too slow: another transcoder may take it.
    Down(String),
    /// The call itself is wrong (auth, arguments): no transcoder will take it.
    Rejected(String),
}

impl Refusal {
    /// The refusal a gRPC status means, with what it says (or, when it says nothing, its
    /// causes: connection refused, certificate not trusted...).
    pub fn of(status: &tonic::Status) -> Self {
        let detail = || {
            let message = if status.message().is_empty() {
                std::error::Error::source(status)
                    .map(error_chain)
                    .unwrap_or_default()
            } else {
                status.message().to_string()
            };
            format!("{:?}: {message}", status.code())
        };
        match status.code() {
            tonic::Code::ResourceExhausted => Self::Busy,
            tonic::Code::Unauthenticated
            | tonic::Code::PermissionDenied
            | tonic::Code::InvalidArgument => Self::Rejected(detail()),
            _ => Self::Down(detail()),
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Busy => f.write_str("the transcoder is busy"),
            Self::Down(why) | Self::Rejected(why) => f.write_str(why),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_status_means_one_refusal() {
        let cases = [
            (tonic::Status::resource_exhausted("full"), Refusal::Busy),
            (
                tonic::Status::unauthenticated("no token"),
                Refusal::Rejected("Unauthenticated: no token".into()),
            ),
            (
                tonic::Status::invalid_argument("bad source"),
                Refusal::Rejected("InvalidArgument: bad source".into()),
            ),
            (
                tonic::Status::unavailable("draining"),
                Refusal::Down("Unavailable: draining".into()),
            ),
            (
                tonic::Status::unknown(""),
                Refusal::Down("Unknown: ".into()),
            ),
        ];
        for (status, want) in cases {
            assert_eq!(Refusal::of(&status), want, "{status:?}");
        }
    }
}
