// Types of @swarmcast/agent.

/** What `new Agent(options)` and `createAgent(options)` take. */
export interface AgentOptions {
  /** Customer id, as configured in the distributor. */
  customer: string;
  /** Content id (one live stream). */
  content: string;
  /** Base URL of the distributor, e.g. `http://127.0.0.1:7000`; empty: CDN only. */
  distributor_url: string;
  /** Try P2P at all (default true). */
  p2p?: boolean;
  /** Timeout of every control-plane call, in ms (default 3000). */
  http_timeout_ms?: number;
  /** Period of usage reports, in ms (default 2000). */
  report_interval_ms?: number;
  /** Log session events to the console. */
  debug?: boolean;
  /** Where the `.wasm` file is (default: next to the glue in `pkg/`). Only for `createAgent`. */
  wasmUrl?: string | URL;
}

/** One segment of a live window, times on the media timeline. */
export interface AgentSegment {
  msn: number;
  start_ms: number;
  duration_ms: number;
  url: string;
  byte_len?: number;
}

/** What `agent.stats()` returns. Bytes are segment payload bytes since the agent started. */
export interface AgentStats {
  httpBytes: number;
  p2pDownBytes: number;
  p2pUpBytes: number;
  /** Peers with an open data channel. */
  peers: number;
  /** The tracker's peerId, null without a P2P session. */
  peerId: string | null;
  /** Rendition (level index) the player last asked for. */
  rendition: number | null;
  segmentsDelivered: number;
  stalls: number;
  /** Measured CDN throughput, in bits/s; 0 until measured. */
  bandwidthBps: number;
  mode: 'starting' | 'p2p' | 'cdn' | 'destroyed';
  /**
   * Media playlist loads the agent made itself: the viewer that fetches the next segment for a
   * full-mesh swarm polls the playlist until it lists it, rather than wait for hls.js's reload.
   */
  playlistPolls: number;
  /** Copies of the stream this viewer's measured uplink carries, as told to peers; 0 while not measured. */
  uplinkStreams: number;
  /** Whether this viewer plays at the live edge and so fetches each new segment for its peers first. */
  liveEdge: boolean;
  /**
   * The engine's CDN bytes by why they came from the CDN: a joiner's first segments before any
   * data channel (`startup_alone`) or with no peer holding them (`startup`), the one deliberate
   * fetch of a new segment (`seed`), a deadline reached while holders were busy
   * (`deadline_busy`) or with no holder (`deadline_alone`), a peer transfer given up (`retry`) or
   * cut by the peer leaving (`churn`), and the rest (`other`).
   */
  cdnBytesByReason: Record<'startup_alone' | 'startup' | 'seed' | 'deadline_busy' | 'deadline_alone' | 'retry' | 'churn' | 'other', number>;
}

/** The WebAssembly agent (see the crate docs). */
export declare class Agent {
  constructor(options: AgentOptions);
  /** Resolves to the mode reached; never rejects. */
  start(): Promise<'p2p' | 'cdn' | 'destroyed'>;
  playlist(rendition: number, segments: AgentSegment[], playlistUrl?: string): void;
  /**
   * CDN pathways in priority order, one variant playlist URL each. A segment download that
   * fails on one (no response or 5xx) resumes at once on the next; at most 16 are kept.
   */
  pathways(pathways: AgentPathway[]): void;
  playback(positionMs: number, rate: number, bufferedEndMs: number): void;
  load(rendition: number, msn: number): Promise<Uint8Array>;
  abort(rendition: number, msn: number): void;
  stall(): void;
  stats(): AgentStats;
  flush(): Promise<void>;
  destroy(): void;
  free(): void;
  /** Set by `createAgent`: the `start()` promise. */
  started?: Promise<string>;
  /** Set by `attachSwarmcast`'s `destroy()`. */
  destroyed?: boolean;
}

/** A segment handed to hls.js, seen before hls.js takes ownership of `data`. */
export interface SegmentEvent {
  rendition: number;
  msn: number;
  /** The URL hls.js asked for. */
  url: string;
  data: ArrayBuffer;
  /** `agent` (peers or CDN through the agent) or `http` (hls.js's own loader). */
  source: 'agent' | 'http';
}

export interface AttachOptions extends AgentOptions {
  /** Called for every media segment handed to hls.js; copy `data` if you keep it. */
  onSegment?: (segment: SegmentEvent) => void;
}

export interface SwarmcastHandle {
  /** Null when the agent could not be created (plain hls.js playback). */
  agent: Agent | null;
  /** The session setup: `p2p`, `cdn`, `destroyed` or `unavailable`. */
  started: Promise<string>;
  stats(): AgentStats | null;
  /** Sends the final usage report. */
  flush(): Promise<void>;
  destroy(): void;
}

export declare function loadAgentModule(wasmUrl?: string | URL): Promise<unknown>;
export declare function createAgent(options: AgentOptions): Promise<Agent>;
export declare function isAgentFragment(context: unknown): boolean;
/** One CDN pathway (`PATHWAY-ID`) and a variant playlist URL on it. */
export interface AgentPathway {
  id: string;
  url: string;
}
/** The pathways of hls.js's parsed levels, in `priority` order then the playlist's. */
export declare function pathwaysOf(
  levels: Array<{ url: string | string[]; attrs?: Record<string, string> }>,
  priority?: string[] | null,
): AgentPathway[];
export declare function segmentsOf(details: { fragments?: unknown[] }): AgentSegment[];
/** An hls.js `fLoader` class routing main media fragments through `agent`. */
export declare function createFragmentLoader(
  agent: Agent | null,
  Hls: { DefaultConfig: { loader: unknown } },
  hooks?: { beforeLoad?: (frag: unknown) => void; onSegment?: (segment: SegmentEvent) => void; noFallback?: boolean },
): new (config: unknown) => unknown;
/** Installs the loader on `hls` (call before `loadSource`) and feeds the agent playlists and playback. */
export declare function attachSwarmcast(
  Hls: unknown,
  hls: unknown,
  video: HTMLMediaElement,
  options: AttachOptions,
): Promise<SwarmcastHandle>;
