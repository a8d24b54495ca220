#!/usr/bin/env bash
# Runs the browser end-to-end tests inside a private network namespace.
#
# Chromium never gathers WebRTC candidates on 127.0.0.1, and with only `lo` it gathers none, so
# the tests get a veth with 10.99.0.1/24 and a default route via a gateway that does not exist.
# Every server and browser binds to 10.99.0.1; no packet leaves the namespace.
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
if [ "${SWARMCAST_IN_NETNS:-}" != 1 ]; then
  exec unshare --net env SWARMCAST_IN_NETNS=1 bash "$0" "$@"
fi
ip link set lo up
ip link add sc0 type veth peer name sc1
ip addr add 10.99.0.1/24 dev sc0
ip link set sc0 up
ip link set sc1 up
ip route add default via 10.99.0.254 dev sc0
export SWARMCAST_E2E_IP=10.99.0.1
cd "$root"
if [ "$#" -gt 0 ]; then
  exec node --test --test-concurrency=1 "$@"
fi
exec node --test --test-concurrency=1 tests/e2e/*.test.mjs
