// Multi-CDN failover in real headless Chromium: two viewers play through pathway cdn-a; cdn-a's
// process is killed mid-stream; both keep playing on cdn-b with no stall over 1 s, and the
// steering manifest lists cdn-b first within its TTL plus one probe.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { demoPid, fetchesByHost, launchBrowser, openViewer, readViewer, sleep, startDemo, waitForWindow } from './harness.mjs';

const BEFORE_MS = Number(process.env.E2E_FAILOVER_BEFORE_MS ?? 15_000);
const AFTER_MS = Number(process.env.E2E_FAILOVER_AFTER_MS ?? 25_000);
const TTL_S = 4;
const PROBE_MS = 1000;

test('viewers move from a killed CDN to the other one without stalling', { timeout: BEFORE_MS + AFTER_MS + 180_000 }, async (t) => {
  const demo = await startDemo(['--steering-ttl-s', String(TTL_S), '--probe-interval-ms', String(PROBE_MS)]);
  t.after(demo.stop);
  const origin = new URL(demo.config.master_url).origin;
  const steering = `${origin}/steer/${demo.config.content}/steering.json?session=e2e`;
  const cdnA = new URL(demo.output().match(/cdn-a\s+(\S+)/)[1]).host;
  const cdnB = new URL(demo.output().match(/cdn-b\s+(\S+)/)[1]).host;
  const first = await (await fetch(steering)).json();
  assert.deepEqual(first['PATHWAY-PRIORITY'], ['cdn-a', 'cdn-b']);

  const browser = await launchBrowser();
  t.after(() => browser.close());
  await waitForWindow(demo.config.master_url, 5);
  const page = `${demo.url}?level=0${process.env.E2E_DEBUG ? '&debug' : ''}`;
  const viewers = [await openViewer(browser, page), await openViewer(browser, page)];
  const deadline = Date.now() + BEFORE_MS + 60_000;
  for (;;) {
    const played = await Promise.all(viewers.map(async (v) => (await readViewer(v)).monitor.playedMs));
    if (played.every((p) => p >= BEFORE_MS)) break;
    assert.ok(Date.now() < deadline, `viewers played only ${played} ms before the failure`);
    await sleep(500);
  }
  const before = await Promise.all(viewers.map(fetchesByHost));
  for (const [i, f] of before.entries()) {
    assert.ok((f[cdnA]?.segment ?? 0) > 0, `viewer ${i + 1} fetched no segment from cdn-a: ${JSON.stringify(f)}`);
    assert.equal(f[cdnB]?.segment ?? 0, 0, `viewer ${i + 1} already used cdn-b: ${JSON.stringify(f)}`);
  }

  const pid = demoPid(demo, 'CDN_A');
  assert.ok(pid, 'the demo printed cdn-a pid');
  const killedAt = Date.now();
  process.kill(pid, 'SIGKILL');

  // The steering manifest puts cdn-b first within TTL + one probe.
  let steeredMs = null;
  while (Date.now() - killedAt < (TTL_S + 10) * 1000) {
    const m = await (await fetch(steering)).json();
    if (m['PATHWAY-PRIORITY'][0] === 'cdn-b') { steeredMs = Date.now() - killedAt; break; }
    await sleep(100);
  }
  assert.ok(steeredMs !== null && steeredMs <= TTL_S * 1000 + PROBE_MS * 2, `steering moved cdn-b first after ${steeredMs} ms`);

  const atKill = await Promise.all(viewers.map(readViewer));
  const stallBefore = atKill.map((r) => r.monitor.maxStallMs);
  const playedAtKill = atKill.map((r) => r.monitor.playedMs);
  await sleep(AFTER_MS);
  const results = await Promise.all(viewers.map(readViewer));
  const after = await Promise.all(viewers.map(fetchesByHost));
  const report = results.map((r, i) => ({
    viewer: i + 1,
    maxStallMs: Math.round(r.monitor.maxStallMs),
    stallBeforeKillMs: Math.round(stallBefore[i]),
    playedAfterKillMs: Math.round(r.monitor.playedMs - playedAtKill[i]),
    mode: r.stats.mode,
    peers: r.stats.peers,
    p2pDownBytes: { beforeKill: atKill[i].stats.p2pDownBytes, afterKill: r.stats.p2pDownBytes - atKill[i].stats.p2pDownBytes },
    httpBytes: { beforeKill: atKill[i].stats.httpBytes, afterKill: r.stats.httpBytes - atKill[i].stats.httpBytes },
    fetches: after[i],
    renditionsAfterKill: [...new Set(r.segments.slice(atKill[i].segments.length).map((s) => s.rendition))],
    errors: r.errors,
  }));
  console.log(JSON.stringify({ steeredMs, viewers: report }, null, 2));
  if (process.env.E2E_DEBUG) for (const v of viewers) console.log(v.logs.join('\n'));
  for (const [i, r] of results.entries()) {
    const logs = viewers[i].logs.slice(-20).join('\n');
    assert.ok((after[i][cdnB]?.segment ?? 0) > 0, `viewer ${i + 1} never fetched from cdn-b\n${logs}`);
    assert.ok(r.monitor.playedMs - playedAtKill[i] >= AFTER_MS * 0.8, `viewer ${i + 1} played ${r.monitor.playedMs - playedAtKill[i]} ms after the kill\n${logs}`);
    assert.ok(r.monitor.maxStallMs < 1000, `viewer ${i + 1} stalled ${r.monitor.maxStallMs} ms\n${logs}`);
    assert.deepEqual(r.errors, [], `viewer ${i + 1} hls.js fatal errors\n${logs}`);
    // Sharing needs one rendition: the page pins it, through the pathway's load errors too.
    assert.deepEqual(report[i].renditionsAfterKill, [0], `viewer ${i + 1} left the pinned rendition`);
  }
  // Segment identity does not depend on the CDN host: the two viewers go on sharing.
  const p2pAfter = report.reduce((sum, r) => sum + r.p2pDownBytes.afterKill, 0);
  assert.ok(p2pAfter > 0, 'no segment moved between the viewers after the failover');
});
