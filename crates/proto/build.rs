//! Compiles `proto/retain/v1/*.proto` with protox (pure Rust, so no `protoc`
//! is needed on the build machine) and generates prost messages and tonic
//! clients/servers from the resulting descriptor set.

use std::path::PathBuf;

use prost::Message;

const FILES: &[&str] = &[
    "retain/v1/common.proto",
    "retain/v1/ingestion.proto",
    "retain/v1/metrics.proto",
    "retain/v1/health.proto",
    "retain/v1/notification.proto",
    "retain/v1/events.proto",
];

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR")?);
    let proto_root = manifest.join("../../proto");
    println!("cargo:rerun-if-changed={}", proto_root.display());

    let fds = protox::compile(FILES, [&proto_root])?;
    let out_dir = PathBuf::from(std::env::var("OUT_DIR")?);
    std::fs::write(out_dir.join("retain_descriptor.bin"), fds.encode_to_vec())?;

    tonic_prost_build::configure()
        .build_server(true)
        .build_client(true)
        .compile_fds(fds)?;
    Ok(())
}
