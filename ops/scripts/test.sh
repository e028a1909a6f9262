#!/usr/bin/env bash
# Runs every check CI runs, printing each phase's time: format, lints,
# build, unit and property tests, and the multi-process cluster tests.
# Exits non-zero on the first failure.
set -euo pipefail
cd "$(dirname "$0")/../.."
results=$(mktemp)
trap 'rm -f "$results"' EXIT
# Runs cargo test, keeping its "test result" lines for the final count.
run_tests() {
  cargo test "$@" 2>&1 | tee -a "$results"
  return "${PIPESTATUS[0]}"
}
started=$(date +%s)
phase_started=$started
phase() {
  local now
  now=$(date +%s)
  if [ -n "${current_phase:-}" ]; then
    echo "=== ${current_phase}: $((now - phase_started)) s"
  fi
  current_phase="$1"
  phase_started=$now
  [ -n "$1" ] && echo "=== $1 ..."
  return 0
}

phase "install dependencies"
ops/scripts/install-deps.sh
source ops/scripts/env.sh

phase "format check"
cargo fmt --all -- --check

phase "build (binaries and tests)"
cargo build --workspace --bins --tests --locked

phase "lints"
cargo clippy --workspace --all-targets --locked -- -D warnings

phase "no aws-lc in the tree"
if cargo tree --workspace -i aws-lc-sys --locked >/dev/null 2>&1; then
  echo "aws-lc-sys is in the dependency tree; rustls must use ring only" >&2
  exit 1
fi

phase "client library and sbctl without the server"
# A VPN host, relay or client embeds switchboard-api; neither it nor sbctl
# may pull in RocksDB or openraft (the server's parts).
for package in switchboard-api switchboard-ops; do
  server_parts=$(cargo tree -p "$package" --locked --prefix none -e normal,build \
    | awk '{print $1}' | grep -xE 'rocksdb|librocksdb-sys|openraft|switchboard-node' | sort -u || true)
  if [ -n "$server_parts" ]; then
    echo "$package depends on server parts: $server_parts" >&2
    exit 1
  fi
  echo "$package: no rocksdb, librocksdb-sys, openraft or switchboard-node"
done
cargo build -p switchboard-api --examples --locked

phase "unit and property tests"
run_tests --workspace --locked --exclude switchboard-tests --lib --bins --tests
# The harness's own tests: the history checker on hand-made histories.
run_tests -p switchboard-tests --locked --lib

phase "pure state machine without RocksDB"
run_tests -p switchboard-raft-store --no-default-features --locked --lib

phase "multi-process cluster tests"
# One cluster at a time: each test starts its own site processes. The fault
# tests put sites in network namespaces; here they must not skip.
export SWITCHBOARD_REQUIRE_NETNS=1
run_tests -p switchboard-tests --locked --test cluster -- --test-threads=1

phase "benchmark smoke run (against etcd)"
# The smallest setting of the side-by-side benchmark, with the debug
# binaries just built, so that the bench cannot rot; its figures mean
# nothing. The real run: see BENCHMARKS.md.
cargo run -p switchboard-benches --locked -- compare --smoke

phase ""
passed=$(grep -o '[0-9]* passed' "$results" | awk '{s+=$1} END {print s+0}')
failed=$(grep -o '[0-9]* failed' "$results" | awk '{s+=$1} END {print s+0}')
echo "=== all checks passed in $(( $(date +%s) - started )) s"
echo "tests: ${passed} passed, ${failed} failed"
