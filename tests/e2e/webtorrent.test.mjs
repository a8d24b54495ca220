// Interop: two viewers with hls.js + p2p-media-loader 2.x (from npm, unmodified) play the live
// stream from our origin and find each other through our tracker's WebTorrent endpoint
// (`/announce`): offers and answers go through it and their data channels connect. The segment
// bytes they exchange are reported, not asserted: p2p-media-loader's own scheduling loads the
// segments near the playhead over HTTP, and in this short live run it sent none peer to peer.
import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import http from 'node:http';
import path from 'node:path';
import { test } from 'node:test';
import { IP, ROOT, launchBrowser, sleep, startDemo } from './harness.mjs';

const PLAY_MS = Number(process.env.E2E_WT_PLAY_MS ?? 40_000);

const PAGE = `<!doctype html>
<meta charset="utf-8">
<script type="importmap">{"imports":{"p2p-media-loader-core":"/nm/p2p-media-loader-core/dist/p2p-media-loader-core.es.js"}}</script>
<video muted autoplay playsinline></video>
<script type="module">
import Hls from '/nm/hls.js/dist/hls.mjs';
import { HlsJsP2PEngine } from '/nm/p2p-media-loader-hlsjs/dist/p2p-media-loader-hlsjs.es.js';
const params = new URLSearchParams(location.search);
const stats = { http: 0, p2p: 0, peers: 0, errors: [] };
window.stats = stats;
const HlsWithP2P = HlsJsP2PEngine.injectMixin(Hls);
const hls = new HlsWithP2P({
  liveSyncDurationCount: Number(params.get('sync')),
  p2p: {
    core: { announceTrackers: [params.get('tracker')], rtcConfig: { iceServers: [] }, swarmId: 'interop' },
    onHlsJsCreated(h) {
      h.p2pEngine.addEventListener('onChunkDownloaded', (bytes, source) => { stats[source] = (stats[source] ?? 0) + bytes; });
      h.p2pEngine.addEventListener('onPeerConnect', () => { stats.peers += 1; });
      h.p2pEngine.addEventListener('onTrackerError', (e) => { stats.errors.push(String(e?.error ?? e)); });
    },
  },
});
hls.attachMedia(document.querySelector('video'));
hls.loadSource(params.get('src'));
</script>`;

/** Serves the test page and node_modules/{hls.js,p2p-media-loader-*} on IP. */
async function servePage() {
  const server = http.createServer(async (req, res) => {
    const url = new URL(req.url, 'http://x');
    if (url.pathname === '/') {
      res.writeHead(200, { 'content-type': 'text/html' }).end(PAGE);
      return;
    }
    const allowed = /^\/nm\/(hls\.js|p2p-media-loader-core|p2p-media-loader-hlsjs)\/dist\/[\w.-]+$/;
    if (!allowed.test(url.pathname)) {
      res.writeHead(404).end();
      return;
    }
    try {
      const body = await readFile(path.join(ROOT, 'node_modules', url.pathname.slice('/nm/'.length)));
      res.writeHead(200, { 'content-type': 'text/javascript' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((resolve) => server.listen(0, IP, resolve));
  return { url: `http://${IP}:${server.address().port}/`, close: () => new Promise((r) => server.close(r)) };
}

test('p2p-media-loader viewers connect through the WebTorrent endpoint', { timeout: PLAY_MS + 180_000 }, async (t) => {
  // A long live window, so the second viewer can play well behind the first and find the
  // segments it needs at its peer.
  const demo = await startDemo(['--window-segments', '15']);
  t.after(demo.stop);
  const tracker = demo.output().match(/tracker\s+http:\/\/(\S+)/);
  assert.ok(tracker, `no tracker address in the demo output:\n${demo.output()}`);
  const announce = `ws://${tracker[1]}/announce`;
  const page = await servePage();
  t.after(page.close);
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const src = demo.config.master_url;
  const pageUrl = `${page.url}?tracker=${encodeURIComponent(announce)}&src=${encodeURIComponent(src)}`;
  const viewers = [];
  for (const sync of [3, 10]) {
    // The second viewer plays further behind the live edge than the first.
    const p = await browser.newPage();
    const logs = [];
    p.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
    p.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
    await p.goto(`${pageUrl}&sync=${sync}`);
    viewers.push({ page: p, logs });
    await sleep(6_000);
  }
  const deadline = Date.now() + PLAY_MS;
  let results = [];
  while (Date.now() < deadline) {
    await sleep(2_000);
    results = await Promise.all(viewers.map((v) => v.page.evaluate(() => ({
      ...window.stats, time: document.querySelector('video').currentTime,
    }))));
    if (results.every((r) => r.peers > 0 && r.time > 5)) break;
  }
  const detail = JSON.stringify({ results, logs: viewers.map((v) => v.logs.slice(-20)) }, null, 2);
  console.log(JSON.stringify({ webtorrentInterop: results }));
  for (const r of results) {
    assert.ok(r.time > 5, `a viewer did not play:\n${detail}`);
    assert.ok(r.peers > 0, `a viewer connected to no peer through the tracker:\n${detail}`);
    assert.deepEqual(r.errors, [], `tracker errors:\n${detail}`);
  }
});
