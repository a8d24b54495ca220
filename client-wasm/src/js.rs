//! Small browser helpers: the clock, randomness, timers that cancel when dropped, console logs.

use wasm_bindgen::JsCast;
use wasm_bindgen::prelude::*;

#[wasm_bindgen]
extern "C" {
    #[wasm_bindgen(js_namespace = console, js_name = debug)]
    fn console_debug(s: &str);
}

/// Writes `msg` to the console with the agent's prefix.
pub(crate) fn log(msg: &str) {
    console_debug(&format!("[swarmcast] {msg}"));
}

/// Milliseconds on the page's monotonic clock (`performance.now()`), as the engine's `Millis`.
pub(crate) fn now_ms() -> u64 {
    let now = now_f64();
    // performance.now() is ≥ 0 and far below 2^53.
    if now > 0.0 { now as u64 } else { 0 }
}

/// `performance.now()` with its fraction, in ms; 0 outside a window.
pub(crate) fn now_f64() -> f64 {
    web_sys::window().and_then(|w| w.performance()).map_or(0.0, |p| p.now())
}

/// A uniform random number in [0, 1) (`Math.random`; not for secrets).
pub(crate) fn random() -> f64 {
    js_sys::Math::random()
}

/// A random id of 16 characters of `[A-Za-z0-9]`, for sessions without a peerId.
pub(crate) fn random_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
    (0..16)
        .map(|_| {
            // random() < 1, so the index is < ALPHABET.len().
            let i = (random() * ALPHABET.len() as f64) as usize;
            char::from(ALPHABET[i.min(ALPHABET.len() - 1)])
        })
        .collect()
}

/// A random 64-bit seed.
pub(crate) fn random_seed() -> u64 {
    // Two 32-bit draws; each product is < 2^32.
    let hi = (random() * 4_294_967_296.0) as u64;
    let lo = (random() * 4_294_967_296.0) as u64;
    (hi << 32) | lo
}

/// Resolves after `delay_ms` (`setTimeout`); at once outside a window.
pub(crate) async fn sleep(delay_ms: u32) {
    let promise = js_sys::Promise::new(&mut |resolve, _| {
        let ms = i32::try_from(delay_ms).unwrap_or(i32::MAX);
        let armed = web_sys::window()
            .and_then(|w| w.set_timeout_with_callback_and_timeout_and_arguments_0(&resolve, ms).ok())
            .is_some();
        if !armed {
            let _ = resolve.call0(&JsValue::NULL);
        }
    });
    let _ = wasm_bindgen_futures::JsFuture::from(promise).await;
}

/// A `setTimeout` or `setInterval` that is cleared when dropped.
pub(crate) struct Timer {
    handle: i32,
    repeat: bool,
    _callback: Closure<dyn FnMut()>,
}

impl Timer {
    /// Calls `f` once after `delay_ms`. `None` outside a window.
    pub(crate) fn once(delay_ms: u32, f: impl FnMut() + 'static) -> Option<Self> {
        Self::arm(delay_ms, false, f)
    }

    /// Calls `f` every `period_ms`. `None` outside a window.
    pub(crate) fn every(period_ms: u32, f: impl FnMut() + 'static) -> Option<Self> {
        Self::arm(period_ms, true, f)
    }

    fn arm(ms: u32, repeat: bool, f: impl FnMut() + 'static) -> Option<Self> {
        let window = web_sys::window()?;
        let callback = Closure::<dyn FnMut()>::new(f);
        let func = callback.as_ref().unchecked_ref();
        let ms = i32::try_from(ms).unwrap_or(i32::MAX);
        let handle = if repeat {
            window.set_interval_with_callback_and_timeout_and_arguments_0(func, ms)
        } else {
            window.set_timeout_with_callback_and_timeout_and_arguments_0(func, ms)
        }
        .ok()?;
        Some(Self { handle, repeat, _callback: callback })
    }
}

impl Drop for Timer {
    fn drop(&mut self) {
        if let Some(window) = web_sys::window() {
            if self.repeat {
                window.clear_interval_with_handle(self.handle);
            } else {
                window.clear_timeout_with_handle(self.handle);
            }
        }
    }
}
