//! Generates the tonic services from `proto/switchboard/v1/*.proto`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/switchboard/v1/peer.proto",
        "proto/switchboard/v1/api.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    // The descriptors serve gRPC server reflection on the API port.
    let out_dir = std::path::PathBuf::from(std::env::var("OUT_DIR")?);
    tonic_prost_build::configure()
        .file_descriptor_set_path(out_dir.join("switchboard_descriptor.bin"))
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::StrictCodec")
        // Forwarded proposals are shared, not copied, between the batch
        // sent to the leader and the one-call-per-write fallback.
        .bytes(".switchboard.v1.ForwardWriteRequest.proposal")
        .bytes(".switchboard.v1.ForwardWritesRequest.proposals")
        .compile_protos(&files, &["proto"])?;
    Ok(())
}
