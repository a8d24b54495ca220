//! Running a server in-process on an ephemeral loopback port, for tests and in-process setups.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr};
use std::pin::Pin;
use std::task::{Context, Poll};

use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// A server started by [`spawn_on_loopback`]; dropping the handle starts the server's graceful
/// shutdown.
#[derive(Debug)]
pub struct LoopbackServer {
    addr: SocketAddr,
    _stop: oneshot::Sender<()>,
}

impl LoopbackServer {
    /// The address the server listens on (`127.0.0.1` and the port the OS picked).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The server's base URL, `http://127.0.0.1:<port>`, without a trailing slash.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// The shutdown future handed to a server started by [`spawn_on_loopback`]: resolves when its
/// [`LoopbackServer`] is dropped.
#[derive(Debug)]
pub struct StopSignal(oneshot::Receiver<()>);

impl Future for StopSignal {
    type Output = ();

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<()> {
        // The sender is never used to send: only its drop ends the wait, which reads as an error.
        Pin::new(&mut self.0).poll(cx).map(|_| ())
    }
}

/// Binds `127.0.0.1:0` and spawns `run(listener, stop)` on the current Tokio runtime, where `run`
/// is a server's `run` with its config bound, e.g.
/// `spawn_on_loopback(|listener, stop| my_server::run(config, listener, stop))`.
///
/// The server is accepting connections when this returns (the listener is bound before). An
/// error returned by `run`, such as an invalid config, is logged.
///
/// # Errors
/// IO errors from binding the listener.
pub async fn spawn_on_loopback<F, Fut>(run: F) -> std::io::Result<LoopbackServer>
where
    F: FnOnce(TcpListener, StopSignal) -> Fut,
    Fut: Future<Output = std::io::Result<()>> + Send + 'static,
{
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await?;
    let addr = listener.local_addr()?;
    let (stop, stopped) = oneshot::channel();
    let server = run(listener, StopSignal(stopped));
    tokio::spawn(async move {
        if let Err(error) = server.await {
            tracing::error!(%addr, %error, "server stopped with an error");
        }
    });
    Ok(LoopbackServer { addr, _stop: stop })
}

#[cfg(test)]
mod tests {
    use axum::Router;

    use super::*;
    use crate::{Metrics, serve};

    #[tokio::test]
    async fn serves_until_the_handle_is_dropped() {
        let (done, finished) = oneshot::channel();
        let server = spawn_on_loopback(|listener, stop| async move {
            let result = serve(listener, Router::new(), Metrics::new(), stop).await;
            let _ = done.send(());
            result
        })
        .await
        .unwrap();
        let health = reqwest::get(format!("{}/healthz", server.url())).await.unwrap();
        assert_eq!(health.status(), 200);
        drop(server);
        finished.await.unwrap();
    }
}
