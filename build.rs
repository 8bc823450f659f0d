//! Embeds the protobuf descriptors of Temporal's API (written by `temporalio-protos`'s build
//! script, which announces them through `links`) so `zengine replay` can read proto3-JSON
//! histories exported by `temporal workflow show --output json` and the Web UI.

fn main() {
    let source = std::env::var("DEP_TEMPORALIO_PROTOS_DESCRIPTOR_PATH")
        .expect("temporalio-protos announces its descriptor set");
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").unwrap());
    std::fs::copy(&source, out.join("temporal_descriptors.bin"))
        .expect("copy Temporal's descriptor set");
    println!("cargo:rerun-if-changed={source}");
    println!("cargo:rerun-if-changed=build.rs");
}
