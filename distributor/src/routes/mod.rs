//! One module per endpoint.

pub(crate) mod admin;
pub(crate) mod config;
