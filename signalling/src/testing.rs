//! A throwaway `redis-server` for tests and benchmarks of a signalling cluster.

use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// A `redis-server` child on a free loopback port, without persistence; killed on drop.
#[derive(Debug)]
pub struct LocalRedis {
    child: Child,
    url: String,
}

impl LocalRedis {
    /// Starts `redis-server` and waits (up to 5 s) until it accepts connections. `None` when
    /// `redis-server` is not installed (or does not come up), so callers can skip.
    pub async fn start() -> Option<Self> {
        // redis-server does not take port 0: borrow a free port from the kernel and release it.
        let port = std::net::TcpListener::bind("127.0.0.1:0").ok()?.local_addr().ok()?.port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .ok()?;
        let redis = Self { child, url: format!("redis://127.0.0.1:{port}") };
        for _ in 0..100 {
            if tokio::net::TcpStream::connect(("127.0.0.1", port)).await.is_ok() {
                return Some(redis);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        None
    }

    /// The `redis://` URL to hand to [`crate::Config::broker_url`].
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Process id of the `redis-server` child (for its memory in benchmarks).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for LocalRedis {
    fn drop(&mut self) {
        // The child may already have exited; there is nothing else to do then.
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Decodes `payload` as a node decodes what arrives on its broker channel, and checks that an
/// envelope that decodes encodes and decodes back to itself; returns whether it decoded. For the
/// fuzz target of the broker decoder.
///
/// # Panics
/// When a decoded envelope does not survive encoding (a bug in the envelope's encoding).
pub fn check_broker_payload(payload: &[u8]) -> bool {
    let Some(envelope) = crate::broker::Envelope::decode(payload) else { return false };
    let again = envelope.encode();
    assert_eq!(crate::broker::Envelope::decode(&again).as_ref(), Some(&envelope), "an envelope must survive encoding");
    true
}
