// Faults: the P2P side failing must never stop playback.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchBrowser, openViewer, readViewer, sleep, startDemo } from './harness.mjs';

const PLAY_MS = Number(process.env.E2E_FAULT_PLAY_MS ?? 20_000);

async function playFor(viewer, ms) {
  const deadline = Date.now() + ms + 30_000;
  for (;;) {
    const r = await readViewer(viewer);
    if (r.monitor.playedMs >= ms) return r;
    assert.ok(Date.now() < deadline, `played only ${r.monitor.playedMs} ms\n${viewer.logs.slice(-20).join('\n')}`);
    await sleep(500);
  }
}

test('distributor unreachable: CDN-only playback without stalls', { timeout: 120_000 }, async (t) => {
  const demo = await startDemo();
  t.after(demo.stop);
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const viewer = await openViewer(browser, `${demo.url}?level=2&distributor=${encodeURIComponent('http://10.99.0.1:9/')}`);
  const r = await playFor(viewer, PLAY_MS);
  assert.ok(r.monitor.maxStallMs < 1000, `stalled ${r.monitor.maxStallMs} ms`);
  assert.ok(r.stats.httpBytes > 0);
  assert.equal(r.stats.p2pDownBytes, 0);
});

test('tracker and signalling unreachable: CDN-only playback without stalls', { timeout: 120_000 }, async (t) => {
  const demo = await startDemo(['--dead', 'tracker,signalling']);
  t.after(demo.stop);
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const viewers = [await openViewer(browser, `${demo.url}?level=2`), await openViewer(browser, `${demo.url}?level=2`)];
  for (const v of viewers) {
    const r = await playFor(v, PLAY_MS);
    assert.ok(r.monitor.maxStallMs < 1000, `stalled ${r.monitor.maxStallMs} ms`);
    assert.equal(r.stats.p2pDownBytes, 0);
  }
});

test('a peer closed mid-stream: the other viewer carries on over HTTP in time', { timeout: 180_000 }, async (t) => {
  const demo = await startDemo();
  t.after(demo.stop);
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const first = await openViewer(browser, `${demo.url}?level=2`);
  await sleep(4000);
  const second = await openViewer(browser, `${demo.url}?level=2`);
  // Wait until the second viewer really receives from the first.
  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await readViewer(second);
    if (r.stats.p2pDownBytes > 0 && r.monitor.playedMs > 6000) break;
    assert.ok(Date.now() < deadline, `no P2P bytes after 60 s\n${second.logs.slice(-20).join('\n')}`);
    await sleep(500);
  }
  const before = await readViewer(second);
  await first.page.close();
  const after = await playFor(second, before.monitor.playedMs + PLAY_MS);
  // Alone, it fetches each new segment from the CDN itself (it is the only seeder left); the
  // slack left when hls.js has appended it shows how close that came to a stall.
  console.log(JSON.stringify({ minAppendSlackS: after.appendSlack.min, cdnBytesByReason: after.stats.cdnBytesByReason }));
  assert.ok(after.monitor.maxStallMs < 1000, `stalled ${after.monitor.maxStallMs} ms after its peer left`);
  assert.ok(after.stats.httpBytes > before.stats.httpBytes, 'fell back to HTTP');
});
