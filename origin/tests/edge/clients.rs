//! Raw HTTP/1.1 clients for the fan-out measurement: blocking sockets on one OS thread of their
//! own, outside the server's runtime.
//!
//! What is measured is when each response's first body byte reached the client's socket: the
//! kernel stamps every received packet (`SO_TIMESTAMPNS`, wall clock, taken as loopback hands
//! the packet to the receiving stack, i.e. while the edge's write runs) and a read returns the
//! stamp of the last packet it consumed. A client's own scheduling therefore cannot move the
//! figure either way. While the edge fans the first chunk out the clients sleep ([`LULL`]), so
//! that, like remote viewers, they take no CPU from the edge's two cores; they read afterwards.
//! The lull is not synchronisation: a fan-out slower than it only meets clients already reading.
//! To keep a later packet from being merged into the first one's buffer (which takes the later
//! stamp), the upstream sends the rest of the body only after every client has read its first
//! body bytes ([`Phase::FirstBytes`]).

use std::io::{IoSliceMut, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsRawFd;
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use nix::sys::socket::{ControlMessageOwned, MsgFlags, recvmsg, setsockopt, sockopt::ReceiveTimestampns};

/// How long the clients sleep after the first chunk is released before reading it.
const LULL: Duration = Duration::from_millis(50);

/// How long any one read may wait before the test fails (a follower that never gets its first
/// byte, for instance because it waits for the whole object).
const READ_TIMEOUT: Duration = Duration::from_secs(20);

/// Where the clients are.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Every client sent its request and read the response head.
    Heads,
    /// Every client read its first body bytes.
    FirstBytes,
}

/// One finished exchange.
pub(crate) struct Exchange {
    pub(crate) status: u16,
    pub(crate) body: Vec<u8>,
    /// When the first body byte reached the client's socket (kernel receive timestamp).
    pub(crate) first_byte_at: SystemTime,
}

/// The client thread: reports [`Phase`]s, reads the first body bytes when told to, then reads
/// every response to its end.
pub(crate) struct Clients {
    phases: tokio::sync::mpsc::UnboundedReceiver<Phase>,
    read_first: mpsc::Sender<()>,
    /// Taken when the thread is joined.
    thread: Option<JoinHandle<Vec<Exchange>>>,
}

impl Clients {
    /// Connects `n` clients to `addr` and sends each `GET path`.
    pub(crate) fn start(addr: SocketAddr, path: &str, n: usize) -> Self {
        let (phase_tx, phases) = tokio::sync::mpsc::unbounded_channel();
        let (read_first, go) = mpsc::channel();
        let request = format!("GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
        let thread = std::thread::Builder::new().name("edge-clients".into()).spawn(move || {
            let mut conns: Vec<Conn> = (0..n).map(|_| Conn::open(addr, request.as_bytes())).collect();
            for c in &mut conns {
                c.read_head();
            }
            phase_tx.send(Phase::Heads).unwrap();
            go.recv().unwrap();
            std::thread::sleep(LULL);
            for c in &mut conns {
                c.read_first_body_bytes();
            }
            phase_tx.send(Phase::FirstBytes).unwrap();
            conns.into_iter().map(Conn::finish).collect()
        });
        Self { phases, read_first, thread: Some(thread.unwrap()) }
    }

    /// Tells the clients that the first chunk is about to be released: they read it after
    /// [`LULL`].
    pub(crate) fn read_first_bytes(&self) {
        self.read_first.send(()).unwrap();
    }

    /// Waits for the clients' next phase; fails with the client thread's panic if it ended.
    pub(crate) async fn phase(&mut self) -> Phase {
        if let Some(phase) = self.phases.recv().await {
            return phase;
        }
        let thread = self.thread.take().unwrap();
        let failure = tokio::task::spawn_blocking(move || thread.join()).await.unwrap().err();
        let message = failure.as_ref().and_then(|p| {
            p.downcast_ref::<String>().cloned().or_else(|| p.downcast_ref::<&str>().map(|s| (*s).to_owned()))
        });
        panic!("the client thread stopped: {}", message.unwrap_or_default());
    }

    /// Waits for every response to end.
    pub(crate) async fn finish(self) -> Vec<Exchange> {
        let thread = self.thread.unwrap();
        tokio::task::spawn_blocking(move || thread.join().unwrap()).await.unwrap()
    }
}

struct Conn {
    stream: TcpStream,
    raw: Vec<u8>,
    head_len: usize,
    first_byte_at: Option<SystemTime>,
}

impl Conn {
    fn open(addr: SocketAddr, request: &[u8]) -> Self {
        let mut stream = TcpStream::connect(addr).unwrap();
        setsockopt(&stream, ReceiveTimestampns, &true).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream.write_all(request).unwrap();
        Self { stream, raw: Vec::new(), head_len: 0, first_byte_at: None }
    }

    /// Reads once; returns the bytes read and notes the stamp when they hold the first body byte.
    fn read(&mut self) -> usize {
        let mut buf = [0_u8; 64 * 1024];
        let (n, stamp) = recv_stamped(&self.stream, &mut buf);
        self.raw.extend_from_slice(&buf[..n]);
        if self.head_len > 0 && self.first_byte_at.is_none() && self.raw.len() > self.head_len {
            self.first_byte_at = Some(stamp.expect("SO_TIMESTAMPNS stamp"));
        }
        n
    }

    fn read_head(&mut self) {
        while self.head_len == 0 {
            assert!(self.read() > 0, "connection closed before the response head");
            if let Some(end) = header_end(&self.raw) {
                self.head_len = end;
                assert!(self.raw.len() == end, "body bytes arrived before the release");
            }
        }
    }

    fn read_first_body_bytes(&mut self) {
        while self.first_byte_at.is_none() {
            assert!(self.read() > 0, "connection closed before the first body byte");
        }
    }

    fn finish(mut self) -> Exchange {
        while self.read() > 0 {}
        let status = std::str::from_utf8(&self.raw[9..12]).unwrap().parse().unwrap();
        let head = String::from_utf8_lossy(&self.raw[..self.head_len]).to_ascii_lowercase();
        let raw_body = &self.raw[self.head_len..];
        let body = if head.contains("transfer-encoding: chunked") { dechunk(raw_body) } else { raw_body.to_vec() };
        Exchange { status, body, first_byte_at: self.first_byte_at.unwrap() }
    }
}

/// One blocking read with the kernel's receive timestamp of the last packet it consumed.
fn recv_stamped(stream: &TcpStream, buf: &mut [u8]) -> (usize, Option<SystemTime>) {
    let mut iov = [IoSliceMut::new(buf)];
    let mut cmsg = nix::cmsg_space!(nix::sys::time::TimeSpec);
    let msg = loop {
        match recvmsg::<()>(stream.as_raw_fd(), &mut iov, Some(&mut cmsg), MsgFlags::empty()) {
            Err(nix::errno::Errno::EINTR) => continue,
            Err(e) => panic!("read failed (no data for {READ_TIMEOUT:?}?): {e}"),
            Ok(msg) => break msg,
        }
    };
    let stamp = msg.cmsgs().unwrap().find_map(|c| match c {
        ControlMessageOwned::ScmTimestampns(t) => {
            Some(UNIX_EPOCH + Duration::new(t.tv_sec() as u64, t.tv_nsec() as u32))
        }
        _ => None,
    });
    (msg.bytes, stamp)
}

/// Decodes a chunked body.
pub(crate) fn dechunk(mut raw: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    loop {
        let line_end = raw.windows(2).position(|w| w == b"\r\n").unwrap();
        let size = usize::from_str_radix(std::str::from_utf8(&raw[..line_end]).unwrap().trim(), 16).unwrap();
        if size == 0 {
            return out;
        }
        out.extend_from_slice(&raw[line_end + 2..line_end + 2 + size]);
        raw = &raw[line_end + 2 + size + 2..];
    }
}

/// Length of the response head, once all of it is in `buf`.
pub(crate) fn header_end(buf: &[u8]) -> Option<usize> {
    buf.windows(4).position(|w| w == b"\r\n\r\n").map(|p| p + 4)
}
