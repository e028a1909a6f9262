#!/usr/bin/env bash
# Installs what building Switchboard needs on a fresh Debian machine and is
# not there yet: clang and libclang-dev (RocksDB's bindings), protoc
# (protobuf-compiler, for the gRPC code), iproute2 and nftables (the fault
# tests' network namespaces and one-way cuts), fuse3 (the power-cut tests'
# lossy filesystem), faketime (the clock-skew tests), prometheus (its promtool checks the
# alert rules; the monitoring test runs it against a cluster), chromium
# (the status pages' browser test), etcd-server (the benchmarks' peer
# system, whose smallest run is in CI) with libprotobuf-dev (the well-known
# protos etcd's client is built from), and the Rust toolchain check.
set -euo pipefail

packages=(clang libclang-dev protobuf-compiler pkg-config iproute2 nftables fuse3 faketime prometheus chromium etcd-server libprotobuf-dev)
missing=()
for package in "${packages[@]}"; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing+=("$package")
  fi
done

if [ "${#missing[@]}" -gt 0 ]; then
  echo "Installing: ${missing[*]}"
  sudo=""
  if [ "$(id -u)" -ne 0 ]; then
    sudo="sudo"
  fi
  export DEBIAN_FRONTEND=noninteractive
  $sudo apt-get update -qq
  $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

if ! command -v cargo >/dev/null 2>&1; then
  echo "cargo is not installed: install Rust 1.88 or later (https://rustup.rs), then run this again." >&2
  exit 1
fi
