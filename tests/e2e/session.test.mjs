// Long sessions: a viewer keeps its peerId and its P2P session past the lifetime of its first
// tracker token. The demo's tracker issues 10 s tokens; agents renew them at 80 %, and the
// tracker keeps answering their peer-list requests (which an expired token would fail with 401).
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { launchBrowser, openViewer, readViewer, sleep, startDemo, waitForWindow } from './harness.mjs';

const TTL_S = 10;
const PLAY_MS = Number(process.env.E2E_SESSION_PLAY_MS ?? 45_000);

async function metric(trackerUrl, name) {
  const text = await (await fetch(new URL('/metrics', trackerUrl))).text();
  const line = text.split('\n').find((l) => l.startsWith(`${name} `));
  return line ? Number(line.split(' ')[1]) : 0;
}

test('sessions outlive their first token with the same peerId', { timeout: PLAY_MS + 120_000 }, async (t) => {
  const demo = await startDemo(['--token-ttl-s', String(TTL_S)]);
  t.after(demo.stop);
  const trackerUrl = demo.output().match(/tracker\s+(\S+)/)[1];
  const browser = await launchBrowser();
  t.after(() => browser.close());
  await waitForWindow(demo.config.master_url, 5);
  const viewers = [await openViewer(browser, `${demo.url}?level=0&debug`)];
  await sleep(2_000);
  viewers.push(await openViewer(browser, `${demo.url}?level=0&debug`));

  const deadline = Date.now() + PLAY_MS + 60_000;
  let first = null;
  for (;;) {
    const r = await Promise.all(viewers.map(readViewer));
    first ??= r.every((x) => x.stats.peerId) ? r.map((x) => x.stats.peerId) : null;
    if (r.every((x) => x.monitor.playedMs >= PLAY_MS)) break;
    assert.ok(Date.now() < deadline, `viewers played only ${r.map((x) => x.monitor.playedMs)} ms`);
    await sleep(1_000);
  }
  const answeredBefore = await metric(trackerUrl, 'tracker_peers_requests_total');
  // Two viewers want more peers than they have, so they keep asking, long after their first
  // tokens expired.
  await sleep(15_000);
  const results = await Promise.all(viewers.map(readViewer));
  const renewals = await metric(trackerUrl, 'tracker_renewals_total');
  const answeredAfter = await metric(trackerUrl, 'tracker_peers_requests_total');
  const report = {
    renewals,
    peerListsAnswered: { before: answeredBefore, after: answeredAfter },
    viewers: results.map((r, i) => ({
      peerId: r.stats.peerId,
      p2pDownBytes: r.stats.p2pDownBytes,
      peers: r.stats.peers,
      renewedLogs: viewers[i].logs.filter((l) => l.includes('session token renewed')).length,
      maxStallMs: Math.round(r.monitor.maxStallMs),
    })),
  };
  console.log(JSON.stringify(report, null, 2));
  // Every 8 s over at least PLAY_MS + 15 s of session; one fewer for the start-up.
  const minimum = Math.floor((PLAY_MS + 15_000) / (TTL_S * 800)) - 1;
  assert.ok(renewals >= 2 * minimum, `only ${renewals} renewals`);
  assert.ok(answeredAfter >= answeredBefore + 2, `peer-list requests after the first tokens expired were refused (${answeredBefore} → ${answeredAfter})`);
  for (const [i, r] of results.entries()) {
    const logs = viewers[i].logs.slice(-20).join('\n');
    assert.equal(r.stats.peerId, first[i], `viewer ${i + 1} changed identity`);
    assert.equal(r.stats.mode, 'p2p');
    assert.ok(report.viewers[i].renewedLogs >= minimum, `viewer ${i + 1} renewed ${report.viewers[i].renewedLogs} times\n${logs}`);
    assert.ok(!viewers[i].logs.some((l) => l.includes('can no longer be renewed')), `viewer ${i + 1}\n${logs}`);
    assert.ok(r.monitor.maxStallMs < 1000, `viewer ${i + 1} stalled ${r.monitor.maxStallMs} ms`);
  }
  assert.ok(results.some((r) => r.stats.p2pDownBytes > 0), 'the viewers never shared a segment');
});
