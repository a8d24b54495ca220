//! Engine settings. Units are in the names.

/// Tunables of the engine; [`Config::default`] is what the agent ships with.
#[derive(Debug, Clone, PartialEq)]
pub struct Config {
    /// Most peers to keep connected (or connecting) by dialling. 12 rather than 8: more
    /// neighbours agree on more of the seeding order (fewer duplicate seeds in a partial mesh)
    /// and make swarms of up to 17 a full mesh (simulator, `docs/BENCHMARKS.md`, "Neighbours").
    pub max_peers: u32,
    /// Peers that dial us are still accepted while we have fewer than `max_peers` plus this
    /// many open channels, so that a joiner finds room in a swarm where everyone already has
    /// `max_peers` (we never dial beyond `max_peers`).
    pub extra_incoming_peers: u32,
    /// Whether this peer uploads to others.
    pub upload_allowed: bool,
    /// Largest data channel message sent, in bytes (segment data travels in chunks this size or
    /// smaller). Clamped to 1 KiB..=[`protocol::peer::MAX_MESSAGE_BYTES`].
    pub max_message_bytes: usize,
    /// Safety margin subtracted from a segment's play time to get its deadline, in ms. A
    /// segment goes to the CDN when the deadline minus the measured time an HTTP fetch of its
    /// missing bytes takes has come.
    pub deadline_margin_ms: u64,
    /// Seed of the engine's random choices (the engine is deterministic given its inputs and seed).
    pub seed: u64,
    /// A peer download with no chunk for this long is given up and resumed elsewhere, in ms.
    pub p2p_idle_timeout_ms: u64,
    /// How often to ask the tracker for candidates while below `max_peers`, in ms.
    pub peer_request_interval_ms: u64,
    /// A `Connect` that has not produced `PeerConnected` after this long is abandoned, in ms.
    pub connect_timeout_ms: u64,
    /// A peer that closed or failed is not dialled again for this long, in ms.
    pub reconnect_backoff_ms: u64,
    /// Wait per seeding rank before a peer that is not the designated seeder of a new segment
    /// fetches it from the CDN itself when no peer announced it, in ms. In a full mesh with
    /// `early_reload` the wait is at least the designated seeder's playlist poll interval
    /// ([`crate::playlist_poll_interval_ms`]) + 300 ms.
    pub seed_grace_ms: u64,
    /// Our uplink, in bytes/s, when known in advance (0: unknown until the shell measures it).
    pub uplink_bytes_per_s: u64,
    /// CDN throughput assumed until fetches were measured, in bytes/s.
    pub http_prior_bytes_per_s: u64,
    /// Stream bitrate assumed until segments were seen (to guess a segment's size), in bytes/s.
    pub stream_prior_bytes_per_s: u64,
    /// A request is served only if our uplink can send it, after what it already owes, within
    /// this share of the segment's duration, in percent.
    pub upload_budget_pct: u32,
    /// Segments announced by peers and not yet in our playlist are fetched ahead (from those
    /// peers) up to this many segments past our playlist's newest, in segments.
    pub prefetch_ahead_segments: u64,
    /// Segments kept after they leave the live window, for peers that lag behind, in segments.
    pub keep_behind_window: u64,
    /// Most complete segments kept in memory, in segments (the oldest go first).
    pub max_stored_segments: usize,
    /// How long a joiner's first segment may wait for peers, in ms from the player's first
    /// request: until then it comes from a peer that holds it or relays it (asked as soon as one
    /// announces it), after that the CDN fetches what is still missing (`Range` from the bytes
    /// held), so startup takes at most this plus one CDN fetch. 0 fetches it from the CDN at
    /// once unless a connected peer already holds it whole. Not applied when the tracker
    /// answered with no candidate, nor after the first segment was delivered (a stall).
    pub startup_peer_wait_ms: u64,
    /// Whether the designated seeder of the next segment, in a full mesh, asks the shell to load
    /// the playlist until it lists that segment ([`crate::Output::ReloadPlaylist`]).
    pub early_reload: bool,
    /// Whether a peer at the live edge announces it, so that neighbours let it seed first
    /// (`Uplink`'s live-edge flag; see `rank::Seeder`). Off: it never claims the live edge.
    pub live_edge_first: bool,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            max_peers: 12,
            extra_incoming_peers: 4,
            upload_allowed: true,
            max_message_bytes: 64 * 1024,
            deadline_margin_ms: 500,
            seed: 0,
            p2p_idle_timeout_ms: 1_500,
            peer_request_interval_ms: 5_000,
            connect_timeout_ms: 10_000,
            reconnect_backoff_ms: 30_000,
            seed_grace_ms: 500,
            uplink_bytes_per_s: 0,
            http_prior_bytes_per_s: 500_000,
            stream_prior_bytes_per_s: 500_000,
            upload_budget_pct: 65,
            prefetch_ahead_segments: 3,
            keep_behind_window: 3,
            max_stored_segments: 30,
            startup_peer_wait_ms: 0,
            early_reload: true,
            live_edge_first: true,
        }
    }
}
