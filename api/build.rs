//! Compiles `proto/` (the gRPC operator service) with protox, a pure-Rust protobuf compiler, so
//! no system `protoc` is needed; also writes the descriptor set that server reflection serves.

use prost::Message;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    println!("cargo:rerun-if-changed=proto");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    let descriptors = protox::compile(["zengine/ops/v1/ops.proto"], ["proto"])?;
    std::fs::write(out.join("ops_descriptor.bin"), descriptors.encode_to_vec())?;
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .compile_fds(descriptors)?;
    Ok(())
}
