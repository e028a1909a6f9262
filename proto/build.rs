//! Generates the tonic services from `proto/switchboard/v1/*.proto`.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let files = [
        "proto/switchboard/v1/peer.proto",
        "proto/switchboard/v1/api.proto",
    ];
    for file in files {
        println!("cargo:rerun-if-changed={file}");
    }
    tonic_prost_build::configure()
        .build_client(true)
        .build_server(true)
        .codec_path("crate::codec::StrictCodec")
        .compile_protos(&files, &["proto"])?;
    Ok(())
}
