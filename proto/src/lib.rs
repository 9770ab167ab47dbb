//! The gRPC contract between `consumer`, `transcoder submit` and `transcoder serve`, generated
//! from `transcoder/v1/transcoder.proto` at build time.

/// Package `transcoder.v1`.
pub mod v1 {
    #![allow(missing_docs, clippy::all)]
    tonic::include_proto!("transcoder.v1");
}

/// The encoded descriptor set of every file, for gRPC server reflection (grpcurl).
pub const FILE_DESCRIPTOR_SET: &[u8] =
    tonic::include_file_descriptor_set!("transcoder_v1_descriptor");
