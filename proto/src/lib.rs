//! The gRPC contract between `consumer`, `transcoder submit` and `transcoder serve`.
//!
//! Empty until the cloud-worker issue adds `proto/transcoder/v1/transcoder.proto` and the
//! generated tonic code; the crate exists now so that the workspace layout is final.
