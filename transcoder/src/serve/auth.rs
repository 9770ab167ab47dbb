//! `TRANSCODER_AUTH_TOKEN`: when set, every Transcode call needs `authorization: Bearer <token>`.
//! Health and reflection stay open, as load balancers and grpcurl expect.

use std::sync::Arc;

use tonic::{Request, Status};

/// An interceptor that checks the bearer token, or lets everything through when there is none.
#[derive(Clone)]
pub struct BearerAuth {
    token: Option<Arc<[u8]>>,
}

impl BearerAuth {
    /// Checks for `token` (none: no check).
    pub fn new(token: Option<&str>) -> Self {
        Self {
            token: token
                .filter(|t| !t.is_empty())
                .map(|t| Arc::from(t.as_bytes())),
        }
    }

    /// The tonic interceptor.
    pub fn check(&self, request: Request<()>) -> Result<Request<()>, Status> {
        let Some(expected) = &self.token else {
            return Ok(request);
        };
        let presented = request
            .metadata()
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .map(str::as_bytes);
        match presented {
            Some(given) if constant_time_eq(given, expected) => Ok(request),
            _ => Err(Status::unauthenticated("a valid bearer token is required")),
        }
    }
}

/// Compares without returning early, so response time does not reveal how much matched.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_header(value: Option<&str>) -> Request<()> {
        let mut request = Request::new(());
        if let Some(v) = value {
            request
                .metadata_mut()
                .insert("authorization", v.parse().unwrap());
        }
        request
    }

    #[test]
    fn bearer_table() {
        let auth = BearerAuth::new(Some("s3cret"));
        let cases = [
            (Some("Bearer s3cret"), true),
            (Some("Bearer s3cre"), false),
            (Some("Bearer s3cret2"), false),
            (Some("bearer s3cret"), false),
            (Some("s3cret"), false),
            (None, false),
        ];
        for (header, ok) in cases {
            let result = auth.check(with_header(header));
            assert_eq!(result.is_ok(), ok, "{header:?}");
            if let Err(status) = result {
                assert_eq!(status.code(), tonic::Code::Unauthenticated);
            }
        }
        assert!(BearerAuth::new(None).check(with_header(None)).is_ok());
        assert!(BearerAuth::new(Some("")).check(with_header(None)).is_ok());
    }
}
