//! What goes into the engine and what comes out of it.

use protocol::{PeerId, SegmentId};

/// Milliseconds on a monotonic clock with an arbitrary origin (`performance.now()` in the
/// browser, a virtual clock in the simulator). Every input carries one; the engine never reads a clock.
pub type Millis = u64;

/// One segment of a media playlist's live window (RFC 8216 §4.3.2.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SegmentInfo {
    /// Media sequence number (RFC 8216 §4.3.3.2).
    pub msn: u64,
    /// Start of the segment on the player's media timeline, in ms.
    pub start_ms: u64,
    /// Duration from `EXTINF`, in ms.
    pub duration_ms: u64,
    /// Absolute URL to fetch it from the CDN.
    pub url: String,
    /// Size in bytes, when known (e.g. from `EXT-X-BYTERANGE` or a digest sidecar).
    pub byte_len: Option<u64>,
}

/// An input to [`crate::Engine::handle_input`].
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// The media playlist of `rendition` was (re)loaded; `segments` is its whole live window.
    Playlist {
        /// Rendition: the variant's index in the multivariant playlist.
        rendition: u32,
        /// The window's segments, oldest first.
        segments: Vec<SegmentInfo>,
    },
    /// Where playback is. Sent on every `timeupdate` and on seek, rate change, play and pause.
    Playback {
        /// Playhead on the media timeline, in ms.
        position_ms: u64,
        /// Playback rate, 1.0 normally, 0 when paused or not started.
        rate: f64,
        /// End of the buffered range that holds the playhead, on the media timeline, in ms.
        buffered_end_ms: u64,
    },
    /// The player asks for a segment; answered with [`Output::Deliver`] or [`Output::PlayerFailed`].
    PlayerRequest {
        /// The segment.
        id: SegmentId,
    },
    /// The player no longer wants the segment it asked for.
    PlayerAbort {
        /// The segment.
        id: SegmentId,
    },
    /// Body bytes of an HTTP fetch started by [`Output::FetchHttp`], in order.
    HttpChunk {
        /// The segment.
        id: SegmentId,
        /// Offset of `bytes` within the segment.
        offset: u64,
        /// The bytes.
        bytes: Vec<u8>,
    },
    /// The HTTP fetch finished; `total_len` is the segment's full size in bytes.
    HttpDone {
        /// The segment.
        id: SegmentId,
        /// Full size of the segment, in bytes.
        total_len: u64,
    },
    /// The HTTP fetch failed (network error, or `status` when the server answered with an error).
    HttpFailed {
        /// The segment.
        id: SegmentId,
        /// HTTP status, when there was a response.
        status: Option<u16>,
    },
    /// The tracker offered these candidates for the current swarm.
    PeersDiscovered {
        /// Candidates, best first.
        peers: Vec<PeerId>,
    },
    /// The tracker counts `peers` viewers in our swarm (content and rendition), us included
    /// (`PeersResponse::swarm_peers`). With it the engine knows when every viewer of the swarm is
    /// a neighbour (a full mesh), where it asks for [`Output::ReloadPlaylist`].
    SwarmSize {
        /// Viewers in the swarm, us included.
        peers: u32,
    },
    /// A data channel to `peer` opened.
    PeerConnected {
        /// The peer.
        peer: PeerId,
    },
    /// The connection to `peer` closed or failed.
    PeerClosed {
        /// The peer.
        peer: PeerId,
    },
    /// A binary message arrived from `peer` on its data channel.
    PeerMessage {
        /// The peer.
        peer: PeerId,
        /// The message as received (one data channel message).
        bytes: Vec<u8>,
    },
}

/// An output from [`crate::Engine::poll_output`]: something the IO shell must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Fetch `url` over HTTP from byte `range_start` (a `Range: bytes=N-` request when not 0), and
    /// feed the body back as [`Input::HttpChunk`]s then [`Input::HttpDone`] or [`Input::HttpFailed`].
    FetchHttp {
        /// The segment.
        id: SegmentId,
        /// Its CDN URL.
        url: String,
        /// First byte wanted.
        range_start: u64,
    },
    /// Abort the HTTP fetch of `id`; no more inputs for it are expected.
    AbortHttp {
        /// The segment.
        id: SegmentId,
    },
    /// Send `bytes` as one binary message on the data channel to `peer` (at most 64 KiB).
    SendToPeer {
        /// The peer.
        peer: PeerId,
        /// The message.
        bytes: Vec<u8>,
    },
    /// Open a connection (SDP offer through signalling) to `peer`.
    Connect {
        /// The peer.
        peer: PeerId,
    },
    /// Close the connection to `peer`.
    Disconnect {
        /// The peer.
        peer: PeerId,
    },
    /// Ask the tracker for more candidates ([`Input::PeersDiscovered`] answers).
    RequestPeers,
    /// Load the media playlist of `rendition` again until it lists `msn` (poll it an eighth of
    /// a target duration after each answer, at least 250 ms, for at most one target duration +
    /// 1 s), and feed the version that lists it as [`Input::Playlist`]. Asked by the designated seeder of `msn` in a full mesh, so that it
    /// fetches the segment from the CDN when it is published rather than at the player's next
    /// reload, 0 to 1 target duration later (`engine/src/reload.rs`).
    ReloadPlaylist {
        /// The rendition whose media playlist to load.
        rendition: u32,
        /// The media sequence number to wait for.
        msn: u64,
    },
    /// Hand the player the whole segment it asked for.
    Deliver {
        /// The segment.
        id: SegmentId,
        /// Its bytes.
        bytes: Vec<u8>,
    },
    /// The segment the player asked for could not be had from any source.
    PlayerFailed {
        /// The segment.
        id: SegmentId,
    },
}

/// Where a segment's bytes came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The CDN, over HTTP.
    Http,
    /// Another peer, over a data channel.
    Peer,
}

/// Why the engine fetched a segment from the CDN (for [`Stats`]; one reason per fetch).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum CdnReason {
    /// Before playback starts, with no data channel open yet (a joiner's first segments).
    StartupAlone,
    /// Before playback starts, with channels open but no peer holding the segment whole.
    Startup,
    /// Seeding: the deliberate fetch of a new segment nobody around announced.
    Seed,
    /// Its deadline came while connected peers announced it but were busy (refused us, or
    /// were still waiting for their own source).
    DeadlineBusy,
    /// Its deadline came and no connected peer announced it.
    DeadlineAlone,
    /// Its deadline came after a peer transfer of it was given up (too slow, stalled, refused
    /// half-way, or its bytes were wrong).
    Retry,
    /// Its deadline came after the peer sending it left mid-transfer.
    Churn,
    /// The rest: a complete copy still unverified at its deadline, an old segment nobody holds,
    /// a refetch after corrupt bytes or a CDN length mismatch.
    Other,
}

impl CdnReason {
    /// Every reason, in the order of [`CdnReason::index`].
    pub const ALL: [Self; 8] = [
        Self::StartupAlone,
        Self::Startup,
        Self::Seed,
        Self::DeadlineBusy,
        Self::DeadlineAlone,
        Self::Retry,
        Self::Churn,
        Self::Other,
    ];

    /// Position in [`CdnReason::ALL`] and in the arrays of [`Stats`].
    #[must_use]
    pub const fn index(self) -> usize {
        self as usize
    }

    /// A short snake_case name (for tables and CSV columns), as usage reports carry it
    /// ([`protocol::api::CdnBytesByReason::NAMES`], in the same order).
    #[must_use]
    pub const fn name(self) -> &'static str {
        protocol::api::CdnBytesByReason::NAMES[self.index()]
    }
}

/// The engine's counters since it was created. Bytes are segment payload bytes.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Stats {
    /// Bytes received over HTTP.
    pub http_bytes: u64,
    /// Bytes received from peers.
    pub p2p_down_bytes: u64,
    /// Bytes sent to peers.
    pub p2p_up_bytes: u64,
    /// Peers with an open data channel now.
    pub peers_connected: u32,
    /// Copies of the stream our uplink carries, as last announced to peers (`Uplink`; 0 while
    /// not measured).
    pub announced_streams: u8,
    /// Whether we last told peers that we play at the live edge (and so seed first).
    pub at_live_edge: bool,
    /// Segments delivered to the player.
    pub segments_delivered: u64,
    /// Segments whose bytes from peers turned out wrong (length or digest) and were refetched.
    pub corrupt_segments: u64,
    /// CDN fetches started to seed the swarm with a new segment.
    pub cdn_seed_fetches: u64,
    /// CDN fetches started because peers could not deliver before the deadline.
    pub cdn_deadline_fetches: u64,
    /// Other CDN fetches (startup, old segments nobody holds, unverified copies, refetches).
    pub cdn_other_fetches: u64,
    /// Peer transfers split in two: a second peer was asked for the tail of a segment whose
    /// transfer would have missed its deadline.
    pub split_segments: u64,
    /// CDN fetches started, by [`CdnReason::index`].
    pub cdn_fetches_by_reason: [u64; 8],
    /// Bytes received over HTTP (and kept), by the [`CdnReason::index`] of the fetch that
    /// brought them; sums to `http_bytes`.
    pub cdn_bytes_by_reason: [u64; 8],
}
