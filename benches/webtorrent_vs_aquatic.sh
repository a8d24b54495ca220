#!/usr/bin/env bash
# Swarmcast's WebTorrent endpoint (`swarmcast serve tracker`, /announce over wss) vs aquatic_ws,
# one after the other in one invocation, both driven by aquatic_ws_load_test with the same
# config (the load tester only speaks TLS 1.3, so both servers get the same self-signed P-256
# certificate). aquatic_ws runs with 1 socket worker + 1 swarm worker; our tracker on its default
# runtime (one thread per core, 2 here). Prints responses/s, error responses/s, connections
# reached, server peak RSS (VmHWM) and the ratios.
#
# Needs aquatic_ws and aquatic_ws_load_test 0.9 (Linux ≥ 5.8, io_uring). When missing:
#   CARGO_TARGET_DIR=/tmp/aquatic-target cargo install --root /tmp/aquatic aquatic_ws aquatic_ws_load_test
# (AQUATIC_BIN overrides the directory, default /tmp/aquatic/bin).
#
# Usage: benches/webtorrent_vs_aquatic.sh [duration_s=30] [connections=1020] [load_workers=4] [creation_interval_ms=10]
#   Connections are split evenly over the load tester's workers (glommio threads); the figures are
#   averaged from when all connections are open. Why 4 workers: each connection runs in lock-step
#   (send one request, read one message) and a worker opens connections from a timer on the same
#   thread; connections that always find their next message waiting never yield, and the timer
#   starves. The faster the server, the more often a message is waiting: with 1 worker the tester
#   stalled at ~60 connections against us; with 2 its ramp took ~3.5x longer against us than
#   against aquatic_ws, and our server kept the swarm state of that longer ramp (peak RSS). With 4
#   both ramps take about as long.
#   Why 10 ms (the tester's default): a connection counts only once its handshakes are done, so
#   at 1 ms the tester overshoots by hundreds of connections, by a different amount per server.
#   SWARMCAST_BIN=<path> skips the release build.
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
duration="${1:-30}"
conns="${2:-1020}"
workers="${3:-4}"
interval_ms="${4:-10}"
aq="${AQUATIC_BIN:-/tmp/aquatic/bin}"
for b in aquatic_ws aquatic_ws_load_test; do
  [ -x "$aq/$b" ] || { echo "missing $aq/$b; run: CARGO_TARGET_DIR=/tmp/aquatic-target cargo install --root /tmp/aquatic aquatic_ws aquatic_ws_load_test"; exit 1; }
done
command -v openssl >/dev/null || DEBIAN_FRONTEND=noninteractive apt-get install -y openssl >/dev/null
if [ -z "${SWARMCAST_BIN:-}" ]; then
  ( cd "$root" && cargo build --release -p swarmcast-cli >/dev/null 2>&1 ) || { echo "cargo build --release -p swarmcast-cli failed"; exit 1; }
fi
bin="${SWARMCAST_BIN:-$root/target/release/swarmcast}"
work="$(mktemp -d /tmp/wt-bench.XXXXXX)"
server=""
cleanup() { [ -n "$server" ] && kill "$server" 2>/dev/null || true; }
trap cleanup EXIT

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=example.com \
  -keyout "$work/key.pem" -out "$work/cert.pem" 2>/dev/null
free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_port() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return 0; sleep 0.1; done; echo "nothing listens on $1"; exit 1; }
per_worker=$(( (conns + workers - 1) / workers ))

load_config() { # $1 port
  cat <<EOF
server_address = "127.0.0.1:$1"
log_level = "error"
num_workers = $workers
num_connections_per_worker = $per_worker
connection_creation_interval_ms = $interval_ms
duration = $duration
measure_after_max_connections_reached = true
[torrents]
offers_per_request = 10
number_of_torrents = 10000
peer_seeder_probability = 0.25
weight_announce = 5
weight_scrape = 0
torrent_gamma_shape = 0.2
torrent_gamma_scale = 100.0
EOF
}

# Runs the load tester against port $2 while server pid $server runs; fills result_$1.
measure() { # $1 name, $2 port
  local name=$1 port=$2 log="$work/load-$1.log"
  load_config "$port" > "$work/load-$name.toml"
  wait_port "$port"
  /usr/bin/time -f '%U %S' -o "$work/time-$name" timeout $((duration + 60)) \
    "$aq/aquatic_ws_load_test" -c "$work/load-$name.toml" > "$log" 2>&1 || true
  local hwm cpu; hwm=$(awk '/VmHWM/ {print $2}' "/proc/$server/status")
  # Server CPU time (user + system) over the whole run, in seconds.
  cpu=$(awk -v hz="$(getconf CLK_TCK)" '{printf "%.1f", ($14 + $15) / hz}' "/proc/$server/stat")
  kill "$server"; wait "$server" 2>/dev/null || true; server=""
  local rps errs maxc lcpu
  lcpu=$(awk '{printf "%.1f", $1 + $2}' "$work/time-$name")
  rps=$(awk '/Average responses per second/ {print $NF}' "$log")
  # Error responses/s and connections, averaged / maximum over the periodic reports.
  errs=$(awk '/Error responses/ {s+=$NF; n++} END {printf "%.1f", n ? s/n : 0}' "$log")
  maxc=$(awk '/Active connections/ {if ($NF>m) m=$NF} END {print m+0}' "$log")
  printf '%-10s responses/s %10s   error responses/s %6s   connections reached %5s   peak RSS %7.1f MiB   server CPU %5s s   load tester CPU %5s s\n' \
    "$name" "${rps:-?}" "$errs" "$maxc" "$(echo "$hwm / 1024" | bc -l)" "$cpu" "$lcpu"
  eval "rps_$name=${rps:-0} rss_$name=$hwm"
}

echo "load: $conns connections ($workers load-test worker(s) x $per_worker), 10 offers/announce, ${duration} s, TLS 1.3, creation interval ${interval_ms} ms"

# aquatic_ws: 1 socket worker + 1 swarm worker, otherwise its defaults (see --print-config).
port=$(free_port)
"$aq/aquatic_ws" -p > "$work/aquatic.toml"
sed -i -e "s|^address = .*|address = \"127.0.0.1:$port\"|" -e 's|^socket_workers = .*|socket_workers = 1|' \
  -e 's|^swarm_workers = .*|swarm_workers = 1|' -e 's|^enable_tls = .*|enable_tls = true|' \
  -e "s|^tls_certificate_path = .*|tls_certificate_path = \"$work/cert.pem\"|" \
  -e "s|^tls_private_key_path = .*|tls_private_key_path = \"$work/key.pem\"|" "$work/aquatic.toml"
"$aq/aquatic_ws" -c "$work/aquatic.toml" > "$work/aquatic.log" 2>&1 & server=$!
measure aquatic "$port"

# Swarmcast: same limits as aquatic's defaults where both have one (10 offers per announce,
# 120 s interval, 180 s peer age, 120 s offer age). aquatic keeps every offer for its lifetime
# and lets a connection announce in any number of swarms; ours caps both by default.
port=$(free_port)
SWARMCAST_TRACKER_SECRET=bench SWARMCAST_TRACKER_TLS_CERT_PEM="$work/cert.pem" SWARMCAST_TRACKER_TLS_KEY_PEM="$work/key.pem" \
  SWARMCAST_TRACKER_OFFER_TTL_S=120 SWARMCAST_TRACKER_WEBTORRENT_MAX_PENDING_OFFERS=100000 \
  SWARMCAST_TRACKER_WEBTORRENT_MAX_SWARMS_PER_CONNECTION=1000000 RUST_LOG=warn \
  "$bin" serve tracker --listen "127.0.0.1:$port" > "$work/swarmcast.log" 2>&1 & server=$!
measure swarmcast "$port"

printf 'ratios (Swarmcast / aquatic_ws): responses/s %.2fx   peak RSS %.2fx\n' \
  "$(echo "$rps_swarmcast / $rps_aquatic" | bc -l)" "$(echo "$rss_swarmcast / $rss_aquatic" | bc -l)"
echo "logs: $work"
