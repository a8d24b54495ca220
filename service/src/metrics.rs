//! A Prometheus registry shared by a server's handlers and its `/metrics` endpoint.

use std::sync::{Arc, Mutex};

use prometheus_client::encoding::text::encode;
use prometheus_client::registry::{Metric, Registry};

/// A cloneable handle on one Prometheus registry (`prometheus-client`).
///
/// Register metrics once at startup with [`Metrics::register`]; keep the metric handles (they are
/// cheap `Arc`s) in the server's state and update them from handlers without touching the registry.
#[derive(Clone, Default)]
pub struct Metrics {
    /// The registry. Locked only to register and to render.
    pub registry: Arc<Mutex<Registry>>,
}

impl Metrics {
    /// Creates an empty registry.
    pub fn new() -> Self {
        Self::default()
    }

    /// Registers `metric` under `name` (counters get the `_total` suffix when rendered).
    pub fn register(&self, name: &str, help: &str, metric: impl Metric) {
        // A poisoned lock only means a panic elsewhere while registering; the registry is still usable.
        let mut registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        registry.register(name, help, metric);
    }

    /// Renders the registry in the Prometheus text exposition format.
    pub fn render(&self) -> String {
        let registry = self.registry.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &registry);
        out
    }
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Metrics")
    }
}
