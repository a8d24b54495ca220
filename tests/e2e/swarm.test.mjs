// Swarms of 4 and 6 viewers of one live stream (2 s segments) in real headless Chromium, with the
// default configuration: over the steady state (every viewer joined and playing), the swarm takes
// at least 0.97 of the offload bound 1 − 1/N from peers, at a live latency of at most three target
// durations + 1 s, with no stall.
//
// E2E_SWARM_SIZES (default "4,6"), E2E_PLAY_MS (steady-state play time, default 60 000) and
// E2E_LEVEL (rendition, default 2) tune it. Results go to target/e2e/swarm-report.json.
import assert from 'node:assert/strict';
import { mkdirSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { test } from 'node:test';
import { ROOT, launchBrowser, openViewer, readViewer, sleep, startDemo, waitForWindow } from './harness.mjs';

const SIZES = (process.env.E2E_SWARM_SIZES ?? '4,6').split(',').map(Number);
const PLAY_MS = Number(process.env.E2E_PLAY_MS ?? 60_000);
const LEVEL = Number(process.env.E2E_LEVEL ?? 2);
const JOIN_GAP_MS = 2_000;
/** After the last viewer's first frame, this long passes before the measured window starts. */
const WARMUP_MS = 10_000;
const TARGET_DURATION_S = 2;
const report = [];

/** Live latency, stall count and counters of one viewer page. */
const sample = (v) => v.page.evaluate(() => {
  const w = window.swarmcastViewer;
  return {
    stats: w.stats(),
    latency: { ...w.latency },
    appendSlack: { ...w.appendSlack },
    stalls: w.stalls,
    firstFrameMs: w.firstFrameMs,
  };
});

/** Waits until the stream's first media playlist lists `count` segments (a full live window). */
for (const n of SIZES) {
  test(`a swarm of ${n} viewers approaches the offload bound at low latency`, { timeout: PLAY_MS + n * 30_000 + 180_000 }, async (t) => {
    const demo = await startDemo();
    t.after(demo.stop);
    const browser = await launchBrowser();
    t.after(() => browser.close());
    await waitForWindow(demo.config.master_url, 5);

    const viewers = [];
    for (let i = 0; i < n; i++) {
      viewers.push(await openViewer(browser, `${demo.url}?level=${LEVEL}`));
      await sleep(JOIN_GAP_MS);
    }
    // Wait until every viewer shows frames, then let the swarm settle.
    const joinDeadline = Date.now() + 60_000;
    for (;;) {
      const s = await Promise.all(viewers.map(sample));
      if (s.every((x) => x.firstFrameMs !== null && x.stats && x.stats.mode === 'p2p')) break;
      assert.ok(Date.now() < joinDeadline, `viewers did not all start: ${JSON.stringify(s.map((x) => x.stats?.mode))}`);
      await sleep(500);
    }
    await sleep(WARMUP_MS);
    const before = await Promise.all(viewers.map(sample));
    await sleep(PLAY_MS);
    const after = await Promise.all(viewers.map(sample));
    const final = await Promise.all(viewers.map(readViewer));

    const delta = (k) => after.reduce((a, x, i) => a + x.stats[k] - before[i].stats[k], 0);
    const p2p = delta('p2pDownBytes');
    const http = delta('httpBytes');
    const offload = p2p / Math.max(1, p2p + http);
    const bound = 1 - 1 / n;
    const latencies = after.map((x) => x.latency.mean);
    const result = {
      viewers: n,
      offload,
      bound,
      ofBound: offload / bound,
      httpBytes: http,
      p2pBytes: p2p,
      meanLatencyS: latencies.reduce((a, b) => a + b, 0) / n,
      maxLatencyS: Math.max(...after.map((x) => x.latency.max)),
      stalls: after.reduce((a, x) => a + x.stalls, 0),
      maxStallMs: Math.max(...final.map((r) => r.monitor.maxStallMs)),
      // The closest any viewer came to a stall: media left ahead of the playhead when hls.js had
      // appended a fragment, in s (over the whole session, warm-up included).
      minAppendSlackS: Math.min(...after.map((x) => x.appendSlack.min ?? Infinity)),
      // Playlist loads of the next segment's seeder (the early reload of a full mesh).
      playlistPolls: delta('playlistPolls'),
      // Why the steady state's CDN bytes came from the CDN (the agent's counters), summed.
      cdnBytesByReason: after.reduce((sum, x, i) => {
        for (const [k, v] of Object.entries(x.stats.cdnBytesByReason ?? {})) {
          sum[k] = (sum[k] ?? 0) + v - (before[i].stats.cdnBytesByReason?.[k] ?? 0);
        }
        return sum;
      }, {}),
      perViewer: after.map((x, i) => ({
        offload: (x.stats.p2pDownBytes - before[i].stats.p2pDownBytes)
          / Math.max(1, x.stats.p2pDownBytes - before[i].stats.p2pDownBytes + x.stats.httpBytes - before[i].stats.httpBytes),
        latencyS: x.latency.mean,
        firstFrameMs: Math.round(final[i].firstFrameMs),
        stalls: x.stalls,
        peers: x.stats.peers,
      })),
    };
    report.push(result);
    console.log(JSON.stringify(result, null, 2));
    mkdirSync(path.join(ROOT, 'target/e2e'), { recursive: true });
    writeFileSync(path.join(ROOT, 'target/e2e/swarm-report.json'), JSON.stringify(report, null, 2));

    final.forEach((r, i) => assert.deepEqual(r.errors, [], `viewer ${i + 1} hls.js errors`));
    assert.equal(result.stalls, 0, `stalls: ${JSON.stringify(after.map((x) => x.stalls))}`);
    for (const [i, l] of latencies.entries()) {
      assert.ok(l !== null && l <= 3 * TARGET_DURATION_S + 1, `viewer ${i + 1} live latency ${l} s`);
    }
    assert.ok(offload >= 0.97 * bound, `offload ${offload.toFixed(3)} < 0.97 × ${bound.toFixed(3)}`);
    // Every viewer is every other's neighbour here, so the next segment's seeder polls for it.
    assert.ok(result.playlistPolls > 0, 'no early playlist reload in a full mesh');
  });
}
