//! Serving the tracker over TLS (https and wss) with rustls, for deployments without a TLS
//! proxy in front and for the WebTorrent load tester, which only speaks wss.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::{self, ServerConfig};
use tokio_rustls::server::TlsStream;

/// Longest TLS handshake accepted, in seconds.
const HANDSHAKE_TIMEOUT_S: u64 = 10;

/// Handshakes finished but not yet taken by the server, at most.
const BACKLOG: usize = 1024;

/// Builds the TLS acceptor from PEM files (certificate chain, private key).
///
/// # Errors
/// A text saying which file could not be read or used.
pub(crate) fn acceptor(cert_pem: &str, key_pem: &str) -> Result<TlsAcceptor, String> {
    let read = |path: &str| std::fs::read(path).map_err(|e| format!("{path}: {e}"));
    let certs = rustls_pemfile::certs(&mut read(cert_pem)?.as_slice())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("{cert_pem}: {e}"))?;
    let key = rustls_pemfile::private_key(&mut read(key_pem)?.as_slice())
        .map_err(|e| format!("{key_pem}: {e}"))?
        .ok_or_else(|| format!("{key_pem}: no private key"))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| format!("{cert_pem}: {e}"))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// A listener whose connections are TLS streams: a task accepts TCP connections and runs each
/// handshake on its own task, so a slow client does not hold up the others.
pub(crate) struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    addr: SocketAddr,
}

impl TlsListener {
    /// Starts accepting on `listener` with `acceptor`.
    ///
    /// # Errors
    /// When the listener's address cannot be read.
    /// `send_buffer_bytes` above 0 sets each connection's kernel send buffer (`SO_SNDBUF`).
    pub(crate) fn new(listener: TcpListener, acceptor: TlsAcceptor, send_buffer_bytes: usize) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(BACKLOG);
        tokio::spawn(async move {
            while !tx.is_closed() {
                let (tcp, peer) = match listener.accept().await {
                    Ok(accepted) => accepted,
                    Err(error) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(%error, "accept failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                if send_buffer_bytes > 0 {
                    let _ = socket2::SockRef::from(&tcp).set_send_buffer_size(send_buffer_bytes);
                }
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    let handshake =
                        tokio::time::timeout(Duration::from_secs(HANDSHAKE_TIMEOUT_S), acceptor.accept(tcp));
                    if let Ok(Ok(tls)) = handshake.await {
                        let _ = tx.send((tls, peer)).await;
                    }
                });
            }
        });
        Ok(Self { ready, addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(accepted) => accepted,
            // The accept task only ends once this receiver is gone, so this never resolves.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.addr)
    }
}

/// The client address of a TLS connection, as axum's connect info.
#[derive(Debug, Clone, Copy)]
pub(crate) struct TlsAddr(pub(crate) SocketAddr);

impl axum::extract::connect_info::Connected<axum::serve::IncomingStream<'_, TlsListener>> for TlsAddr {
    fn connect_info(stream: axum::serve::IncomingStream<'_, TlsListener>) -> Self {
        Self(*stream.remote_addr())
    }
}

/// Copies the [`TlsAddr`] connect info into the plain `ConnectInfo<SocketAddr>` the routes read.
pub(crate) async fn plain_connect_info(mut req: axum::extract::Request) -> axum::extract::Request {
    use axum::extract::ConnectInfo;
    if let Some(ConnectInfo(TlsAddr(addr))) = req.extensions().get::<ConnectInfo<TlsAddr>>().copied() {
        req.extensions_mut().insert(ConnectInfo(addr));
    }
    req
}
