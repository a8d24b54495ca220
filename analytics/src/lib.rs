//! Analytics: usage reports and per-content offload summaries.
