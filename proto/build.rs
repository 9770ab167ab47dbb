//! Generates the tonic/prost code and the descriptor set (for server reflection) from
//! `transcoder/v1/transcoder.proto`.

use std::path::PathBuf;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // A fresh machine has no protoc; the vendored binary comes with the crate. An explicit
    // PROTOC still wins, for platforms the vendored crate does not cover.
    if std::env::var_os("PROTOC").is_none() {
        std::env::set_var("PROTOC", protoc_bin_vendored::protoc_bin_path()?);
    }
    let out = PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out.join("transcoder_v1_descriptor.bin"))
        .compile_protos(&["transcoder/v1/transcoder.proto"], &["."])?;
    println!("cargo:rerun-if-changed=transcoder/v1/transcoder.proto");
    Ok(())
}
