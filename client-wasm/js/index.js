// @swarmcast/agent: the Swarmcast agent (WebAssembly) and its hls.js adapter.
//
// Media fragments of the main stream go through the agent, which gets them from peers or the
// CDN; everything else (playlists, init segments, keys, audio/subtitle tracks, byte ranges)
// stays on hls.js's own loader. If the agent cannot load, or every Swarmcast server is down,
// playback goes on over HTTP through the same loader.

import init, { Agent } from './pkg/swarmcast_client_wasm.js';

/** How often playback position is sent to the agent besides media events, in ms. */
const PLAYBACK_INTERVAL_MS = 250;
/** Assumed request latency when synthesizing load timings for ABR, in ms. */
const SYNTHETIC_LATENCY_MS = 10;

let modulePromise = null;

/**
 * Loads and instantiates the WebAssembly module once.
 * @param {string | URL} [wasmUrl] where `swarmcast_client_wasm_bg.wasm` is; next to the glue by default
 */
export function loadAgentModule(wasmUrl) {
  const url = wasmUrl ?? new URL('./pkg/swarmcast_client_wasm_bg.wasm', import.meta.url);
  modulePromise ??= init({ module_or_path: url });
  return modulePromise;
}

/**
 * Creates an agent and starts its session in the background (never waits for the servers).
 * @param {import('./index.js').AgentOptions} options
 * @returns {Promise<Agent>}
 */
export async function createAgent(options) {
  await loadAgentModule(options.wasmUrl);
  const { wasmUrl: _ignored, ...agentOptions } = options;
  const agent = new Agent(agentOptions);
  agent.started = agent.start();
  return agent;
}

/** Whether `frag` is one the agent serves: a whole main-stream media segment. */
export function isAgentFragment(context) {
  const frag = context && context.frag;
  return (
    !!frag &&
    frag.type === 'main' &&
    typeof frag.sn === 'number' &&
    Number.isInteger(frag.level) &&
    frag.level >= 0 &&
    !context.rangeEnd
  );
}

/**
 * The CDN pathways of a multivariant playlist (content steering), in `priority` order then the
 * playlist's: `[{ id, url }]` with one variant playlist URL per `PATHWAY-ID`.
 * @param {Array<{ url: string, attrs?: Record<string, string> }>} levels hls.js's parsed levels
 * @param {string[] | null} [priority] the steering manifest's `PATHWAY-PRIORITY`
 */
export function pathwaysOf(levels, priority) {
  const byId = new Map();
  for (const level of levels || []) {
    const id = level.attrs?.['PATHWAY-ID'];
    const url = Array.isArray(level.url) ? level.url[0] : level.url;
    if (id && typeof url === 'string' && !byId.has(id)) byId.set(id, url);
  }
  const order = [...(priority || []).filter((id) => byId.has(id)), ...byId.keys()];
  return [...new Set(order)].map((id) => ({ id, url: byId.get(id) }));
}

/** The agent's view of an hls.js level's fragments. */
export function segmentsOf(details) {
  const out = [];
  for (const f of details.fragments || []) {
    if (typeof f.sn !== 'number' || !f.url || f.byteRangeStartOffset !== undefined) continue;
    const start_ms = Math.max(0, Math.round(f.start * 1000));
    out.push({ msn: f.sn, start_ms, duration_ms: Math.max(0, Math.round(f.duration * 1000)), url: f.url });
  }
  return out;
}

function newStats() {
  return {
    aborted: false,
    // loaded === total stops hls.js's abandon rules, which would misread paced P2P delivery.
    loaded: 1,
    total: 1,
    retry: 0,
    chunkCount: 0,
    bwEstimate: 0,
    loading: { start: 0, first: 0, end: 0 },
    parsing: { start: 0, end: 0 },
    buffering: { start: 0, first: 0, end: 0 },
  };
}

/**
 * Returns an hls.js `fLoader` class that loads main media fragments through `agent`
 * (modeled on p2p-media-loader's fragment loader) and everything else with
 * `Hls.DefaultConfig.loader`. With `agent` null, every fragment uses the default loader.
 *
 * @param {Agent | null} agent
 * @param {typeof import('hls.js').default} Hls
 * When the agent fails a fragment, hls.js's default loader tries it once more (unless
 * `hooks.noFallback`), so an agent problem costs one extra request, never playback.
 *
 * @param {{ beforeLoad?: (frag: any) => void, onSegment?: (s: import('./index.js').SegmentEvent) => void, noFallback?: boolean }} [hooks]
 */
export function createFragmentLoader(agent, Hls, hooks = {}) {
  const DefaultLoader = Hls.DefaultConfig.loader;

  return class SwarmcastFragmentLoader {
    constructor(config) {
      this.hlsConfig = config;
      this.context = null;
      this.stats = newStats();
      this.fallback = null;
      this.callbacks = null;
      this.pending = null;
      this.timer = null;
    }

    load(context, config, callbacks) {
      this.context = context;
      if (!agent || agent.destroyed || !isAgentFragment(context)) {
        this.loadDefault(context, config, callbacks);
        return;
      }
      const frag = context.frag;
      hooks.beforeLoad?.(frag);
      const stats = this.stats;
      stats.loading.start = performance.now();
      const pending = { rendition: frag.level, msn: frag.sn };
      this.pending = pending;
      this.callbacks = callbacks;
      const timeoutMs = config.loadPolicy?.maxLoadTimeMs ?? config.timeout;
      if (Number.isFinite(timeoutMs) && timeoutMs > 0) {
        this.timer = setTimeout(() => {
          if (this.pending !== pending) return;
          this.cancel();
          callbacks.onTimeout(stats, context, null);
        }, timeoutMs);
      }
      agent.load(pending.rendition, pending.msn).then(
        (bytes) => {
          if (this.pending !== pending || this.callbacks !== callbacks) return;
          this.finish();
          const data =
            bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
              ? bytes.buffer
              : bytes.slice().buffer;
          this.fillStats(data.byteLength);
          // Before hls.js transfers (detaches) the buffer to its worker.
          hooks.onSegment?.({ rendition: pending.rendition, msn: pending.msn, url: context.url, data, source: 'agent' });
          callbacks.onProgress?.(stats, context, data, null);
          callbacks.onSuccess({ url: context.url, data }, stats, context, null);
        },
        (err) => {
          if (this.pending !== pending || this.callbacks !== callbacks) return;
          this.finish();
          if (hooks.noFallback) {
            callbacks.onError({ code: 0, text: String(err && err.message ? err.message : err) }, context, null, stats);
            return;
          }
          // The agent found no source: hls.js's own loader tries the CDN once more, and its
          // error (if any) goes through hls.js's usual retry rules.
          stats.loading.start = 0;
          this.loadDefault(context, config, callbacks);
        },
      );
    }

    // Loading timings for ABR: when the agent has measured CDN throughput, report the time the
    // segment would have taken at that rate, so that neither instant peer deliveries nor waits
    // for a peer make hls.js switch levels.
    fillStats(bytes) {
      const stats = this.stats;
      const end = performance.now();
      const bandwidth = agent.stats()?.bandwidthBps || 0;
      if (bandwidth > 0) {
        const first = Math.max(0, end - (bytes * 8000) / bandwidth);
        stats.loading.first = first;
        stats.loading.start = Math.max(0, first - SYNTHETIC_LATENCY_MS);
      } else {
        stats.loading.first = Math.max(stats.loading.start, end);
      }
      stats.loading.end = end;
      stats.loaded = bytes;
      stats.total = bytes;
      stats.chunkCount = 1;
    }

    loadDefault(context, config, callbacks) {
      const loader = new DefaultLoader(this.hlsConfig);
      // hls.js already holds this.stats as frag.stats; the default loader must fill the same object.
      this.stats.loaded = 0;
      this.stats.total = 0;
      loader.stats = this.stats;
      this.fallback = loader;
      let wrapped = callbacks;
      if (hooks.onSegment && isAgentFragment(context)) {
        const frag = context.frag;
        wrapped = {
          ...callbacks,
          onProgress: undefined,
          onSuccess: (response, stats, ctx, details) => {
            hooks.onSegment({ rendition: frag.level, msn: frag.sn, url: context.url, data: response.data, source: 'http' });
            callbacks.onProgress?.(stats, ctx, response.data, details);
            callbacks.onSuccess(response, stats, ctx, details);
          },
        };
      }
      loader.load(context, config, wrapped);
    }

    cancel() {
      const pending = this.pending;
      this.finish();
      if (pending) {
        this.stats.aborted = true;
        agent.abort(pending.rendition, pending.msn);
      }
    }

    finish() {
      this.pending = null;
      if (this.timer !== null) clearTimeout(this.timer);
      this.timer = null;
    }

    abort() {
      if (this.fallback) {
        this.fallback.abort();
        return;
      }
      const callbacks = this.callbacks;
      const hadPending = !!this.pending;
      this.cancel();
      if (hadPending) callbacks?.onAbort?.(this.stats, this.context, null);
    }

    destroy() {
      if (this.fallback) {
        this.fallback.destroy();
        this.fallback = null;
      } else {
        this.cancel();
      }
      this.callbacks = null;
    }
  };
}

/**
 * Wires an agent to an hls.js instance and its video element. Call it before
 * `hls.loadSource()`: it installs the fragment loader in `hls.config.fLoader`.
 *
 * Resolves to a handle even when the agent cannot be created (then playback is plain hls.js).
 *
 * @param {typeof import('hls.js').default} Hls
 * @param {import('hls.js').default} hls
 * @param {HTMLMediaElement} video
 * @param {import('./index.js').AttachOptions} options
 * @returns {Promise<import('./index.js').SwarmcastHandle>}
 */
export async function attachSwarmcast(Hls, hls, video, options) {
  const { onSegment, ...agentOptions } = options;
  let agent = null;
  try {
    agent = await createAgent(agentOptions);
  } catch (err) {
    console.warn('[swarmcast] agent unavailable, playing over HTTP only:', err);
  }

  const fed = new Map();
  const feedLevel = (level, details) => {
    if (!agent || agent.destroyed || !details || !Number.isInteger(level)) return;
    const key = `${details.startSN}/${details.endSN}/${details.fragments?.length}`;
    if (fed.get(level) === key) return;
    fed.set(level, key);
    try {
      agent.playlist(level, segmentsOf(details), details.url);
    } catch (err) {
      console.warn('[swarmcast] playlist refused:', err);
    }
  };
  const beforeLoad = (frag) => feedLevel(frag.level, hls.levels?.[frag.level]?.details);
  hls.config.fLoader = createFragmentLoader(agent, Hls, { beforeLoad, onSegment });

  const onLevel = (_event, data) => feedLevel(data.level, data.details);
  // Every pathway's variants, so that the agent can resume a failed download on another CDN.
  let parsedLevels = [];
  const feedPathways = (priority) => {
    const list = pathwaysOf(parsedLevels, priority);
    if (!agent || agent.destroyed || list.length < 2) return;
    try {
      agent.pathways(list);
    } catch (err) {
      console.warn('[swarmcast] pathways refused:', err);
    }
  };
  const onManifest = (_event, data) => {
    parsedLevels = data.levels || [];
    feedPathways(hls.pathwayPriority);
  };
  const onSteering = (_event, data) => feedPathways(data.steeringManifest?.['PATHWAY-PRIORITY']);
  let started = false;
  const sendPlayback = () => {
    if (!agent || agent.destroyed) return;
    const t = video.currentTime;
    let end = t;
    for (let i = 0; i < video.buffered.length; i++) {
      if (video.buffered.start(i) <= t + 0.1 && video.buffered.end(i) >= t) end = video.buffered.end(i);
    }
    const moving = !video.paused && video.readyState >= 3;
    agent.playback(t * 1000, moving ? video.playbackRate : 0, end * 1000);
  };
  const onPlaying = () => {
    started = true;
    sendPlayback();
  };
  const onWaiting = () => {
    if (started && agent && !agent.destroyed) agent.stall();
    sendPlayback();
  };
  const mediaEvents = ['timeupdate', 'seeking', 'seeked', 'ratechange', 'pause'];
  if (agent) {
    hls.on(Hls.Events.LEVEL_LOADED, onLevel);
    hls.on(Hls.Events.LEVEL_UPDATED, onLevel);
    hls.on(Hls.Events.MANIFEST_LOADED, onManifest);
    hls.on(Hls.Events.STEERING_MANIFEST_LOADED, onSteering);
    for (const e of mediaEvents) video.addEventListener(e, sendPlayback);
    video.addEventListener('playing', onPlaying);
    video.addEventListener('waiting', onWaiting);
  }
  const interval = agent ? setInterval(sendPlayback, PLAYBACK_INTERVAL_MS) : null;

  const handle = {
    agent,
    started: agent ? agent.started : Promise.resolve('unavailable'),
    stats() {
      return agent && !agent.destroyed ? agent.stats() : null;
    },
    flush() {
      return agent && !agent.destroyed ? agent.flush() : Promise.resolve();
    },
    destroy() {
      if (!agent || agent.destroyed) return;
      clearInterval(interval);
      hls.off(Hls.Events.LEVEL_LOADED, onLevel);
      hls.off(Hls.Events.LEVEL_UPDATED, onLevel);
      hls.off(Hls.Events.MANIFEST_LOADED, onManifest);
      hls.off(Hls.Events.STEERING_MANIFEST_LOADED, onSteering);
      for (const e of mediaEvents) video.removeEventListener(e, sendPlayback);
      video.removeEventListener('playing', onPlaying);
      video.removeEventListener('waiting', onWaiting);
      agent.destroy();
      agent.destroyed = true;
    },
  };
  return handle;
}

export { Agent };
