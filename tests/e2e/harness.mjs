// Shared pieces of the browser end-to-end tests: the demo stack, Chromium, and an independent
// reader of the origin that records every segment's SHA-256 for byte-for-byte checks.
import { spawn } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

export const ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
export const IP = process.env.SWARMCAST_E2E_IP ?? '127.0.0.1';
export const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Starts `swarmcast demo` on IP with ephemeral ports; resolves with its page URL and a stop(). */
export async function startDemo(extraArgs = []) {
  const bin = path.join(ROOT, 'target/debug/swarmcast');
  const args = ['demo', '--bind', IP, '--port', '0', '--ladder', 'small', '--root', ROOT, ...extraArgs];
  const child = spawn(bin, args, { stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, RUST_LOG: process.env.RUST_LOG ?? 'warn' } });
  let out = '';
  child.stderr.on('data', (d) => { if (process.env.E2E_VERBOSE) process.stderr.write(d); });
  const url = await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`demo did not start in 60 s:\n${out}`)), 60_000);
    child.stdout.on('data', (d) => {
      out += d;
      const m = out.match(/SWARMCAST_DEMO_URL=(\S+)/);
      if (m) { clearTimeout(timer); resolve(m[1]); }
    });
    child.on('exit', (code) => { clearTimeout(timer); reject(new Error(`demo exited with ${code}:\n${out}`)); });
  });
  const config = await (await fetch(new URL('config.json', url))).json();
  const stop = async () => {
    if (child.exitCode !== null) return;
    child.kill('SIGTERM');
    await Promise.race([new Promise((r) => child.once('exit', r)), sleep(8000)]);
    if (child.exitCode === null) child.kill('SIGKILL');
  };
  return { url, config, stop, output: () => out };
}

/** Launches headless Chromium (Debian's) with a fresh profile; WebRTC sees raw host candidates. */
export async function launchBrowser() {
  return chromium.launchPersistentContext(mkdtempSync(path.join(tmpdir(), 'swarmcast-e2e-')), {
    executablePath: '/usr/bin/chromium',
    headless: true,
    args: [
      '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking',
      '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage',
      '--disable-features=WebRtcHideLocalIpsWithMdns', '--autoplay-policy=no-user-gesture-required',
      '--disable-background-timer-throttling', '--disable-renderer-backgrounding',
      '--disable-backgrounding-occluded-windows',
    ],
  });
}

/**
 * Opens the viewer page and installs a stall monitor: every 100 ms it notes whether the video's
 * currentTime advanced; `maxStallMs` is the longest time it did not, once playback has started.
 */
export async function openViewer(context, url) {
  const page = await context.newPage();
  const logs = [];
  page.on('console', (m) => logs.push(`${m.type()}: ${m.text()}`));
  page.on('pageerror', (e) => logs.push(`pageerror: ${e.message}`));
  const navigationStart = Date.now();
  await page.goto(url);
  await page.evaluate(() => {
    const v = document.querySelector('video');
    const mon = { started: false, maxStallMs: 0, lastTime: 0, lastAdvance: performance.now(), playedMs: 0 };
    window.__monitor = mon;
    setInterval(() => {
      const now = performance.now();
      if (v.currentTime !== mon.lastTime) {
        if (mon.started) mon.playedMs += (v.currentTime - mon.lastTime) * 1000;
        mon.started = mon.started || v.currentTime > 0;
        mon.lastTime = v.currentTime;
        mon.lastAdvance = now;
      } else if (mon.started && !v.paused) {
        mon.maxStallMs = Math.max(mon.maxStallMs, now - mon.lastAdvance);
      }
    }, 100);
  });
  return { page, logs, navigationStart };
}

/** Everything a test asserts on, read from one viewer page. */
export async function readViewer(viewer) {
  return viewer.page.evaluate(() => {
    const v = window.swarmcastViewer;
    return {
      // Null until the agent has started: count that as nothing received yet.
      stats: v.stats() ?? { httpBytes: 0, p2pDownBytes: 0, p2pUpBytes: 0, peers: 0 },
      segments: v.segments.map((s) => ({ rendition: s.rendition, msn: s.msn, sha256: s.sha256, bytes: s.bytes, url: s.url })),
      firstFrameMs: v.firstFrameMs,
      latency: { ...v.latency },
      appendSlack: { ...v.appendSlack },
      stalls: v.stalls,
      firstWindowS: v.firstWindowS,
      startHeldMs: v.startHeldMs,
      errors: v.errors,
      monitor: { ...window.__monitor },
      currentTime: document.querySelector('video').currentTime,
    };
  });
}

/**
 * Follows every media playlist of the stream from outside the browser and hashes each segment once,
 * so the test can check that what the agent handed to hls.js is byte-identical to the origin's.
 */
export function watchOrigin(masterUrl) {
  const digests = new Map(); // segment URL -> sha256 hex
  let stopped = false;
  const loop = async () => {
    while (!stopped) {
      try {
        const master = await (await fetch(masterUrl)).text();
        const variants = master.split('\n').filter((l) => l && !l.startsWith('#')).map((l) => new URL(l.trim(), masterUrl).href);
        for (const variant of variants) {
          const playlist = await (await fetch(variant)).text();
          for (const line of playlist.split('\n')) {
            if (!line || line.startsWith('#')) continue;
            const segUrl = new URL(line.trim(), variant).href;
            if (digests.has(segUrl)) continue;
            const resp = await fetch(segUrl);
            if (!resp.ok) continue;
            digests.set(segUrl, createHash('sha256').update(Buffer.from(await resp.arrayBuffer())).digest('hex'));
          }
        }
      } catch { /* the origin may be restarting; try again */ }
      await sleep(500);
    }
  };
  const done = loop();
  return { digests, stop: async () => { stopped = true; await done; } };
}

/** Fraction of a viewer's segment bytes that came from peers. */
export const offload = (s) => (s.p2pDownBytes + s.httpBytes === 0 ? 0 : s.p2pDownBytes / (s.p2pDownBytes + s.httpBytes));

/** Pid of a demo child process printed as `SWARMCAST_<NAME>_PID=` (e.g. `CDN_A`), or null. */
export function demoPid(demo, name) {
  const m = demo.output().match(new RegExp(`SWARMCAST_${name}_PID=(\\d+)`));
  return m ? Number(m[1]) : null;
}

/** How many resources (playlists and segments) a page fetched from each host:port so far. */
export async function fetchesByHost(viewer) {
  return viewer.page.evaluate(() => {
    const out = {};
    for (const e of performance.getEntriesByType('resource')) {
      const u = new URL(e.name);
      if (!/\.(ts|m4s|m3u8)$/.test(u.pathname)) continue;
      const kind = u.pathname.endsWith('.m3u8') ? 'playlist' : 'segment';
      out[u.host] ??= { playlist: 0, segment: 0 };
      out[u.host][kind]++;
    }
    return out;
  });
}

/**
 * Waits until the first variant of `masterUrl` lists at least `count` segments, so that viewers
 * join at hls.js's usual live latency rather than at the edge of a stream that just started.
 */
export async function waitForWindow(masterUrl, count) {
  const deadline = Date.now() + 60_000;
  for (;;) {
    try {
      const master = await (await fetch(masterUrl)).text();
      const variant = master.split('\n').find((l) => l && !l.startsWith('#'));
      const playlist = await (await fetch(new URL(variant.trim(), masterUrl))).text();
      if (playlist.split('\n').filter((l) => l.startsWith('#EXTINF')).length >= count) return;
    } catch { /* not up yet */ }
    if (Date.now() >= deadline) throw new Error('the live window never filled');
    await sleep(500);
  }
}
