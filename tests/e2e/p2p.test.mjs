// Three viewers of one live stream in real headless Chromium, joining a few seconds apart:
// playback never stalls, the swarm gets most bytes from peers, every segment handed to hls.js
// equals the origin's bytes, and analytics agrees with the agents' own counters.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, launchBrowser, offload, openViewer, readViewer, sleep, startDemo, waitForWindow, watchOrigin } from './harness.mjs';

const PLAY_MS = Number(process.env.E2E_PLAY_MS ?? 60_000);
const JOIN_GAP_MS = 4_000;

test('three viewers share a live stream over data channels', { timeout: PLAY_MS + 180_000 }, async (t) => {
  const demo = await startDemo();
  t.after(demo.stop);
  const origin = watchOrigin(demo.config.master_url);
  t.after(origin.stop);
  const browser = await launchBrowser();
  t.after(() => browser.close());

  const pageUrl = `${demo.url}?level=2`;
  // Viewers join an established stream. On a stream younger than three target durations hls.js
  // starts at the playlist's first segment, about 2.3 s behind the live edge, where a segment
  // published or discovered a second late stalls playback whatever delivers it (1.9 s once in
  // CI). The simulator and `engine::rank` cover a viewer at the live edge.
  await waitForWindow(demo.config.master_url, 5);
  const viewers = [];
  for (let i = 0; i < 3; i++) {
    viewers.push(await openViewer(browser, pageUrl));
    await sleep(JOIN_GAP_MS);
  }
  // Play until the last viewer has played PLAY_MS.
  const deadline = Date.now() + PLAY_MS + 60_000;
  for (;;) {
    const last = await readViewer(viewers[2]);
    if (last.monitor.playedMs >= PLAY_MS) break;
    assert.ok(Date.now() < deadline, `viewer 3 played only ${last.monitor.playedMs} ms`);
    await sleep(1000);
  }
  await Promise.all(viewers.map((v) => v.page.evaluate(() => window.swarmcastViewer.flush())));
  const results = await Promise.all(viewers.map(readViewer));

  const report = { viewers: results.map((r, i) => ({
    viewer: i + 1,
    offload: offload(r.stats),
    httpBytes: r.stats.httpBytes,
    p2pDownBytes: r.stats.p2pDownBytes,
    p2pUpBytes: r.stats.p2pUpBytes,
    playedMs: Math.round(r.monitor.playedMs),
    maxStallMs: Math.round(r.monitor.maxStallMs),
    firstFrameMs: Math.round(r.firstFrameMs),
    meanLatencyS: r.latency.mean,
    liveEdge: r.stats.liveEdge,
    uplinkStreams: r.stats.uplinkStreams,
    cdnBytesByReason: r.stats.cdnBytesByReason,
    segments: r.segments.length,
  })) };
  console.log(JSON.stringify(report, null, 2));

  results.forEach((r, i) => {
    const logs = viewers[i].logs.slice(-20).join('\n');
    assert.deepEqual(r.errors, [], `viewer ${i + 1} hls.js errors\n${logs}`);
    assert.ok(r.monitor.playedMs >= PLAY_MS, `viewer ${i + 1} played ${r.monitor.playedMs} ms\n${logs}`);
    assert.ok(r.monitor.maxStallMs < 1000, `viewer ${i + 1} stalled ${r.monitor.maxStallMs} ms\n${logs}`);
  });
  // One viewer per segment seeds it from the CDN (the rank's choice), the others get it from
  // peers, so the swarm's offload approaches 1 − 1/3. The first viewer played alone for
  // JOIN_GAP_MS, and every viewer's first segment comes from the CDN.
  const swarm = offload({
    httpBytes: results.reduce((a, r) => a + r.stats.httpBytes, 0),
    p2pDownBytes: results.reduce((a, r) => a + r.stats.p2pDownBytes, 0),
  });
  report.swarmOffload = swarm;
  console.log(JSON.stringify({ swarmOffload: swarm, bound: 2 / 3 }));
  assert.ok(swarm >= 0.8 * (2 / 3), `swarm offload ${swarm}, bound 0.667`);
  results.forEach((r, i) => {
    assert.equal(r.stats.liveEdge, false, `viewer ${i + 1} claimed the live edge at ${r.latency.mean} s of latency`);
    assert.ok(offload(r.stats) >= 0.25, `viewer ${i + 1} offload ${offload(r.stats)}`);
  });

  // Byte-identical to the origin: every segment the agents handed to hls.js.
  let checked = 0;
  for (const [i, r] of results.entries()) {
    for (const s of r.segments) {
      const expected = origin.digests.get(s.url);
      assert.ok(expected, `viewer ${i + 1}: segment ${s.url} never seen at the origin`);
      assert.equal(s.sha256, expected, `viewer ${i + 1}: segment ${s.url} differs from the origin's bytes`);
      checked++;
    }
  }
  assert.ok(checked >= 3 * (PLAY_MS / 2000) * 0.9, `only ${checked} segments checked`);

  // Analytics totals match the agents' counters within 1%.
  const summary = await (await fetch(`${demo.config.analytics_url}/v1/summary?content=${demo.config.content}`)).json();
  const sum = (k) => results.reduce((a, r) => a + r.stats[k], 0);
  for (const [mine, theirs] of [['httpBytes', 'http_bytes'], ['p2pDownBytes', 'p2p_down_bytes'], ['p2pUpBytes', 'p2p_up_bytes']]) {
    const want = sum(mine);
    assert.ok(Math.abs(summary[theirs] - want) <= 0.01 * Math.max(want, 1), `${theirs}: analytics ${summary[theirs]} vs agents ${want}`);
  }

  // Startup time, navigation to first frame, with P2P on and off in the same run.
  const startup = {};
  for (const [name, query] of [['p2p_on', '?level=2'], ['p2p_off', '?level=2&p2p=0']]) {
    const v = await openViewer(browser, `${demo.url}${query}`);
    for (let i = 0; i < 100; i++) {
      const ff = await v.page.evaluate(() => window.swarmcastViewer?.firstFrameMs);
      if (ff) { startup[name] = Math.round(ff); break; }
      await sleep(200);
    }
    await v.page.close();
  }
  report.startupMs = startup;
  report.summary = summary;
  console.log(JSON.stringify({ startupMs: startup }));
  mkdirSync(path.join(ROOT, 'target/e2e'), { recursive: true });
  writeFileSync(path.join(ROOT, 'target/e2e/p2p-report.json'), JSON.stringify(report, null, 2));
  assert.ok(startup.p2p_on && startup.p2p_off, 'both startup probes reached a first frame');
});
