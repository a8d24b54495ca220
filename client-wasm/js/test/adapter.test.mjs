// Unit tests of the hls.js adapter with a fake agent and a fake hls.js: `node --test client-wasm/js/test/`
// (needs `cargo xtask wasm` first, for the glue module that index.js imports).
import assert from 'node:assert/strict';
import test from 'node:test';

import { createFragmentLoader, isAgentFragment, pathwaysOf, segmentsOf } from '../index.js';

class FakeDefaultLoader {
  static loads = [];
  constructor() {
    this.stats = null;
  }
  load(context, config, callbacks) {
    FakeDefaultLoader.loads.push(context);
    const data = new Uint8Array([9, 9]).buffer;
    callbacks.onProgress?.(this.stats, context, data, null);
    callbacks.onSuccess({ url: context.url, data }, this.stats, context, null);
  }
  abort() {}
  destroy() {}
}
const Hls = { DefaultConfig: { loader: FakeDefaultLoader } };

function fakeAgent({ fail = false, bandwidthBps = 8_000_000 } = {}) {
  const agent = {
    loads: [],
    aborts: [],
    settle: null,
    load(rendition, msn) {
      agent.loads.push([rendition, msn]);
      return new Promise((resolve, reject) => {
        agent.settle = () => (fail ? reject(new Error('nope')) : resolve(new Uint8Array([1, 2, 3, 4])));
      });
    },
    abort(rendition, msn) {
      agent.aborts.push([rendition, msn]);
    },
    stats: () => ({ bandwidthBps }),
  };
  return agent;
}

const mediaContext = (sn = 42, level = 1) => ({
  url: `http://cdn/seg${sn}.ts`,
  frag: { type: 'main', sn, level },
});
const config = { timeout: 0, loadPolicy: { maxLoadTimeMs: 0 } };

function recorder() {
  const calls = [];
  const cb = (name) => (...args) => calls.push([name, ...args]);
  return { calls, callbacks: { onSuccess: cb('success'), onError: cb('error'), onTimeout: cb('timeout'), onAbort: cb('abort'), onProgress: cb('progress') } };
}

test('main media fragments go through the agent, with progress before success', async () => {
  const agent = fakeAgent();
  const seen = [];
  const Loader = createFragmentLoader(agent, Hls, { onSegment: (s) => seen.push(s) });
  const loader = new Loader({});
  const { calls, callbacks } = recorder();
  loader.load(mediaContext(), config, callbacks);
  assert.deepEqual(agent.loads, [[1, 42]]);
  agent.settle();
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(calls.map((c) => c[0]), ['progress', 'success']);
  const [, response, stats] = calls[1];
  assert.equal(response.data.byteLength, 4);
  assert.equal(stats.loaded, 4);
  assert.equal(stats.total, 4);
  // 4 bytes at 8 Mbit/s take 0.004 ms: the synthesized load is as fast as the CDN would be.
  assert.ok(stats.loading.end - stats.loading.first < 1);
  assert.deepEqual(seen.map((s) => [s.rendition, s.msn, s.source]), [[1, 42, 'agent']]);
});

test('agent failures fall back to the default loader once', async () => {
  const agent = fakeAgent({ fail: true });
  FakeDefaultLoader.loads = [];
  const seen = [];
  const loader = new (createFragmentLoader(agent, Hls, { onSegment: (s) => seen.push(s) }))({});
  const { calls, callbacks } = recorder();
  loader.load(mediaContext(), config, callbacks);
  agent.settle();
  await new Promise((r) => setTimeout(r, 0));
  assert.equal(FakeDefaultLoader.loads.length, 1);
  assert.deepEqual(calls.map((c) => c[0]), ['progress', 'success']);
  assert.deepEqual(seen.map((s) => s.source), ['http']);
});

test('with noFallback, agent failures become loader errors', async () => {
  const agent = fakeAgent({ fail: true });
  const loader = new (createFragmentLoader(agent, Hls, { noFallback: true }))({});
  const { calls, callbacks } = recorder();
  loader.load(mediaContext(), config, callbacks);
  agent.settle();
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(calls.map((c) => c[0]), ['error']);
  assert.match(calls[0][1].text, /nope/);
});

test('abort cancels in the agent and ignores a late answer', async () => {
  const agent = fakeAgent();
  const loader = new (createFragmentLoader(agent, Hls))({});
  const { calls, callbacks } = recorder();
  loader.load(mediaContext(7), config, callbacks);
  loader.abort();
  agent.settle();
  await new Promise((r) => setTimeout(r, 0));
  assert.deepEqual(agent.aborts, [[1, 7]]);
  assert.deepEqual(calls.map((c) => c[0]), ['abort']);
  assert.equal(loader.stats.aborted, true);
});

test('init segments, other tracks, byte ranges and a missing agent use the default loader', () => {
  const agent = fakeAgent();
  const contexts = [
    { url: 'init.mp4', frag: { type: 'main', sn: 'initSegment', level: 0 } },
    { url: 'a.aac', frag: { type: 'audio', sn: 3, level: 0 } },
    { url: 'r.ts', frag: { type: 'main', sn: 3, level: 0 }, rangeStart: 0, rangeEnd: 100 },
  ];
  FakeDefaultLoader.loads = [];
  for (const ctx of contexts) new (createFragmentLoader(agent, Hls))({}).load(ctx, config, recorder().callbacks);
  new (createFragmentLoader(null, Hls))({}).load(mediaContext(), config, recorder().callbacks);
  assert.equal(agent.loads.length, 0);
  assert.equal(FakeDefaultLoader.loads.length, 4);
});

test('the default loader path still reports media segments', () => {
  const seen = [];
  const loader = new (createFragmentLoader(null, Hls, { onSegment: (s) => seen.push(s) }))({});
  const { calls, callbacks } = recorder();
  loader.load(mediaContext(5, 2), config, callbacks);
  assert.deepEqual(calls.map((c) => c[0]), ['progress', 'success']);
  assert.deepEqual(seen.map((s) => [s.rendition, s.msn, s.source]), [[2, 5, 'http']]);
});

test('the load timeout aborts and reports a timeout', async () => {
  const agent = fakeAgent();
  const loader = new (createFragmentLoader(agent, Hls))({});
  const { calls, callbacks } = recorder();
  loader.load(mediaContext(), { timeout: 5, loadPolicy: { maxLoadTimeMs: 5 } }, callbacks);
  await new Promise((r) => setTimeout(r, 30));
  assert.deepEqual(calls.map((c) => c[0]), ['timeout']);
  assert.deepEqual(agent.aborts, [[1, 42]]);
});

test('segmentsOf keeps whole numbered segments in ms', () => {
  const details = {
    fragments: [
      { sn: 10, start: 20, duration: 2, url: 'http://c/10.ts' },
      { sn: 11, start: 22, duration: 2.002, url: 'http://c/11.ts' },
      { sn: 12, start: 24, duration: 2, url: 'http://c/12.ts', byteRangeStartOffset: 0 },
      { sn: 'initSegment', start: 0, duration: 0, url: 'init.mp4' },
    ],
  };
  assert.deepEqual(segmentsOf(details), [
    { msn: 10, start_ms: 20000, duration_ms: 2000, url: 'http://c/10.ts' },
    { msn: 11, start_ms: 22000, duration_ms: 2002, url: 'http://c/11.ts' },
  ]);
  assert.equal(isAgentFragment(mediaContext()), true);
  assert.equal(isAgentFragment({ frag: { type: 'main', sn: 1, level: -1 } }), false);
});

test('pathwaysOf lists each pathway once, steering priority first', () => {
  const levels = [
    { url: 'http://a/live/x/360p.m3u8', attrs: { 'PATHWAY-ID': 'cdn-a' } },
    { url: 'http://a/live/x/720p.m3u8', attrs: { 'PATHWAY-ID': 'cdn-a' } },
    { url: ['http://b/live/x/360p.m3u8'], attrs: { 'PATHWAY-ID': 'cdn-b' } },
    { url: 'http://c/live/x/360p.m3u8', attrs: {} },
  ];
  const a = { id: 'cdn-a', url: 'http://a/live/x/360p.m3u8' };
  const b = { id: 'cdn-b', url: 'http://b/live/x/360p.m3u8' };
  assert.deepEqual(pathwaysOf(levels), [a, b]);
  assert.deepEqual(pathwaysOf(levels, ['cdn-b', 'gone']), [b, a]);
  assert.deepEqual(pathwaysOf(undefined), []);
});
