//! The one rule for a transcoder's URL, wherever it is written (`TRANSCODER_ENDPOINTS` for the
//! consumer, `TRANSCODER_PEERS` for split peers, `submit --endpoint`): `http://HOST[:PORT]` or
//! `https://HOST[:PORT]`, the port [`DEFAULT_PORT`] when left out, the one `serve` listens on.
//! (A URL's usual default, 80 or 443, would reach nothing here.)

use std::fmt;

/// The port `transcoder serve` listens on by default, and the one a URL without a port means.
pub const DEFAULT_PORT: u16 = 50051;

/// Why a transcoder URL is unusable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TargetError {
    /// Not a URL at all.
    #[error("bad transcoder endpoint {url:?}: {reason}")]
    Unparsable {
        /// What was given.
        url: String,
        /// What the parser said.
        reason: String,
    },
    /// Another scheme, or none.
    #[error("transcoder endpoint {url:?} must start with http:// or https://")]
    Scheme {
        /// What was given.
        url: String,
    },
    /// No host.
    #[error("transcoder endpoint {url:?} names no host")]
    NoHost {
        /// What was given.
        url: String,
    },
}

/// A transcoder's URL, parsed, its port filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    /// TLS (`https://`) or not.
    pub tls: bool,
    /// A name or an address (IPv6 without brackets).
    pub host: String,
    /// The port, [`DEFAULT_PORT`] when the URL gave none.
    pub port: u16,
}

impl Target {
    /// Parses `url` by the rule above.
    pub fn parse(url: &str) -> Result<Self, TargetError> {
        let uri: tonic::codegen::http::Uri =
            url.trim()
                .parse()
                .map_err(
                    |e: tonic::codegen::http::uri::InvalidUri| TargetError::Unparsable {
                        url: url.to_string(),
                        reason: e.to_string(),
                    },
                )?;
        let tls = match uri.scheme_str() {
            Some("http") => false,
            Some("https") => true,
            _ => return Err(TargetError::Scheme { url: url.into() }),
        };
        let host = uri
            .host()
            .filter(|h| !h.is_empty())
            .ok_or_else(|| TargetError::NoHost { url: url.into() })?
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_string();
        Ok(Self {
            tls,
            host,
            port: uri.port_u16().unwrap_or(DEFAULT_PORT),
        })
    }

    /// `http` or `https`.
    pub fn scheme(&self) -> &'static str {
        if self.tls {
            "https"
        } else {
            "http"
        }
    }

    /// The same transcoder at `address` (one the host resolved to), keeping the scheme.
    pub fn at(&self, address: std::net::SocketAddr) -> String {
        format!("{}://{address}", self.scheme())
    }
}

/// The URL with its port written out: `http://HOST:PORT`.
impl fmt::Display for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "{}://[{}]:{}", self.scheme(), self.host, self.port)
        } else {
            write!(f, "{}://{}:{}", self.scheme(), self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_url_without_a_port_means_the_one_serve_listens_on() {
        let cases: &[(&str, Result<&str, TargetError>)] = &[
            ("http://transcoder", Ok("http://transcoder:50051")),
            (
                "https://warm.vod.local:8443",
                Ok("https://warm.vod.local:8443"),
            ),
            (
                "https://transcoder.internal",
                Ok("https://transcoder.internal:50051"),
            ),
            ("http://127.0.0.1:7000", Ok("http://127.0.0.1:7000")),
            ("http://[::1]:7000", Ok("http://[::1]:7000")),
            (" http://x ", Ok("http://x:50051")),
            (
                "grpc://x:1",
                Err(TargetError::Scheme {
                    url: "grpc://x:1".into(),
                }),
            ),
            (
                "127.0.0.1:50051",
                Err(TargetError::Scheme {
                    url: "127.0.0.1:50051".into(),
                }),
            ),
        ];
        for (url, want) in cases {
            let got = Target::parse(url).map(|t| t.to_string());
            assert_eq!(got, want.clone().map(str::to_string), "{url}");
        }
        assert!(matches!(
            Target::parse("http://"),
            Err(TargetError::Unparsable { .. })
        ));
        let t = Target::parse("http://[::1]:7000").unwrap();
        assert_eq!((t.tls, t.host.as_str(), t.port), (false, "::1", 7000));
    }
}
