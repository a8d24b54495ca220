#!/usr/bin/env bash
# Swarmcast edge vs nginx (Debian package, proxy_cache + proxy_cache_lock on) in front of the
# same origin, in one invocation:
#   1. throughput: wrk GETs/s of one cached 2 s segment (256 KiB) through each;
#   2. coalescing: 1000 concurrent GETs of one uncached segment from a slow upstream (first byte
#      after 100 ms, the rest 400 ms later): upstream requests made, and how long after the first
#      client's first byte the others got theirs.
# Installs nginx and wrk with apt when missing. Prints the figures and the ratios.
#
# Usage: benches/edge_vs_nginx.sh [duration_s=10] [connections=64]
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
duration="${1:-10}"
conns="${2:-64}"
work="$(mktemp -d /tmp/edge-bench.XXXXXX)"
pids=()
cleanup() { for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done; [ -f "$work/nginx.pid" ] && kill "$(cat "$work/nginx.pid")" 2>/dev/null || true; }
trap cleanup EXIT

if ! command -v nginx >/dev/null || ! command -v wrk >/dev/null; then
  DEBIAN_FRONTEND=noninteractive apt-get install -y nginx wrk >/dev/null
fi
( cd "$root" && cargo build --release -p swarmcast-cli >/dev/null 2>&1 ) || { echo "cargo build failed"; exit 1; }
bin="$root/target/release/swarmcast"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
wait_http() { for _ in $(seq 100); do curl -fs "$1" >/dev/null 2>&1 && return 0; sleep 0.1; done; echo "no answer from $1"; exit 1; }
origin_port=$(free_port); edge_port=$(free_port); nginx_port=$(free_port); slow_port=$(free_port)
slow_edge_port=$(free_port); slow_nginx_port=$(free_port)

# The origin, with one 2 s segment.
SWARMCAST_ORIGIN_INGEST_TOKEN=bench RUST_LOG=warn "$bin" origin --listen "127.0.0.1:$origin_port" & pids+=($!)
wait_http "http://127.0.0.1:$origin_port/healthz"
head -c 262144 /dev/urandom > "$work/seg.ts"
curl -fs -X PUT -H 'Authorization: Bearer bench' --data-binary @"$work/seg.ts" "http://127.0.0.1:$origin_port/live/bench/v/seg_1.ts"

# A slow upstream for the coalescing run: counts requests per path.
cat > "$work/slow.mjs" <<'JS'
import http from 'node:http';
const counts = {};
const firstByteAt = {};
const body = Buffer.alloc(262144, 7);
const wall = () => performance.timeOrigin + performance.now();
http.createServer((req, res) => {
  if (req.url === '/count') { res.end(JSON.stringify({ counts, firstByteAt })); return; }
  counts[req.url] = (counts[req.url] ?? 0) + 1;
  res.writeHead(200, { 'content-type': 'video/mp2t', 'content-length': body.length, 'cache-control': 'public, max-age=3600' });
  setTimeout(() => {
    firstByteAt[req.url] ??= wall();
    res.write(body.subarray(0, 1000));
    setTimeout(() => res.end(body.subarray(1000)), 400);
  }, 100);
}).listen(Number(process.argv[2]), '127.0.0.1');
JS
node "$work/slow.mjs" "$slow_port" & pids+=($!)

# Swarmcast edges: one in front of the origin, one in front of the slow upstream.
RUST_LOG=warn "$bin" origin --mode edge --name bench --upstream "http://127.0.0.1:$origin_port" --listen "127.0.0.1:$edge_port" & pids+=($!)
SWARMCAST_ORIGIN_EDGE__LOCK_AGE_MS=5000 RUST_LOG=warn "$bin" origin --mode edge --name slow --upstream "http://127.0.0.1:$slow_port" --listen "127.0.0.1:$slow_edge_port" & pids+=($!)

# nginx, the same two ways.
mkdir -p "$work/cache" "$work/cache2" "$work/tmp"
# nginx workers run as an unprivileged user: let them write the caches.
chmod 755 "$work"; chmod 777 "$work/cache" "$work/cache2" "$work/tmp"
cat > "$work/nginx.conf" <<NGINX
worker_processes 2;
pid $work/nginx.pid;
error_log $work/error.log warn;
daemon on;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path $work/tmp; proxy_temp_path $work/tmp; fastcgi_temp_path $work/tmp; uwsgi_temp_path $work/tmp; scgi_temp_path $work/tmp;
  proxy_cache_path $work/cache keys_zone=seg:10m max_size=1g;
  proxy_cache_path $work/cache2 keys_zone=slow:10m max_size=1g;
  server {
    listen 127.0.0.1:$nginx_port;
    location / { proxy_pass http://127.0.0.1:$origin_port; proxy_cache seg; proxy_cache_valid 200 1h; proxy_cache_lock on; proxy_http_version 1.1; proxy_set_header Connection ""; add_header X-Cache-Status \$upstream_cache_status; }
  }
  server {
    listen 127.0.0.1:$slow_nginx_port;
    location / { proxy_pass http://127.0.0.1:$slow_port; proxy_cache slow; proxy_cache_valid 200 1h; proxy_cache_lock on; proxy_cache_lock_timeout 10s; proxy_http_version 1.1; proxy_set_header Connection ""; }
  }
}
NGINX
nginx -c "$work/nginx.conf"
wait_http "http://127.0.0.1:$edge_port/healthz"
wait_http "http://127.0.0.1:$slow_edge_port/healthz"

# 1. Throughput of a cached segment.
url_edge="http://127.0.0.1:$edge_port/live/bench/v/seg_1.ts"
url_nginx="http://127.0.0.1:$nginx_port/live/bench/v/seg_1.ts"
curl -fs "$url_edge" -o /dev/null; curl -fs "$url_nginx" -o /dev/null
cmp <(curl -fs "$url_edge") "$work/seg.ts" && cmp <(curl -fs "$url_nginx") "$work/seg.ts"
rps() { wrk -t2 -c"$conns" -d"${duration}s" "$1" | awk '/Requests\/sec/ {print $2}'; }
edge_rps=$(rps "$url_edge")
nginx_rps=$(rps "$url_nginx")

# 2. Coalescing: 1000 concurrent GETs of one uncached object through each.
cat > "$work/burst.mjs" <<'JS'
// N concurrent GETs of one object. For every request already waiting when the upstream sent its
// first byte (a coalesced follower), how long after that its own first byte came.
import http from 'node:http';
const [url, n, countUrl] = [process.argv[2], Number(process.argv[3]), process.argv[4]];
const agent = new http.Agent({ keepAlive: false, maxSockets: Infinity });
const wall = () => performance.timeOrigin + performance.now();
const one = () => new Promise((resolve, reject) => {
  let sent = null;
  const req = http.get(url, { agent }, (res) => {
    let first = null; let bytes = 0;
    res.on('data', (c) => { first ??= wall(); bytes += c.length; });
    res.on('end', () => resolve({ sent, first, end: wall(), bytes, status: res.statusCode }));
  });
  req.on('socket', (s) => s.on('connect', () => { sent = wall(); }));
  req.on('error', reject);
});
const results = await Promise.all(Array.from({ length: n }, one));
const upstream = JSON.parse(await (await fetch(countUrl)).text()).firstByteAt[new URL(url).pathname];
const waiters = results.filter((r) => r.sent !== null && r.sent < upstream);
const lag = waiters.map((r) => r.first - upstream).sort((a, b) => a - b);
const pct = (a, p) => a[Math.min(a.length - 1, Math.round((a.length - 1) * p))];
console.log(JSON.stringify({
  ok: results.every((r) => r.status === 200 && r.bytes === 262144),
  waiting_when_upstream_answered: waiters.length,
  first_byte_after_upstream_p50_ms: +pct(lag, 0.5).toFixed(1),
  p99_ms: +pct(lag, 0.99).toFixed(1),
  max_ms: +lag[lag.length - 1].toFixed(1),
}));
JS
count_url="http://127.0.0.1:$slow_port/count"
edge_burst=$(node "$work/burst.mjs" "http://127.0.0.1:$slow_edge_port/live/bench/v/burst_edge.ts" 1000 "$count_url")
nginx_burst=$(node "$work/burst.mjs" "http://127.0.0.1:$slow_nginx_port/live/bench/v/burst_nginx.ts" 1000 "$count_url")
counts=$(curl -fs "$count_url" | python3 -c 'import json,sys; print(json.load(sys.stdin)["counts"])')

echo "== cached 2 s segment (256 KiB), wrk -t2 -c$conns -d${duration}s, same origin =="
echo "swarmcast edge: ${edge_rps} GETs/s"
echo "nginx $(nginx -v 2>&1 | sed 's/.*\///'): ${nginx_rps} GETs/s"
python3 -c "print(f'ratio swarmcast/nginx: {float(\"$edge_rps\")/float(\"$nginx_rps\"):.2f}x')"
echo "== 1000 concurrent GETs, one uncached segment, upstream first byte at 100 ms, last at 500 ms =="
echo "upstream requests: $counts"
echo "swarmcast edge: $edge_burst"
echo "nginx:          $nginx_burst"
