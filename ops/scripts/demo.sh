#!/usr/bin/env bash
# Starts the demo cluster: three switchboard sites on this machine, with
# relays and hosts, until Ctrl-C. Extra arguments go to `switchboard dev`
# (e.g. --dir DIR, --base-port 7000, --relays 6, --hosts 100).
set -euo pipefail
cd "$(dirname "$0")/../.."
ops/scripts/install-deps.sh
source ops/scripts/env.sh
cargo build --bins --quiet
echo "sbctl is at $CARGO_TARGET_DIR/debug/sbctl"
exec "$CARGO_TARGET_DIR/debug/switchboard" dev "$@"
