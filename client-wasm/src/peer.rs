//! WebRTC peers: one `RTCPeerConnection` with one ordered binary data channel per peer.
//!
//! Setup goes through signalling: offer, answer, trickled ICE (candidates that arrive before the
//! remote description are queued). Glare (both sides offer at once): the peer with the lower
//! peerId keeps its offer; the other drops its own connection and answers. Sending is paced by
//! `bufferedAmount`: above 1 MiB queued in the browser, messages wait in our queue until
//! `bufferedamountlow` (threshold 256 KiB). No ICE servers: host candidates only.
//!
//! The engine hears `PeerConnected` when a channel opens and `PeerClosed` when a connection it
//! knows of (it asked for it, or its channel opened) closes, fails or times out.

use engine::Input;
use js_sys::{ArrayBuffer, Uint8Array};
use protocol::PeerId;
use protocol::peer::Message;
use protocol::signal::{ClientMessage, Signal};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use wasm_bindgen_futures::JsFuture;
use web_sys::{
    MessageEvent, RtcConfiguration, RtcDataChannel, RtcDataChannelEvent, RtcDataChannelInit, RtcDataChannelType,
    RtcIceCandidateInit, RtcPeerConnection, RtcPeerConnectionIceEvent, RtcPeerConnectionState, RtcSdpType,
    RtcSessionDescriptionInit,
};

use crate::driver::{self, ShellRef};
use crate::js::Timer;
use crate::outbox::{LOW_WATER_BYTES, Outbox, UplinkMeter};
use crate::sdp;
use crate::signalling::Signalling;
use crate::vec_map::VecMap;

/// Largest data channel message accepted, in bytes (the peer protocol's bound).
const MAX_MESSAGE_BYTES: u32 = protocol::peer::MAX_MESSAGE_BYTES as u32;
/// Most ICE candidates queued before the remote description is set.
const MAX_PENDING_ICE: usize = 64;
/// How long a connection may take to open its channel, in ms.
const CONNECT_TIMEOUT_MS: u32 = 15_000;
/// Label of the data channel.
const CHANNEL_LABEL: &str = "swarmcast";
/// Type byte of a peer protocol cancel.
const CANCEL_TYPE: u8 = 5;

type Handler = Closure<dyn FnMut(JsValue)>;

/// All peer connections of the agent.
#[derive(Default)]
pub(crate) struct Peers {
    local: Option<PeerId>,
    max_conns: usize,
    conns: VecMap<PeerId, Conn>,
    next_id: u64,
    meter: UplinkMeter,
}

impl Peers {
    /// Sets this agent's peerId and how many connections it accepts (twice the engine's
    /// `max_peers`, so that the engine, not a race of inbound offers, picks whom to keep).
    pub(crate) fn set_local(&mut self, local: PeerId, max_peers: u32) {
        self.local = Some(local);
        self.max_conns = usize::try_from(max_peers).unwrap_or(usize::MAX).saturating_mul(2).max(2);
    }
}

struct Conn {
    id: u64,
    pc: RtcPeerConnection,
    dc: Option<RtcDataChannel>,
    offerer: bool,
    remote_set: bool,
    open: bool,
    engine_knows: bool,
    pending_ice: Vec<RtcIceCandidateInit>,
    outbox: Outbox,
    handlers: Vec<Handler>,
    _timeout: Option<Timer>,
}

impl Conn {
    fn teardown(&mut self) {
        self.pc.set_onicecandidate(None);
        self.pc.set_onconnectionstatechange(None);
        self.pc.set_ondatachannel(None);
        if let Some(dc) = &self.dc {
            dc.set_onopen(None);
            dc.set_onclose(None);
            dc.set_onmessage(None);
            dc.set_onbufferedamountlow(None);
            dc.close();
        }
        self.pc.close();
        self.handlers.clear();
    }

    /// Sends what waits while the channel has room; returns how many bytes went in.
    fn flush(&mut self) -> Result<usize, JsValue> {
        let Some(dc) = self.dc.as_ref().filter(|_| self.open) else { return Ok(0) };
        self.outbox.flush(dc)
    }
}

/// `peer` cancelled a request: the chunks answering it that still wait in our queue are dropped
/// (the engine sends nothing more for it), so its downlink and our uplink carry no dead bytes.
fn purge_cancelled(shell: &ShellRef, peer: &PeerId, cancel: &[u8]) {
    let Ok(Message::Cancel { id, request_id }) = Message::decode(cancel) else { return };
    if let Some(conn) = shell.borrow_mut().peers.conns.get_mut(peer) {
        conn.outbox.purge(id, request_id);
    }
}

/// Samples the uplink (see [`UplinkMeter::sample`]): throughput in bytes/s (0 if not measured
/// this time) and bytes waiting to be sent.
pub(crate) fn uplink_sample(shell: &ShellRef, now_ms: f64) -> (u64, u64) {
    let mut s = shell.borrow_mut();
    let peers = &mut s.peers;
    let backlog: f64 = peers.conns.iter().map(|(_, c)| c.outbox.backlog(c.dc.as_ref())).sum();
    peers.meter.sample(now_ms, backlog)
}

/// The engine wants a connection to `peer`: offer one unless there is one already.
pub(crate) fn connect(shell: &ShellRef, peer: PeerId) {
    {
        let mut s = shell.borrow_mut();
        if s.peers.local.is_none() {
            return;
        }
        if let Some(conn) = s.peers.conns.get_mut(&peer) {
            conn.engine_knows = true;
            return;
        }
    }
    let Some((id, pc)) = new_conn(shell, &peer, true) else {
        driver::feed(shell, Input::PeerClosed { peer });
        return;
    };
    let init = RtcDataChannelInit::new();
    init.set_ordered(true);
    let dc = pc.create_data_channel_with_data_channel_dict(CHANNEL_LABEL, &init);
    attach_channel(shell, &peer, id, dc);
    let weak = shell.borrow().weak();
    wasm_bindgen_futures::spawn_local(async move {
        let result = sdp::make_offer(&pc).await;
        let Some(shell) = weak.upgrade() else { return };
        match result {
            Ok(sdp) if is_current(&shell, &peer, id) => relay(&shell, &peer, Signal::Offer { sdp }),
            Ok(_) => {}
            Err(_) => drop_conn(&shell, &peer, id, true),
        }
    });
}

/// The engine no longer wants `peer`: close quietly and say bye.
pub(crate) fn disconnect(shell: &ShellRef, peer: &PeerId) {
    let Some(mut conn) = shell.borrow_mut().peers.conns.remove(peer) else { return };
    conn.teardown();
    relay(shell, peer, Signal::Bye);
}

/// Closes every connection (on destroy), saying bye through `signalling` while it is open.
pub(crate) fn close_all(shell: &ShellRef, signalling: Option<&Signalling>) {
    let conns = std::mem::take(&mut shell.borrow_mut().peers.conns);
    for (peer, mut conn) in conns {
        conn.teardown();
        if let Some(sig) = signalling {
            sig.send(&ClientMessage::Relay { to: peer, signal: Signal::Bye });
        }
    }
}

/// Sends one engine message to `peer`, queueing it while the channel is full or not yet open.
/// Control messages (announcements, requests, refusals) pass the segment data still queued, so
/// that a busy uplink does not delay what steers the swarm.
pub(crate) fn send(shell: &ShellRef, peer: &PeerId, bytes: Vec<u8>) {
    let failed = {
        let mut s = shell.borrow_mut();
        let peers = &mut s.peers;
        let Some(conn) = peers.conns.get_mut(peer) else { return };
        if !conn.outbox.push(bytes) {
            Some(conn.id)
        } else {
            match conn.flush() {
                Ok(sent) => {
                    peers.meter.sent(sent);
                    None
                }
                Err(_) => Some(conn.id),
            }
        }
    };
    if let Some(id) = failed {
        drop_conn(shell, peer, id, true);
    }
}

/// A signal from `from` arrived through signalling.
pub(crate) fn on_signal(shell: &ShellRef, from: PeerId, signal: Signal) {
    match signal {
        Signal::Offer { sdp } => on_offer(shell, from, sdp),
        Signal::Answer { sdp } => on_answer(shell, from, sdp),
        Signal::Candidate { candidate, sdp_mid, sdp_m_line_index } => {
            let init = RtcIceCandidateInit::new(&candidate);
            init.set_sdp_mid(sdp_mid.as_deref());
            init.set_sdp_m_line_index(sdp_m_line_index);
            let mut s = shell.borrow_mut();
            let Some(conn) = s.peers.conns.get_mut(&from) else { return };
            if conn.remote_set {
                sdp::add_candidate(&conn.pc, &init);
            } else if conn.pending_ice.len() < MAX_PENDING_ICE {
                conn.pending_ice.push(init);
            }
        }
        Signal::Bye => {
            let id = shell.borrow().peers.conns.get(&from).map(|c| c.id);
            if let Some(id) = id {
                drop_conn(shell, &from, id, true);
            }
        }
    }
}

/// Signalling could not deliver to `to`: a connection still being set up with it is dead.
pub(crate) fn on_undeliverable(shell: &ShellRef, to: &PeerId) {
    let id = shell.borrow().peers.conns.get(to).filter(|c| !c.open).map(|c| c.id);
    if let Some(id) = id {
        drop_conn(shell, to, id, true);
    }
}

fn on_offer(shell: &ShellRef, from: PeerId, sdp: String) {
    let replaced = {
        let mut s = shell.borrow_mut();
        let Some(local) = s.peers.local.clone() else { return };
        let glare_we_win = s.peers.conns.get(&from).is_some_and(|c| c.offerer && !c.remote_set && local < from);
        if glare_we_win {
            // Glare: the lower peerId keeps its own offer and ignores this one.
            return;
        }
        let full = !s.peers.conns.contains_key(&from) && s.peers.conns.len() >= s.peers.max_conns;
        if full {
            drop(s);
            relay(shell, &from, Signal::Bye);
            return;
        }
        s.peers.conns.remove(&from).map(|mut old| {
            old.teardown();
            (old.engine_knows, old.open)
        })
    };
    let created = new_conn(shell, &from, false);
    if let Some((engine_knew, was_open)) = replaced {
        if was_open {
            // The open connection this offer replaces is a closed one, for the engine.
            driver::feed(shell, Input::PeerClosed { peer: from.clone() });
        } else if engine_knew && let Some(conn) = shell.borrow_mut().peers.conns.get_mut(&from) {
            conn.engine_knows = true;
        }
    }
    let Some((id, pc)) = created else { return };
    let weak = shell.borrow().weak();
    wasm_bindgen_futures::spawn_local(async move {
        let on_remote = || {
            if let Some(shell) = weak.upgrade() {
                remote_description_set(&shell, &from, id);
            }
        };
        let result = sdp::answer(&pc, &sdp, on_remote).await;
        let Some(shell) = weak.upgrade() else { return };
        match result {
            Ok(sdp) if is_current(&shell, &from, id) => relay(&shell, &from, Signal::Answer { sdp }),
            Ok(_) => {}
            Err(_) => drop_conn(&shell, &from, id, true),
        }
    });
}

fn on_answer(shell: &ShellRef, from: PeerId, sdp: String) {
    let (id, pc) = {
        let s = shell.borrow();
        let Some(conn) = s.peers.conns.get(&from).filter(|c| c.offerer && !c.remote_set) else { return };
        (conn.id, conn.pc.clone())
    };
    let weak = shell.borrow().weak();
    wasm_bindgen_futures::spawn_local(async move {
        let desc = RtcSessionDescriptionInit::new(RtcSdpType::Answer);
        desc.set_sdp(&sdp);
        let result = JsFuture::from(pc.set_remote_description(&desc)).await;
        let Some(shell) = weak.upgrade() else { return };
        match result {
            Ok(_) => remote_description_set(&shell, &from, id),
            Err(_) => drop_conn(&shell, &from, id, true),
        }
    });
}

/// Adds the ICE candidates that waited for the remote description.
fn remote_description_set(shell: &ShellRef, peer: &PeerId, id: u64) {
    let mut s = shell.borrow_mut();
    let Some(conn) = s.peers.conns.get_mut(peer).filter(|c| c.id == id) else { return };
    conn.remote_set = true;
    for init in std::mem::take(&mut conn.pending_ice) {
        sdp::add_candidate(&conn.pc, &init);
    }
}

/// Creates a connection to `peer` with its handlers and timeout, and registers it.
fn new_conn(shell: &ShellRef, peer: &PeerId, offerer: bool) -> Option<(u64, RtcPeerConnection)> {
    let config = RtcConfiguration::new();
    config.set_ice_servers(&js_sys::Array::new());
    let pc = RtcPeerConnection::new_with_configuration(&config).ok()?;
    let mut s = shell.borrow_mut();
    s.peers.next_id += 1;
    let id = s.peers.next_id;
    let weak = s.weak();

    let (w, p) = (weak.clone(), peer.clone());
    let on_ice = Handler::new(move |event: JsValue| {
        let Some(candidate) = event.unchecked_into::<RtcPeerConnectionIceEvent>().candidate() else { return };
        let line = candidate.candidate();
        let Some(shell) = w.upgrade().filter(|sh| !line.is_empty() && is_current(sh, &p, id)) else { return };
        let signal = Signal::Candidate {
            candidate: line,
            sdp_mid: candidate.sdp_mid(),
            sdp_m_line_index: candidate.sdp_m_line_index(),
        };
        relay(&shell, &p, signal);
    });
    let (w, p, pc2) = (weak.clone(), peer.clone(), pc.clone());
    let on_state = Handler::new(move |_: JsValue| {
        let state = pc2.connection_state();
        if matches!(state, RtcPeerConnectionState::Failed | RtcPeerConnectionState::Closed)
            && let Some(shell) = w.upgrade()
        {
            drop_conn(&shell, &p, id, true);
        }
    });
    let (w, p) = (weak.clone(), peer.clone());
    let on_channel = Handler::new(move |event: JsValue| {
        let dc = event.unchecked_into::<RtcDataChannelEvent>().channel();
        if let Some(shell) = w.upgrade().filter(|sh| is_current(sh, &p, id)) {
            attach_channel(&shell, &p, id, dc);
        }
    });
    pc.set_onicecandidate(Some(on_ice.as_ref().unchecked_ref()));
    pc.set_onconnectionstatechange(Some(on_state.as_ref().unchecked_ref()));
    if !offerer {
        pc.set_ondatachannel(Some(on_channel.as_ref().unchecked_ref()));
    }
    let (w, p) = (weak, peer.clone());
    let timeout = Timer::once(CONNECT_TIMEOUT_MS, move || {
        let Some(shell) = w.upgrade() else { return };
        let stalled = shell.borrow().peers.conns.get(&p).is_some_and(|c| c.id == id && !c.open);
        if stalled {
            drop_conn(&shell, &p, id, true);
        }
    });
    let conn = Conn {
        id,
        pc: pc.clone(),
        dc: None,
        offerer,
        remote_set: false,
        open: false,
        engine_knows: offerer,
        pending_ice: Vec::new(),
        outbox: Outbox::default(),
        handlers: vec![on_ice, on_state, on_channel],
        _timeout: timeout,
    };
    if let Some(mut old) = s.peers.conns.insert(peer.clone(), conn) {
        old.teardown();
    }
    Some((id, pc))
}

/// Wires the data channel's events to the engine.
fn attach_channel(shell: &ShellRef, peer: &PeerId, id: u64, dc: RtcDataChannel) {
    dc.set_binary_type(RtcDataChannelType::Arraybuffer);
    dc.set_buffered_amount_low_threshold(LOW_WATER_BYTES);
    let weak = shell.borrow().weak();

    let (w, p) = (weak.clone(), peer.clone());
    let on_open = Handler::new(move |_: JsValue| {
        let Some(shell) = w.upgrade() else { return };
        let failed = {
            let mut s = shell.borrow_mut();
            let Some(conn) = s.peers.conns.get_mut(&p).filter(|c| c.id == id) else { return };
            conn.open = true;
            conn.engine_knows = true;
            conn._timeout = None;
            let failed = match conn.flush() {
                Ok(sent) => {
                    s.peers.meter.sent(sent);
                    false
                }
                Err(_) => true,
            };
            s.log(&format!("peer {p} connected"));
            failed
        };
        driver::feed(&shell, Input::PeerConnected { peer: p.clone() });
        if failed {
            drop_conn(&shell, &p, id, true);
        }
    });
    let (w, p) = (weak.clone(), peer.clone());
    let on_close = Handler::new(move |_: JsValue| {
        if let Some(shell) = w.upgrade() {
            drop_conn(&shell, &p, id, true);
        }
    });
    let (w, p) = (weak.clone(), peer.clone());
    let on_message = Handler::new(move |event: JsValue| {
        let Some(shell) = w.upgrade().filter(|sh| is_current(sh, &p, id)) else { return };
        let Ok(buffer) = event.unchecked_into::<MessageEvent>().data().dyn_into::<ArrayBuffer>() else { return };
        if buffer.byte_length() > MAX_MESSAGE_BYTES {
            drop_conn(&shell, &p, id, true);
            return;
        }
        let bytes = Uint8Array::new(&buffer).to_vec();
        if bytes.get(1) == Some(&CANCEL_TYPE) {
            purge_cancelled(&shell, &p, &bytes);
        }
        driver::feed(&shell, Input::PeerMessage { peer: p.clone(), bytes });
    });
    let (w, p) = (weak, peer.clone());
    let on_low = Handler::new(move |_: JsValue| {
        let Some(shell) = w.upgrade() else { return };
        let failed = {
            let mut s = shell.borrow_mut();
            let Some(conn) = s.peers.conns.get_mut(&p).filter(|c| c.id == id) else { return };
            match conn.flush() {
                Ok(sent) => {
                    s.peers.meter.sent(sent);
                    false
                }
                Err(_) => true,
            }
        };
        if failed {
            drop_conn(&shell, &p, id, true);
        }
    });
    dc.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    dc.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    dc.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    dc.set_onbufferedamountlow(Some(on_low.as_ref().unchecked_ref()));
    let mut s = shell.borrow_mut();
    let Some(conn) = s.peers.conns.get_mut(peer).filter(|c| c.id == id) else {
        dc.close();
        return;
    };
    conn.handlers.extend([on_open, on_close, on_message, on_low]);
    conn.dc = Some(dc);
}

fn is_current(shell: &ShellRef, peer: &PeerId, id: u64) -> bool {
    shell.borrow().peers.conns.get(peer).is_some_and(|c| c.id == id)
}

/// Removes connection `id` to `peer` if it is still the current one; with `notify`, tells the
/// engine (when it knew of it) and the peer.
fn drop_conn(shell: &ShellRef, peer: &PeerId, id: u64, notify: bool) {
    let removed = {
        let mut s = shell.borrow_mut();
        match s.peers.conns.get(peer) {
            Some(c) if c.id == id => s.peers.conns.remove(peer),
            _ => return,
        }
    };
    let Some(mut conn) = removed else { return };
    conn.teardown();
    shell.borrow().log(&format!("peer {peer} closed (was open: {})", conn.open));
    if !notify {
        return;
    }
    relay(shell, peer, Signal::Bye);
    if conn.engine_knows || conn.open {
        driver::feed(shell, Input::PeerClosed { peer: peer.clone() });
    }
}

/// Sends `signal` to `to` through signalling, if it is up.
fn relay(shell: &ShellRef, to: &PeerId, signal: Signal) {
    let s = shell.borrow();
    if let Some(sig) = s.signalling.as_ref() {
        sig.send(&ClientMessage::Relay { to: to.clone(), signal });
    }
}
