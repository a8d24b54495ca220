//! Distributor: per-customer and per-content P2P configuration.
