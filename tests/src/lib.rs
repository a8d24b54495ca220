//! Holds no code: this package exists for its cross-crate tests.
//!
//! `tests/session.rs` runs the distributor, tracker, signalling and analytics in-process on
//! `127.0.0.1:0` and walks a viewing session through all of them (ARCHITECTURE.md §3);
//! `e2e/` drives the whole demo in headless Chromium. Run with `cargo test -p swarmcast-tests`.
