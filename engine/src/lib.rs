//! Sans-IO P2P engine: decides which segment to get from whom and when.
//!
//! The engine never touches a clock, a socket or the browser. Its shell feeds it [`Input`]s
//! with the current time, then drains [`Output`]s and sleeps until [`Engine::poll_timeout`]:
//!
//! ```ignore
//! engine.handle_input(now, input);
//! while let Some(out) = engine.poll_output() { shell.perform(out); }
//! if let Some(at) = engine.poll_timeout() { shell.wake_at(at); } // then engine.handle_timeout(at)
//! ```
#![deny(missing_docs)]
#![cfg_attr(test, allow(clippy::unwrap_used))]

mod io;

pub use io::{Input, Millis, Output, SegmentInfo, Source, Stats};
mod config;
mod engine;

pub use config::Config;
pub use engine::Engine;
