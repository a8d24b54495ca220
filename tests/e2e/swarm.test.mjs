// Swarms of 4 and 6 viewers of one live stream (2 s segments) in real headless Chromium, with the
// default configuration: over the steady state (every viewer joined and playing), the swarm takes
// at least 0.97 of the offload bound 1 − 1/N from peers, at a live latency of at most three target
// durations + 1 s, with no stall.
//
// Live latency is asserted at most 3 target durations + 1 s for every viewer, on a reading that
// hls.js's playlist reloads cannot move:
// - hls.js's own estimate, `hls.latency` (the newest segment's end + the time since hls.js last
//   saw the playlist advance − the playhead), at the first sample after the first frame: where
//   its start rule (`liveSyncDurationCount` 3) put the viewer, plus the startup;
// - plus whatever the viewer lost since, end to end (wall clock − the program date-time of the
//   frame on screen, `hls.playingDate`): stalls and slow appends show up there, reloads do not.
// The estimate itself is reported, not asserted after the start (it is the figure other players
// are compared on): it moves in steps of half a target duration or more when a reload falls on
// the other side of a publication while the playhead stays where it was (seen at 5.2, 7.2 and
// 8.1 s for viewers whose end-to-end latency did not move by 2 ms). End to end, a viewer sits 3
// target durations behind the newest segment of the first playlist hls.js loaded, which was 0 to
// 1 target duration old, + the encoder's, the origin's and the startup's delay: that is asserted
// within 5 target durations.
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
/** Largest live latency (see the header), in s. */
const MAX_LATENCY_S = 3 * TARGET_DURATION_S + 1;
/** Largest end-to-end latency (see the header), in s. */
const MAX_E2E_LATENCY_S = 5 * TARGET_DURATION_S;
const report = [];

/** Live latency, stall count and counters of one viewer page. */
const sample = (v) => v.page.evaluate(() => {
  const w = window.swarmcastViewer;
  return {
    stats: w.stats(),
    latency: { ...w.latency },
    e2eLatency: { ...w.e2eLatency },
    warnings: w.warnings,
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
    const e2e = after.map((x) => x.e2eLatency);
    // hls.js's estimate at the start + the end-to-end latency gained since (see the header).
    const liveLatencies = after.map((x) => x.latency.first + x.e2eLatency.last - x.e2eLatency.first);
    const result = {
      viewers: n,
      offload,
      bound,
      ofBound: offload / bound,
      httpBytes: http,
      p2pBytes: p2p,
      meanLatencyS: latencies.reduce((a, b) => a + b, 0) / n,
      maxLatencyS: Math.max(...after.map((x) => x.latency.max)),
      meanE2eLatencyS: e2e.reduce((a, x) => a + x.mean, 0) / n,
      maxE2eLatencyS: Math.max(...e2e.map((x) => x.max)),
      maxLiveLatencyS: Math.max(...liveLatencies),
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
        firstLatencyS: x.latency.first,
        e2eLatencyS: x.e2eLatency.mean,
        firstE2eLatencyS: x.e2eLatency.first,
        liveLatencyS: liveLatencies[i],
        warnings: x.warnings.map((w) => w.details),
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
    for (const [i, l] of e2e.entries()) {
      assert.ok(l.samples > 0, `viewer ${i + 1}: no program date-time at the playhead`);
      assert.ok(liveLatencies[i] <= MAX_LATENCY_S, `viewer ${i + 1} live latency ${liveLatencies[i]} s (hls.js's ${after[i].latency.first} s at the start)`);
      assert.ok(l.max <= MAX_E2E_LATENCY_S, `viewer ${i + 1} end-to-end latency up to ${l.max} s`);
    }
    assert.ok(offload >= 0.97 * bound, `offload ${offload.toFixed(3)} < 0.97 × ${bound.toFixed(3)}`);
    // Every viewer is every other's neighbour here, so the next segment's seeder polls for it.
    assert.ok(result.playlistPolls > 0, 'no early playlist reload in a full mesh');
  });
}
