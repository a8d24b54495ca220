//! Shared server shell: config, tracing, /healthz, /metrics, graceful shutdown.
