// A viewer who opens the page as soon as the demo prints its URL meets a stream younger than three
// target durations. hls.js alone would start at the window's first segment, a segment or two from
// the live edge; the demo page holds the start until the window is long enough (RFC 8216 §6.3.3),
// so the viewer starts about three target durations behind the edge and plays without a stall.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchBrowser, openViewer, readViewer, sleep, startDemo } from './harness.mjs';

const TARGET_DURATION_S = 2;
const PLAY_MS = 20_000;

test('a viewer of a stream that just started begins three target durations behind the live edge', { timeout: 120_000 }, async (t) => {
  // Chromium first: the viewer must reach the demo while its window is still young.
  const browser = await launchBrowser();
  t.after(() => browser.close());
  const demo = await startDemo();
  t.after(demo.stop);
  const viewer = await openViewer(browser, `${demo.url}?level=2`);

  const deadline = Date.now() + 60_000;
  for (;;) {
    const r = await readViewer(viewer);
    if (r.monitor.playedMs >= PLAY_MS) break;
    assert.ok(Date.now() < deadline, `played only ${r.monitor.playedMs} ms: ${JSON.stringify(r.errors)}`);
    await sleep(1000);
  }
  const r = await readViewer(viewer);
  console.log(JSON.stringify({ youngStart: { firstWindowS: r.firstWindowS, startHeldMs: r.startHeldMs, stalls: r.stalls, firstLatencyS: r.latency.first, meanLatencyS: r.latency.mean, maxStallMs: r.monitor.maxStallMs } }));

  // The case under test: the first playlist hls.js saw was shorter than its start rule needs.
  assert.ok(r.firstWindowS < 3 * TARGET_DURATION_S, `the stream was already ${r.firstWindowS} s long`);
  assert.ok(r.startHeldMs > 0, 'the start was not held');
  assert.ok(r.latency.first >= 2.5 * TARGET_DURATION_S, `started ${r.latency.first} s behind the live edge`);
  assert.ok(r.latency.first <= 3 * TARGET_DURATION_S + 1, `started ${r.latency.first} s behind the live edge`);
  assert.deepEqual(r.errors, []);
  assert.equal(r.stalls, 0);
});
