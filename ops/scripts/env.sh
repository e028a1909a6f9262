# Sourced by the scripts: where builds go. The target directory lives outside
# the clone so repeated runs (and fresh clones in CI) reuse the RocksDB build.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/switchboard-target}"
mkdir -p "$CARGO_TARGET_DIR"
