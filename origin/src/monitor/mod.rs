//! The conformance checker: polls every media playlist of every pathway and reports what a
//! player would trip over (after Eyevinn's hls-monitor).
//!
//! [`run`] takes multivariant playlist URLs (a steered one lists each variant once per pathway;
//! variants are then keyed by `PATHWAY-ID` and `STABLE-VARIANT-ID`), polls each media playlist
//! every `poll_ms`, checks each new version against the previous one ([`check::compare`]), checks
//! that a sequence number names the same segment on every pathway, and flags a playlist that did
//! not change for longer than the stale limit (default 1.5 × target duration). `swarmcast
//! monitor URL…` prints the [`Report`].

pub mod check;
mod poll;

pub use check::{ErrorKind, Snapshot};
pub use poll::{Finding, MAX_FINDINGS, MonitorConfig, Report, run};
