//! The signalling websocket (ARCHITECTURE.md §3 step 4): JSON `ClientMessage`/`ServerMessage`
//! text frames, kept open for the whole session. It reconnects after a loss with exponential
//! backoff and jitter, and pings every 20 s so idle proxies keep it open. Data channels that
//! are already open do not depend on it.

use protocol::signal::{CLOSE_REPLACED, ClientMessage, ServerMessage};
use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;
use web_sys::{CloseEvent, MessageEvent, WebSocket};

use crate::driver::ShellRef;
use crate::js::{self, Timer};
use crate::{peer, wire};

/// Keep-alive period, in ms.
const PING_INTERVAL_MS: u32 = 20_000;

/// Most recent tracker introductions kept to send again on every (re)connect.
const MAX_KEPT_INTROS: usize = 8;

/// The websocket client and its reconnect state.
pub(crate) struct Signalling {
    url: String,
    ws: Option<WebSocket>,
    open: bool,
    attempt: u32,
    generation: u64,
    closed: bool,
    handlers: Vec<Closure<dyn FnMut(JsValue)>>,
    ping: Option<Timer>,
    retry: Option<Timer>,
    /// The newest tracker introductions, oldest first: signalling relays only between peers it
    /// was introduced to on this connection, so a fresh socket gets them all again.
    intros: std::collections::VecDeque<String>,
}

/// Opens the signalling connection to `url` (credentials already in its query).
pub(crate) fn open(shell: &ShellRef, url: String) {
    shell.borrow_mut().signalling = Some(Signalling {
        url,
        ws: None,
        open: false,
        attempt: 0,
        generation: 0,
        closed: false,
        handlers: Vec::new(),
        ping: None,
        retry: None,
        intros: std::collections::VecDeque::new(),
    });
    connect(shell);
}

impl Signalling {
    /// Presents a tracker introduction ([`protocol::intro`]) before any offer to the peers it
    /// names: now if the socket is open, and again after every reconnect.
    pub(crate) fn introduce(&mut self, intro: String) {
        if self.intros.len() == MAX_KEPT_INTROS {
            self.intros.pop_front();
        }
        self.send(&ClientMessage::Introduce { intro: intro.clone() });
        self.intros.push_back(intro);
    }

    /// Sets the URL of later reconnects (a renewed token); the open socket stays.
    pub(crate) fn set_url(&mut self, url: String) {
        self.url = url;
    }

    /// Sends `msg` if the socket is open; false when it could not be sent.
    pub(crate) fn send(&self, msg: &ClientMessage) -> bool {
        let (Some(ws), true) = (&self.ws, self.open) else { return false };
        let Ok(text) = serde_json::to_string(msg) else { return false };
        ws.send_with_str(&text).is_ok()
    }

    /// Closes the socket for good (no reconnect).
    pub(crate) fn close(&mut self) {
        self.closed = true;
        self.retry = None;
        self.teardown();
    }

    fn teardown(&mut self) {
        self.open = false;
        self.ping = None;
        if let Some(ws) = self.ws.take() {
            ws.set_onopen(None);
            ws.set_onmessage(None);
            ws.set_onclose(None);
            let _ = ws.close();
        }
        self.handlers.clear();
    }

    fn schedule_retry(&mut self, shell: &ShellRef) {
        if self.closed {
            return;
        }
        let delay = wire::backoff_ms(self.attempt, js::random());
        self.attempt = self.attempt.saturating_add(1);
        let weak = shell.borrow().weak();
        self.retry = Timer::once(delay, move || {
            if let Some(shell) = weak.upgrade() {
                connect(&shell);
            }
        });
    }
}

fn connect(shell: &ShellRef) {
    let mut guard = shell.borrow_mut();
    let weak = guard.weak();
    let debug = guard.options.debug;
    let Some(sig) = guard.signalling.as_mut() else { return };
    if sig.closed {
        return;
    }
    sig.teardown();
    sig.generation += 1;
    let generation = sig.generation;
    let Ok(ws) = WebSocket::new(&sig.url) else {
        drop(guard);
        retry(shell);
        return;
    };

    let w = weak.clone();
    let on_open = Closure::<dyn FnMut(JsValue)>::new(move |_: JsValue| {
        let Some(shell) = w.upgrade() else { return };
        let mut s = shell.borrow_mut();
        let weak = s.weak();
        let Some(sig) = s.signalling.as_mut().filter(|sig| sig.generation == generation) else { return };
        sig.open = true;
        sig.attempt = 0;
        for intro in &sig.intros {
            sig.send(&ClientMessage::Introduce { intro: intro.clone() });
        }
        sig.ping = Timer::every(PING_INTERVAL_MS, move || {
            let Some(shell) = weak.upgrade() else { return };
            if let Some(sig) = shell.borrow().signalling.as_ref() {
                sig.send(&ClientMessage::Ping);
            }
        });
        if debug {
            js::log("signalling open");
        }
    });
    let w = weak.clone();
    let on_message = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let Some(shell) = w.upgrade() else { return };
        let current = shell.borrow().signalling.as_ref().is_some_and(|sig| sig.generation == generation);
        let Some(text) = event.unchecked_into::<MessageEvent>().data().as_string() else { return };
        if !current {
            return;
        }
        match ServerMessage::parse(&text) {
            Ok(ServerMessage::Relay { from, signal }) => peer::on_signal(&shell, from, signal),
            Ok(ServerMessage::Undeliverable { to, .. }) => peer::on_undeliverable(&shell, &to),
            Ok(ServerMessage::Error { reason }) => shell.borrow().log(&format!("signalling refused a frame: {reason}")),
            Ok(ServerMessage::Pong) => {}
            Err(e) => shell.borrow().log(&format!("bad signalling frame: {e}")),
        }
    });
    let w = weak;
    let on_close = Closure::<dyn FnMut(JsValue)>::new(move |event: JsValue| {
        let Some(shell) = w.upgrade() else { return };
        let current = shell.borrow().signalling.as_ref().is_some_and(|sig| sig.generation == generation);
        if !current {
            return;
        }
        let code = event.unchecked_into::<CloseEvent>().code();
        if code == CLOSE_REPLACED {
            // Another connection speaks for this peerId now; reconnecting would evict it in turn.
            shell.borrow().log("signalling replaced by a newer connection");
            if let Some(sig) = shell.borrow_mut().signalling.as_mut() {
                sig.close();
            }
            return;
        }
        shell.borrow().log(&format!("signalling closed ({code}); reconnecting"));
        retry(&shell);
    });
    ws.set_onopen(Some(on_open.as_ref().unchecked_ref()));
    ws.set_onmessage(Some(on_message.as_ref().unchecked_ref()));
    ws.set_onclose(Some(on_close.as_ref().unchecked_ref()));
    sig.handlers = vec![on_open, on_message, on_close];
    sig.ws = Some(ws);
}

/// Drops the current socket and schedules the next attempt.
fn retry(shell: &ShellRef) {
    let Some(mut sig) = shell.borrow_mut().signalling.take() else { return };
    sig.teardown();
    sig.schedule_retry(shell);
    let mut s = shell.borrow_mut();
    // Put it back unless destroy() closed signalling meanwhile (it takes the field).
    if s.signalling.is_none() && s.mode != crate::driver::Mode::Destroyed {
        s.signalling = Some(sig);
    }
}
