//! The single loop around the engine: feed an input with `now = performance.now()`, drain
//! `poll_output()` performing each output, then arm one `setTimeout` at `poll_timeout()`.
//!
//! All state lives in one [`Shell`] behind `Rc<RefCell<_>>`. Browser callbacks hold a `Weak`
//! to it, borrow it briefly, and never call back into the page while it is borrowed: the only
//! calls made under a borrow (`send`, `close`, resolving promises, arming timers) never run
//! page code synchronously.

use std::cell::RefCell;
use std::rc::{Rc, Weak};

use engine::{Engine, Input, Millis, Output, SegmentInfo};
use js_sys::{Function, Promise};
use protocol::SegmentId;
use wasm_bindgen::JsValue;

use crate::downloads::{self, Fetch};
use crate::http;
use crate::js::{self, Timer};
use crate::pathways::Pathways;
use crate::peer::Peers;
use crate::reload::Reloads;
use crate::session::{self, Reporting, Session};
use crate::signalling::Signalling;
use crate::vec_map::VecMap;
use crate::wire::{AgentOptions, Counters};

/// Shared handle to the shell state.
pub(crate) type ShellRef = Rc<RefCell<Shell>>;

/// Most distinct segments the player may wait for at once; more are refused.
const MAX_PENDING_LOADS: usize = 64;

/// Most renditions whose playlists (and playlist URLs) are kept.
pub(crate) const MAX_RENDITIONS: usize = 32;

/// Where the agent is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// `start()` has not finished: segments are fetched directly over HTTP.
    Starting,
    /// The engine runs with a tracker peerId and P2P.
    P2p,
    /// The engine runs alone: CDN only.
    Cdn,
    /// `destroy()` was called.
    Destroyed,
}

impl Mode {
    /// The name shown in `stats().mode`.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Self::Starting => "starting",
            Self::P2p => "p2p",
            Self::Cdn => "cdn",
            Self::Destroyed => "destroyed",
        }
    }
}

/// One `load()` promise waiting for its segment.
struct Pending {
    resolve: Function,
    reject: Function,
}

/// Everything the agent holds.
pub(crate) struct Shell {
    pub(crate) options: AgentOptions,
    pub(crate) mode: Mode,
    pub(crate) started: bool,
    pub(crate) engine: Option<Engine>,
    pub(crate) counters: Counters,
    pub(crate) session: Option<Session>,
    pub(crate) reporting: Option<Reporting>,
    pub(crate) signalling: Option<Signalling>,
    pub(crate) peers: Peers,
    pub(crate) playlists: VecMap<u32, Vec<SegmentInfo>>,
    /// Playlist URLs and the early reloads polling them.
    pub(crate) reloads: Reloads,
    last_playback: Option<Input>,
    loads: VecMap<SegmentId, Vec<Pending>>,
    /// Downloads the engine asked for.
    pub(crate) http: VecMap<SegmentId, Fetch>,
    /// Downloads made before the engine existed, straight to the player.
    pub(crate) direct: VecMap<SegmentId, Fetch>,
    pub(crate) next_generation: u64,
    /// The CDN pathways segments can be fetched from, for failover.
    pub(crate) pathways: Pathways,
    timer: Option<(Millis, Timer)>,
    /// Samples the uplink for the engine.
    uplink_timer: Option<Timer>,
    /// The origin's digest key, when the distributor published one.
    pub(crate) digest_key: Option<crate::digests::DigestKey>,
    weak: Weak<RefCell<Shell>>,
}

/// How often the uplink is measured, in ms.
const UPLINK_SAMPLE_MS: u32 = 500;

impl Shell {
    /// Creates the shell; it plays over plain HTTP until [`install_engine`].
    pub(crate) fn new(options: AgentOptions) -> ShellRef {
        Rc::new_cyclic(|weak| {
            RefCell::new(Self {
                options,
                mode: Mode::Starting,
                started: false,
                engine: None,
                counters: Counters::default(),
                session: None,
                reporting: None,
                signalling: None,
                peers: Peers::default(),
                playlists: VecMap::default(),
                reloads: Reloads::default(),
                last_playback: None,
                loads: VecMap::default(),
                http: VecMap::default(),
                direct: VecMap::default(),
                next_generation: 0,
                pathways: Pathways::default(),
                timer: None,
                uplink_timer: None,
                digest_key: None,
                weak: weak.clone(),
            })
        })
    }

    /// A weak handle to this shell, for callbacks.
    pub(crate) fn weak(&self) -> Weak<RefCell<Shell>> {
        self.weak.clone()
    }

    /// Logs when the page asked for debug logs.
    pub(crate) fn log(&self, msg: &str) {
        if self.options.debug {
            js::log(msg);
        }
    }

    /// Counters with the engine's latest numbers folded in.
    pub(crate) fn counters(&self) -> Counters {
        let mut c = self.counters.clone();
        if let Some(engine) = &self.engine {
            c.engine = engine.stats().clone();
        }
        c
    }
}

/// Feeds `input` to the engine (if there is one) and performs what follows.
pub(crate) fn feed(shell: &ShellRef, input: Input) {
    {
        let mut s = shell.borrow_mut();
        let Some(engine) = s.engine.as_mut() else { return };
        engine.handle_input(js::now_ms(), input);
    }
    drive(shell);
}

/// Installs the engine, replays what the page already told the shell, and starts the loop.
pub(crate) fn install_engine(shell: &ShellRef, engine: Engine, mode: Mode) {
    {
        let mut s = shell.borrow_mut();
        let now = js::now_ms();
        let mut engine = engine;
        for (&rendition, segments) in s.playlists.iter() {
            engine.handle_input(now, Input::Playlist { rendition, segments: segments.clone() });
        }
        if let Some(playback) = s.last_playback.clone() {
            engine.handle_input(now, playback);
        }
        s.engine = Some(engine);
        s.mode = mode;
        if mode == Mode::P2p {
            let weak = s.weak();
            s.uplink_timer = Timer::every(UPLINK_SAMPLE_MS, move || {
                if let Some(shell) = weak.upgrade() {
                    sample_uplink(&shell);
                }
            });
        }
    }
    drive(shell);
}

/// Tells the engine what the uplink carries now (see [`crate::peer::uplink_sample`]).
fn sample_uplink(shell: &ShellRef) {
    let (rate, queued) = crate::peer::uplink_sample(shell, js::now_f64());
    {
        let mut s = shell.borrow_mut();
        let Some(engine) = s.engine.as_mut() else { return };
        engine.handle_uplink(js::now_ms(), rate, queued);
    }
    drive(shell);
}

/// Performs what the engine asked for after a direct call on it (outside [`feed`]).
pub(crate) fn drive_now(shell: &ShellRef) {
    drive(shell);
}

/// Drains the engine's outputs, performing each, then re-arms the timer.
fn drive(shell: &ShellRef) {
    loop {
        let outputs: Vec<Output> = {
            let mut s = shell.borrow_mut();
            let Some(engine) = s.engine.as_mut() else { return };
            std::iter::from_fn(|| engine.poll_output()).collect()
        };
        if outputs.is_empty() {
            break;
        }
        for out in outputs {
            perform(shell, out);
        }
    }
    arm_timer(shell);
}

fn perform(shell: &ShellRef, out: Output) {
    match out {
        Output::FetchHttp { id, url, range_start } => downloads::start(shell, id, &url, range_start, false),
        Output::AbortHttp { id } => {
            if let Some(fetch) = shell.borrow_mut().http.remove(&id) {
                fetch.abort();
            }
        }
        Output::SendToPeer { peer, bytes } => crate::peer::send(shell, &peer, bytes),
        Output::Connect { peer } => crate::peer::connect(shell, peer),
        Output::Disconnect { peer } => crate::peer::disconnect(shell, &peer),
        Output::RequestPeers => session::request_peers(shell),
        Output::Deliver { id, bytes } => settle(shell, id, Ok(&bytes)),
        Output::PlayerFailed { id } => settle(shell, id, Err("segment unavailable")),
        Output::ReloadPlaylist { rendition, msn } => crate::reload::start(shell, rendition, msn),
    }
}

fn arm_timer(shell: &ShellRef) {
    let mut s = shell.borrow_mut();
    let next = s.engine.as_ref().and_then(Engine::poll_timeout);
    if s.timer.as_ref().map(|(at, _)| *at) == next {
        return;
    }
    s.timer = None;
    let Some(at) = next else { return };
    let delay = u32::try_from(at.saturating_sub(js::now_ms())).unwrap_or(u32::MAX);
    let weak = s.weak();
    let timer = Timer::once(delay, move || {
        let Some(shell) = weak.upgrade() else { return };
        {
            let mut s = shell.borrow_mut();
            s.timer = None;
            let Some(engine) = s.engine.as_mut() else { return };
            engine.handle_timeout(js::now_ms());
        }
        drive(&shell);
    });
    s.timer = timer.map(|t| (at, t));
}

/// Records the window of `rendition` and tells the engine.
pub(crate) fn playlist(shell: &ShellRef, rendition: u32, segments: Vec<SegmentInfo>) {
    {
        let mut s = shell.borrow_mut();
        if s.playlists.len() >= MAX_RENDITIONS && !s.playlists.contains_key(&rendition) {
            return;
        }
        s.playlists.insert(rendition, segments.clone());
    }
    feed(shell, Input::Playlist { rendition, segments });
}

/// Records where playback is and tells the engine.
pub(crate) fn playback(shell: &ShellRef, input: Input) {
    shell.borrow_mut().last_playback = Some(input.clone());
    feed(shell, input);
}

/// The player asks for segment `id`; the promise resolves with its bytes (`Uint8Array`).
pub(crate) fn load(shell: &ShellRef, id: SegmentId) -> Promise {
    let mut pending = None;
    let promise = Promise::new(&mut |resolve, reject| pending = Some(Pending { resolve, reject }));
    // Promise::new runs its executor synchronously, so `pending` is set here.
    let Some(pending) = pending else { return promise };
    let (first, engine, rendition_changed) = {
        let mut s = shell.borrow_mut();
        if s.mode == Mode::Destroyed || (s.loads.len() >= MAX_PENDING_LOADS && !s.loads.contains_key(&id)) {
            let _ = pending.reject.call1(&JsValue::NULL, &http::js_error("agent unavailable"));
            return promise;
        }
        let list = s.loads.get_or_default(id);
        list.push(pending);
        let first = list.len() == 1;
        let changed = s.counters.rendition != Some(id.rendition);
        s.counters.rendition = Some(id.rendition);
        (first, s.engine.is_some(), changed)
    };
    if rendition_changed {
        session::rendition_changed(shell);
    }
    if first {
        if engine {
            feed(shell, Input::PlayerRequest { id });
        } else {
            downloads::start_direct(shell, id);
        }
    }
    promise
}

/// The player gave up on `id`: its promises reject and its download stops.
pub(crate) fn abort(shell: &ShellRef, id: SegmentId) {
    let had = {
        let mut s = shell.borrow_mut();
        if let Some(fetch) = s.direct.remove(&id) {
            fetch.abort();
        }
        s.loads.remove(&id)
    };
    let Some(list) = had else { return };
    for p in list {
        let _ = p.reject.call1(&JsValue::NULL, &http::js_error("aborted"));
    }
    feed(shell, Input::PlayerAbort { id });
}

pub(crate) fn settle(shell: &ShellRef, id: SegmentId, result: Result<&[u8], &str>) {
    let Some(list) = shell.borrow_mut().loads.remove(&id) else { return };
    for p in list {
        let _ = match result {
            Ok(bytes) => p.resolve.call1(&JsValue::NULL, &http::to_uint8_array(bytes)),
            Err(msg) => p.reject.call1(&JsValue::NULL, &http::js_error(msg)),
        };
    }
}

/// Stops everything: downloads, peers, signalling, timers; pending loads reject.
pub(crate) fn destroy(shell: &ShellRef) {
    let (loads, signalling) = {
        let mut s = shell.borrow_mut();
        s.mode = Mode::Destroyed;
        s.timer = None;
        s.uplink_timer = None;
        s.reporting = None;
        s.session = None;
        for (_, f) in std::mem::take(&mut s.http).into_iter().chain(std::mem::take(&mut s.direct)) {
            f.abort();
        }
        (std::mem::take(&mut s.loads), s.signalling.take())
    };
    crate::peer::close_all(shell, signalling.as_ref());
    if let Some(mut signalling) = signalling {
        signalling.close();
    }
    {
        let mut s = shell.borrow_mut();
        if let Some(engine) = s.engine.take() {
            s.counters.engine = engine.stats().clone();
        }
    }
    for (_, list) in loads {
        for p in list {
            let _ = p.reject.call1(&JsValue::NULL, &http::js_error("agent destroyed"));
        }
    }
}
