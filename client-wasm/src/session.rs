//! The control plane (ARCHITECTURE.md §3): distributor config, tracker `init`/`track`/`peers`,
//! analytics usage reports. Every call has a timeout; a failure only turns off the part that
//! needed it (no config or no init: CDN-only; no analytics: no reports). Playback never waits.

use engine::{Engine, Input};
use js_sys::Reflect;
use protocol::PeerId;
use protocol::api::{
    ConfigResponse, InitRequest, InitResponse, PeersRequest, PeersResponse, RenewRequest, RenewResponse, TrackRequest,
    UsageReport,
};
use wasm_bindgen::JsValue;

use crate::driver::{self, Mode, ShellRef};
use crate::js::{self, Timer};
use crate::{http, signalling, wire};

/// Agent library version sent to the distributor.
const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Most peers the agent keeps, whatever the rules say.
const MAX_PEERS_CAP: u32 = 32;

/// Most candidates taken from one tracker answer.
const MAX_CANDIDATES: usize = 64;

/// Period of the `track` keep-alive, in ms. The tracker drops peers silent for a minute (its
/// `peer_timeout_s`), and `peers` calls stop once the engine has all the peers it wants.
const TRACK_KEEPALIVE_MS: u32 = 20_000;

/// Wait before trying a failed token renewal again, in ms.
const RENEW_RETRY_MS: u32 = 30_000;

/// The P2P session, once the tracker issued a peerId.
pub(crate) struct Session {
    /// The tracker's peerId for this agent.
    pub(crate) peer_id: PeerId,
    token: String,
    tracker_url: String,
    signalling_url: String,
    max_peers: u32,
    tracked: Option<u32>,
    track_in_flight: bool,
    peers_in_flight: bool,
    _keepalive: Option<Timer>,
    /// Renews `token` before it expires (`POST /v1/renew`).
    renewal: Option<Timer>,
}

/// Periodic usage reports to analytics. After a failed report the next ones are skipped for a
/// while (doubling up to a minute); counters are cumulative, so nothing is lost.
pub(crate) struct Reporting {
    url: String,
    session: String,
    seq: u64,
    in_flight: bool,
    failures: u32,
    skip_until_ms: u64,
    _timer: Option<Timer>,
}

/// Longest pause of reports after failures, in ms.
const MAX_REPORT_BACKOFF_MS: u64 = 60_000;

/// Runs the session setup: config, then init, then signalling. Resolves to the mode reached
/// (`p2p`, `cdn` or `destroyed`); never fails.
pub(crate) async fn start(shell: ShellRef) -> &'static str {
    let options = {
        let mut s = shell.borrow_mut();
        if s.started || s.mode == Mode::Destroyed {
            return s.mode.name();
        }
        s.started = true;
        s.options.clone()
    };
    let timeout = options.http_timeout_ms;
    let mut config = None;
    if !options.distributor_url.is_empty() {
        let url = wire::config_url(&options.distributor_url, &options.customer, &options.content, VERSION);
        match http::get_json::<ConfigResponse>(&url, timeout).await {
            Ok(c) => config = Some(c),
            Err(e) => shell.borrow().log(&format!("config: {e}; CDN only")),
        }
    }
    let mut init = None;
    if let Some(c) = config.as_ref().filter(|c| c.p2p_enabled && options.p2p && rtc_supported()) {
        let body = InitRequest {
            customer: options.customer.clone(),
            content: options.content.clone(),
            token: c.token.clone(),
            protocol_version: protocol::PROTOCOL_VERSION,
        };
        match http::post_json::<_, InitResponse>(&wire::endpoint(&c.tracker_url, "/v1/init"), &body, timeout).await {
            Ok(i) => init = Some(i),
            Err(e) => shell.borrow().log(&format!("init: {e}; CDN only")),
        }
    }
    if shell.borrow().mode == Mode::Destroyed {
        return Mode::Destroyed.name();
    }

    let rules = config.as_ref().map(|c| c.rules.clone()).unwrap_or_default();
    // The owner's `max_peers` caps the connections held at once: dial all but a third of it (at
    // most 4), kept for peers that dial us (16 → 12 + 4, the engine's defaults; 12 → 8 + 4).
    let cap = rules.max_peers.clamp(1, MAX_PEERS_CAP);
    let extra_incoming_peers = (cap / 3).min(4);
    let max_peers = cap - extra_incoming_peers;
    let engine_config = engine::Config {
        max_peers,
        extra_incoming_peers,
        upload_allowed: rules.upload_allowed && (rules.upload_on_cellular || !on_cellular()),
        seed: js::random_seed(),
        ..engine::Config::default()
    };
    let (local, mode) = match &init {
        Some(i) => (i.peer_id.clone(), Mode::P2p),
        #[allow(clippy::expect_used)]
        // Invariant: random_id() is 16 characters of [A-Za-z0-9], always a valid peerId.
        None => (js::random_id().parse().expect("random ids are valid peerIds"), Mode::Cdn),
    };
    {
        let mut s = shell.borrow_mut();
        if let Some(c) = &config {
            let session = init.as_ref().map_or_else(js::random_id, |i| i.peer_id.to_string());
            let weak = s.weak();
            let timer = Timer::every(options.report_interval_ms.max(100), move || {
                if let Some(shell) = weak.upgrade() {
                    send_report(&shell, false);
                }
            });
            let url = wire::endpoint(&c.analytics_url, "/v1/usage");
            s.reporting = Some(Reporting {
                url,
                session,
                seq: 0,
                in_flight: false,
                failures: 0,
                skip_until_ms: 0,
                _timer: timer,
            });
        }
        if let Some(i) = &init {
            let weak = s.weak();
            let keepalive = Timer::every(TRACK_KEEPALIVE_MS, move || {
                if let Some(shell) = weak.upgrade() {
                    track(&shell, true);
                }
            });
            s.session = Some(Session {
                peer_id: i.peer_id.clone(),
                token: i.token.clone(),
                tracker_url: config.as_ref().map(|c| c.tracker_url.clone()).unwrap_or_default(),
                signalling_url: config.as_ref().map(|c| c.signalling_url.clone()).unwrap_or_default(),
                max_peers,
                tracked: None,
                track_in_flight: false,
                peers_in_flight: false,
                _keepalive: keepalive,
                renewal: None,
            });
            s.peers.set_local(i.peer_id.clone(), max_peers);
        }
        if let Some(c) = config.as_ref().filter(|c| !c.digest_public_key.is_empty()) {
            s.digest_key = crate::digests::DigestKey::parse(&c.digest_public_key, &options.content);
        }
        s.log(&format!("session {} as {local}", mode.name()));
    }
    driver::install_engine(&shell, Engine::new(engine_config, local), mode);
    if let (Some(i), Some(c)) = (&init, &config) {
        signalling::open(&shell, wire::signalling_url(&c.signalling_url, i.peer_id.as_str(), &i.token));
        rendition_changed(&shell);
        schedule_renewal(&shell, wire::renewal_delay_ms(i.token_ttl_s));
    }
    mode.name()
}

/// Arms the token renewal `delay_ms` from now (none when `None`).
fn schedule_renewal(shell: &ShellRef, delay_ms: Option<u32>) {
    let mut s = shell.borrow_mut();
    let weak = s.weak();
    let Some(session) = s.session.as_mut() else { return };
    session.renewal = delay_ms.and_then(|delay| {
        Timer::once(delay, move || {
            if let Some(shell) = weak.upgrade() {
                renew(&shell);
            }
        })
    });
}

/// Gets a fresh token for the same peerId (`POST /v1/renew`): later tracker calls and signalling
/// reconnects use it, so a session outlives its first token. Retried every 30 s on failure; once
/// the tracker says the token is too old to renew, P2P winds down as calls start failing and
/// playback goes on over the CDN.
fn renew(shell: &ShellRef) {
    let (url, body, timeout) = {
        let s = shell.borrow();
        let Some(session) = s.session.as_ref() else { return };
        let body = RenewRequest { peer_id: session.peer_id.clone(), token: session.token.clone() };
        (wire::endpoint(&session.tracker_url, "/v1/renew"), body, s.options.http_timeout_ms)
    };
    let weak = shell.borrow().weak();
    wasm_bindgen_futures::spawn_local(async move {
        let answer = http::post_json::<_, RenewResponse>(&url, &body, timeout).await;
        let Some(shell) = weak.upgrade() else { return };
        let next = match answer {
            Ok(renewed) => {
                let mut s = shell.borrow_mut();
                let s = &mut *s;
                let Some(session) = s.session.as_mut() else { return };
                session.token = renewed.token;
                let url = wire::signalling_url(&session.signalling_url, session.peer_id.as_str(), &session.token);
                if let Some(sig) = s.signalling.as_mut() {
                    sig.set_url(url);
                }
                s.log("session token renewed");
                wire::renewal_delay_ms(renewed.token_ttl_s)
            }
            Err(http::HttpError::Status(401)) => {
                shell.borrow().log("session token can no longer be renewed");
                None
            }
            Err(e) => {
                shell.borrow().log(&format!("token renewal: {e}; retrying"));
                Some(RENEW_RETRY_MS)
            }
        };
        schedule_renewal(&shell, next);
    });
}

/// Tells the tracker the rendition the player now plays (`POST /v1/track`), then asks for
/// peers in that swarm. No-op without a P2P session or while a call is in flight.
pub(crate) fn rendition_changed(shell: &ShellRef) {
    track(shell, false);
}

/// Sends `track` when the rendition changed, or always with `keepalive`; after a change, asks
/// for peers in the new swarm.
fn track(shell: &ShellRef, keepalive: bool) {
    let (url, body, timeout, changed) = {
        let mut s = shell.borrow_mut();
        let Some(rendition) = s.counters.rendition else { return };
        let timeout = s.options.http_timeout_ms;
        let Some(session) = s.session.as_mut() else { return };
        let changed = session.tracked != Some(rendition);
        if session.track_in_flight || !(keepalive || changed) {
            return;
        }
        session.track_in_flight = true;
        let body = TrackRequest { peer_id: session.peer_id.clone(), token: session.token.clone(), rendition };
        (wire::endpoint(&session.tracker_url, "/v1/track"), body, timeout, changed)
    };
    let weak = shell.borrow().weak();
    wasm_bindgen_futures::spawn_local(async move {
        let ok = http::post(&url, &body, timeout, false).await.is_ok();
        let Some(shell) = weak.upgrade() else { return };
        let again = {
            let mut s = shell.borrow_mut();
            let current = s.counters.rendition;
            let Some(session) = s.session.as_mut() else { return };
            session.track_in_flight = false;
            if ok {
                session.tracked = Some(body.rendition);
            }
            ok && current != Some(body.rendition)
        };
        if ok && changed {
            request_peers(&shell);
        }
        if again {
            rendition_changed(&shell);
        }
    });
}

/// Asks the tracker for candidates (`POST /v1/peers`) and feeds them to the engine, after the
/// size of the swarm when the tracker counts it.
pub(crate) fn request_peers(shell: &ShellRef) {
    let (url, body, timeout, local) = {
        let mut s = shell.borrow_mut();
        let Some(rendition) = s.counters.rendition else { return };
        let timeout = s.options.http_timeout_ms;
        let Some(session) = s.session.as_mut() else { return };
        if session.peers_in_flight {
            return;
        }
        session.peers_in_flight = true;
        let body = PeersRequest {
            peer_id: session.peer_id.clone(),
            token: session.token.clone(),
            rendition,
            max: session.max_peers,
        };
        (wire::endpoint(&session.tracker_url, "/v1/peers"), body, timeout, session.peer_id.clone())
    };
    let weak = shell.borrow().weak();
    wasm_bindgen_futures::spawn_local(async move {
        let answer = http::post_json::<_, PeersResponse>(&url, &body, timeout).await;
        let Some(shell) = weak.upgrade() else { return };
        if let Some(session) = shell.borrow_mut().session.as_mut() {
            session.peers_in_flight = false;
        }
        let Ok(answer) = answer else { return };
        if !answer.intro.is_empty() {
            // Signalling relays offers only to peers the tracker introduced; this frame goes out
            // on the same socket before any offer the candidates lead to (or, while the socket
            // is not open yet, first thing when it opens).
            if let Some(sig) = shell.borrow_mut().signalling.as_mut() {
                sig.introduce(answer.intro);
            }
        }
        let peers: Vec<PeerId> = answer.peers.into_iter().filter(|p| *p != local).take(MAX_CANDIDATES).collect();
        shell.borrow().log(&format!("tracker offered {} peers", peers.len()));
        if let Some(peers) = answer.swarm_peers {
            driver::feed(&shell, Input::SwarmSize { peers });
        }
        if !peers.is_empty() {
            driver::feed(&shell, Input::PeersDiscovered { peers });
        }
    });
}

/// Sends the next cumulative usage report. Periodic reports skip while one is in flight;
/// `flush` always sends, with `keepalive` so it survives the page closing. The report is built
/// now, so `flush(); destroy()` still sends the final numbers.
pub(crate) fn send_report(shell: &ShellRef, flush: bool) -> Option<impl Future<Output = ()> + 'static> {
    let (url, report, timeout) = prepare_report(shell, flush)?;
    let weak = shell.borrow().weak();
    let fut = async move {
        let ok = http::post(&url, &report, timeout, flush).await.is_ok();
        let Some(shell) = weak.upgrade() else { return };
        let mut s = shell.borrow_mut();
        let interval = u64::from(s.options.report_interval_ms);
        let Some(r) = s.reporting.as_mut() else { return };
        r.in_flight = false;
        r.failures = if ok { 0 } else { r.failures.saturating_add(1) };
        let pause = interval.saturating_mul(1 << r.failures.min(10)).min(MAX_REPORT_BACKOFF_MS);
        r.skip_until_ms = if ok { 0 } else { js::now_ms() + pause };
    };
    if flush {
        return Some(fut);
    }
    wasm_bindgen_futures::spawn_local(fut);
    None
}

fn prepare_report(shell: &ShellRef, flush: bool) -> Option<(String, UsageReport, u32)> {
    let mut s = shell.borrow_mut();
    let counters = s.counters();
    let options = s.options.clone();
    let r = s.reporting.as_mut()?;
    if !flush && (r.in_flight || js::now_ms() < r.skip_until_ms) {
        return None;
    }
    r.in_flight = true;
    let report = wire::usage_report(&options, &r.session, r.seq, &counters);
    r.seq += 1;
    Some((r.url.clone(), report, options.http_timeout_ms))
}

/// Whether this browser has `RTCPeerConnection`.
fn rtc_supported() -> bool {
    Reflect::has(&js_sys::global(), &JsValue::from_str("RTCPeerConnection")).unwrap_or(false)
}

/// Whether the Network Information API says the connection is cellular (Chromium on Android).
fn on_cellular() -> bool {
    let get = |obj: &JsValue, key: &str| Reflect::get(obj, &JsValue::from_str(key)).ok();
    get(&js_sys::global(), "navigator")
        .and_then(|n| get(&n, "connection"))
        .and_then(|c| get(&c, "type"))
        .and_then(|t| t.as_string())
        .is_some_and(|t| t == "cellular")
}
