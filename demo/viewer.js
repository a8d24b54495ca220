// The Swarmcast demo viewer: hls.js + the Swarmcast agent, with live delivery stats.
//
// Reads ./config.json ({ customer, content, distributor_url, master_url }); query parameters
// override it: ?p2p=0 (CDN only), ?level=N (pin a rendition), ?distributor=URL, ?debug (the
// agent's log), ?hlsdebug (hls.js's log). On a stream younger than three target durations the
// start waits until the live window is that long (`holdYoungStart`).
// Exposes window.swarmcastViewer for automated tests.

import Hls from '/vendor/hls.mjs';
import { attachSwarmcast } from '/agent/index.js';

const MAX_RECORDED_SEGMENTS = 10_000;
const UI_INTERVAL_MS = 500;
/** hls.js's `liveSyncDurationCount`: the start is this many target durations behind the edge. */
const LIVE_SYNC_SEGMENTS = 3;

let handle = null;

const viewer = {
  /** The tracker's peerId once the P2P session is up, else null. */
  peerId: null,
  /** `starting`, `p2p`, `cdn` or `unavailable`. */
  mode: 'starting',
  /** Every media segment handed to hls.js: { rendition, msn, bytes, sha256, source }. */
  segments: [],
  /** performance.now() when the first video frame was shown. */
  firstFrameMs: null,
  /** hls.js fatal errors: { type, details, reason }. */
  errors: [],
  /** The agent's counters (see @swarmcast/agent AgentStats), null without an agent. */
  stats: () => (handle ? handle.stats() : null),
  /** Sends the final usage report. */
  flush: () => (handle ? handle.flush() : Promise.resolve()),
  /** Resolves once the player and agent are set up. */
  ready: null,
  /** The hls.js instance, for tests (e.g. `hls.currentLevel = 0` switches renditions). */
  hls: null,
  /**
   * Live latency as hls.js estimates it (`hls.latency`: its estimate of the live edge − the
   * playhead), sampled twice a second while playing, in s. The estimate is the newest segment's
   * end + the time since hls.js last saw the playlist advance, so it moves in steps of up to half
   * a target duration when hls.js's reload falls on the other side of a publication, while the
   * playhead does not move: a player-side figure, kept to compare with other players.
   */
  latency: { first: null, last: null, mean: null, max: null, samples: 0 },
  /**
   * End-to-end latency: wall clock − the EXT-X-PROGRAM-DATE-TIME of the frame at the playhead
   * (`hls.playingDate`, RFC 8216 §4.3.2.6), sampled with `latency`, in s; null without
   * program date-times. With hls.js's start rule (3 target durations behind the newest segment
   * of the first playlist it loads) it is 3 target durations + that playlist's age (0 to 1
   * target duration) + the encoder's and the startup's delay, and it only grows with a stall.
   */
  e2eLatency: { first: null, last: null, mean: null, max: null, samples: 0 },
  /**
   * How far ahead of the playhead each main fragment was when hls.js had appended it, in s
   * (fragment start − currentTime at FRAG_BUFFERED), while playing: the room left before a stall.
   */
  appendSlack: { min: null, samples: 0 },
  /** `waiting` events after the first frame (playback stalls). */
  stalls: 0,
  /** Length of the live window of the first media playlist hls.js loaded, in s. */
  firstWindowS: null,
  /** How long the start was held for a young stream (`holdYoungStart`), in ms. */
  startHeldMs: 0,
  /** hls.js's non-fatal errors (e.g. `bufferStalledError`), the first 50: { details, atMs }. */
  warnings: [],
};
window.swarmcastViewer = viewer;

const $ = (id) => document.getElementById(id);

viewer.ready = main().catch((err) => {
  viewer.errors.push({ type: 'setup', details: String(err), reason: String(err && err.stack) });
  showError(`Setup failed: ${err}`);
});

async function main() {
  const params = new URLSearchParams(location.search);
  const config = await (await fetch('./config.json', { cache: 'no-store' })).json();
  const level = params.has('level') ? Number(params.get('level')) : -1;
  const video = $('video');
  if (!Hls.isSupported()) throw new Error('this browser has no Media Source Extensions');

  const hls = new Hls({
    liveSyncDurationCount: LIVE_SYNC_SEGMENTS,
    debug: params.has('hlsdebug'),
    lowLatencyMode: false,
    startLevel: level >= 0 ? level : -1,
    // A pinned rendition stays pinned through load errors (hls.js would hand it to ABR), e.g.
    // while content steering moves to another pathway.
    preserveManualLevelOnError: level >= 0,
  });
  viewer.hls = hls;
  handle = await attachSwarmcast(Hls, hls, video, {
    customer: config.customer,
    content: config.content,
    distributor_url: params.get('distributor') ?? config.distributor_url ?? '',
    p2p: params.get('p2p') !== '0',
    debug: params.has('debug'),
    onSegment: recordSegment,
  });
  handle.started.then((mode) => {
    viewer.mode = mode;
    viewer.peerId = handle.stats()?.peerId ?? null;
  });

  hls.on(Hls.Events.ERROR, (_event, data) => {
    if (!data.fatal) {
      if (viewer.warnings.length < 50) viewer.warnings.push({ details: data.details, atMs: Math.round(performance.now()) });
      return;
    }
    viewer.errors.push({ type: data.type, details: data.details, reason: String(data.reason ?? data.error ?? '') });
    showError(`Playback error: ${data.details}`);
    if (data.type === Hls.ErrorTypes.MEDIA_ERROR) hls.recoverMediaError();
  });
  if (level >= 0) {
    hls.on(Hls.Events.MANIFEST_PARSED, () => {
      if (level < hls.levels.length) hls.currentLevel = level;
    });
  }
  holdYoungStart(hls, video);
  watchFirstFrame(video);
  watchLatency(hls, video);
  watchAppendSlack(hls, video);
  hls.loadSource(config.master_url);
  hls.attachMedia(video);
  video.muted = true;
  video.play().catch(() => {});

  // The last report goes out with keepalive; then peers hear bye at once instead of timing out.
  addEventListener('pagehide', () => {
    viewer.flush();
    handle.destroy();
  });
  setInterval(() => render(hls), UI_INTERVAL_MS);
}

function recordSegment({ rendition, msn, url, data, source }) {
  if (viewer.segments.length >= MAX_RECORDED_SEGMENTS) return;
  // Copy now: hls.js transfers `data` to its worker right after this call.
  const copy = data.slice(0);
  sha256Hex(copy).then((sha256) => {
    viewer.segments.push({ rendition, msn, url, bytes: copy.byteLength, sha256, source });
  });
}

// RFC 8216 §6.3.3: a client SHOULD NOT start with a segment that starts less than three target
// durations from the end of the playlist. hls.js starts `liveSyncDurationCount` target durations
// behind the newest segment, but on a stream younger than that it starts at the first segment,
// as little as one segment from the live edge, where one segment published or found late stalls
// playback whatever delivers it. So while the live window is shorter (by more than half a target
// duration, the slack of encoders' segment lengths), the video stays paused on its first frame
// while hls.js loads; on the first long enough window it plays from hls.js's live sync position.
// An established stream starts as before.
function holdYoungStart(hls, video) {
  let heldSince = null;
  // Whatever starts playback while held (the autoplay attribute once the source is set, an
  // earlier play()), it pauses again.
  const keepPaused = () => video.pause();
  const onLevelLoaded = (_event, { details }) => {
    viewer.firstWindowS ??= details.totalduration;
    const needS = (LIVE_SYNC_SEGMENTS - 0.5) * details.targetduration;
    if (details.live && details.totalduration < needS) {
      if (heldSince === null) {
        heldSince = performance.now();
        video.autoplay = false;
        video.addEventListener('play', keepPaused);
        video.pause();
      }
      return;
    }
    hls.off(Hls.Events.LEVEL_LOADED, onLevelLoaded);
    if (heldSince === null) return;
    viewer.startHeldMs = Math.round(performance.now() - heldSince);
    video.removeEventListener('play', keepPaused);
    // hls.js's start rule on this window; a seek of less than a second is not worth a rebuffer.
    const sync = hls.liveSyncPosition;
    if (sync !== null && sync > video.currentTime + 1) video.currentTime = sync;
    video.play().catch(() => {});
  };
  hls.on(Hls.Events.LEVEL_LOADED, onLevelLoaded);
}

function watchFirstFrame(video) {
  const mark = () => {
    viewer.firstFrameMs ??= performance.now();
  };
  if (video.requestVideoFrameCallback) video.requestVideoFrameCallback(mark);
  video.addEventListener('playing', mark, { once: true });
}

// Samples the live latency (hls.js's estimate and end to end) twice a second while the video
// plays, and counts stalls.
function watchLatency(hls, video) {
  const add = (lat, l) => {
    lat.samples += 1;
    lat.first ??= l;
    lat.last = l;
    lat.mean = ((lat.mean ?? 0) * (lat.samples - 1) + l) / lat.samples;
    lat.max = Math.max(lat.max ?? l, l);
  };
  setInterval(() => {
    if (video.paused || viewer.firstFrameMs === null) return;
    const l = hls.latency;
    if (Number.isFinite(l) && l > 0) add(viewer.latency, l);
    const shown = hls.playingDate;
    if (shown) add(viewer.e2eLatency, (Date.now() - shown.getTime()) / 1000);
  }, 500);
  video.addEventListener('waiting', () => {
    if (viewer.firstFrameMs !== null) viewer.stalls += 1;
  });
}

function watchAppendSlack(hls, video) {
  const slack = viewer.appendSlack;
  hls.on(Hls.Events.FRAG_BUFFERED, (_event, { frag }) => {
    if (frag.type !== 'main' || video.paused || viewer.firstFrameMs === null) return;
    const s = frag.start - video.currentTime;
    slack.samples += 1;
    slack.min = Math.min(slack.min ?? s, s);
  });
}

function render(hls) {
  const s = viewer.stats();
  const badge = $('mode');
  badge.textContent = s ? s.mode : viewer.mode;
  badge.className = `badge ${s ? s.mode : ''}`;
  const lvl = s && s.rendition !== null ? hls.levels[s.rendition] : hls.levels[hls.currentLevel];
  $('rendition').textContent = lvl ? `${lvl.width}×${lvl.height} (${Math.round(lvl.bitrate / 1000)} kb/s)` : '–';
  if (!s) return;
  const total = s.httpBytes + s.p2pDownBytes;
  const offload = total > 0 ? (100 * s.p2pDownBytes) / total : 0;
  $('http').textContent = formatBytes(s.httpBytes);
  $('p2p-down').textContent = formatBytes(s.p2pDownBytes);
  $('p2p-up').textContent = formatBytes(s.p2pUpBytes);
  $('peers').textContent = String(s.peers);
  $('offload').textContent = `${offload.toFixed(1)} %`;
  $('offload-bar').style.width = `${offload}%`;
  $('peer-id').textContent = s.peerId ?? '–';
  viewer.peerId = s.peerId ?? viewer.peerId;
}

function showError(text) {
  const el = $('error');
  el.textContent = text;
  el.hidden = false;
}

function formatBytes(n) {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  return `${(n / 1024 / 1024).toFixed(2)} MiB`;
}

// SHA-256 of an ArrayBuffer as hex. crypto.subtle exists only in secure contexts (https,
// localhost); on a plain-http LAN address the small fallback below (FIPS 180-4) is used.
async function sha256Hex(buffer) {
  const digest = globalThis.crypto?.subtle ? await crypto.subtle.digest('SHA-256', buffer) : sha256(buffer);
  return [...new Uint8Array(digest)].map((b) => b.toString(16).padStart(2, '0')).join('');
}

const K = new Uint32Array([
  0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
  0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
  0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
  0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
  0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
  0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
  0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
  0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
]);

function sha256(buffer) {
  const bytes = new Uint8Array(buffer);
  const padded = new Uint8Array((((bytes.length + 9 + 63) >> 6) << 6));
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, Math.floor(bytes.length / 0x20000000));
  view.setUint32(padded.length - 4, (bytes.length * 8) >>> 0);
  const h = new Uint32Array([
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]);
  const w = new Uint32Array(64);
  const rotr = (x, n) => (x >>> n) | (x << (32 - n));
  for (let off = 0; off < padded.length; off += 64) {
    for (let i = 0; i < 16; i++) w[i] = view.getUint32(off + 4 * i);
    for (let i = 16; i < 64; i++) {
      const s0 = rotr(w[i - 15], 7) ^ rotr(w[i - 15], 18) ^ (w[i - 15] >>> 3);
      const s1 = rotr(w[i - 2], 17) ^ rotr(w[i - 2], 19) ^ (w[i - 2] >>> 10);
      w[i] = w[i - 16] + s0 + w[i - 7] + s1;
    }
    let [a, b, c, d, e, f, g, hh] = h;
    for (let i = 0; i < 64; i++) {
      const t1 = (hh + (rotr(e, 6) ^ rotr(e, 11) ^ rotr(e, 25)) + ((e & f) ^ (~e & g)) + K[i] + w[i]) >>> 0;
      const t2 = ((rotr(a, 2) ^ rotr(a, 13) ^ rotr(a, 22)) + ((a & b) ^ (a & c) ^ (b & c))) >>> 0;
      [hh, g, f, e, d, c, b, a] = [g, f, e, (d + t1) >>> 0, c, b, a, (t1 + t2) >>> 0];
    }
    const add = [a, b, c, d, e, f, g, hh];
    for (let i = 0; i < 8; i++) h[i] = (h[i] + add[i]) >>> 0;
  }
  const out = new DataView(new ArrayBuffer(32));
  for (let i = 0; i < 8; i++) out.setUint32(4 * i, h[i]);
  return out.buffer;
}
