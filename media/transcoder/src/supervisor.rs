//! Runs ffmpeg, restarts it with backoff when it exits or stalls, kills it on shutdown.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use tokio::io::{AsyncBufRead, AsyncBufReadExt, AsyncRead, BufReader};
use tokio::process::{Child, Command};
use tokio::sync::watch;

use crate::config::Config;
use crate::ffmpeg::{self, Launch};

/// A run at least this long counts as healthy: the next restart waits the base backoff again.
pub const STABLE_RUN: Duration = Duration::from_secs(30);

/// Longest ffmpeg output line kept, in bytes; the rest of a longer line is dropped.
const MAX_LINE: usize = 1024;

/// Lines of ffmpeg's stderr logged when it exits.
const TAIL_LINES: usize = 8;

/// What the supervisor is doing, published on a `watch` channel.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Status {
    /// Process id of the running ffmpeg, `None` between runs.
    pub pid: Option<u32>,
    /// How many times ffmpeg was launched.
    pub starts: u64,
    /// First media sequence number of the current (or last) run.
    pub start_number: u64,
}

enum Outcome {
    Shutdown,
    SpawnFailed(io::Error),
    Exited(String),
    Stalled,
}

/// Supervises ffmpeg for `config` until `shutdown` resolves, publishing its [`Status`] on
/// `status`.
///
/// # Errors
/// `InvalidInput` for an invalid config; the spawn error when the very first launch fails
/// (e.g. `NotFound`: ffmpeg is not installed). Later failures are logged and retried.
pub async fn run_with_status(
    config: Config,
    shutdown: impl Future<Output = ()> + Send + 'static,
    status: watch::Sender<Status>,
) -> io::Result<()> {
    config.validate().map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
    let mut shutdown = Box::pin(shutdown);
    let base = Duration::from_millis(config.restart_backoff_ms);
    let max_backoff = Duration::from_millis(config.max_restart_backoff_ms);
    let segment = Duration::from_secs(u64::from(config.segment_duration_s));
    let mut backoff = base;
    let mut first_start: Option<u64> = None;
    let mut next_min = 0_u64;
    loop {
        // The wall clock normally decides; `next_min` keeps numbers rising if it stepped back.
        let start_number = ffmpeg::start_number(unix_now_ms(), config.segment_duration_s).max(next_min);
        let first = *first_start.get_or_insert(start_number);
        let ts_offset_s = (start_number - first).saturating_mul(u64::from(config.segment_duration_s));
        let launch = Launch { start_number, ts_offset_s };
        let launched = Instant::now();
        let outcome = run_once(&config, launch, &status, &mut shutdown).await;
        let ran = launched.elapsed();
        next_min = start_number + ran.as_millis().div_ceil(segment.as_millis()) as u64 + 1;
        match outcome {
            Outcome::Shutdown => return Ok(()),
            Outcome::SpawnFailed(e) if status.borrow().starts == 0 => return Err(e),
            Outcome::SpawnFailed(e) => tracing::error!(error = %e, "cannot start ffmpeg"),
            Outcome::Exited(how) => tracing::warn!(%how, ran_s = ran.as_secs(), "ffmpeg exited"),
            Outcome::Stalled => tracing::warn!(stall_timeout_s = config.stall_timeout_s, "ffmpeg stalled; killed it"),
        }
        if ran >= STABLE_RUN {
            backoff = base;
        }
        tracing::info!(backoff_ms = backoff.as_millis() as u64, "restarting ffmpeg");
        tokio::select! {
            () = tokio::time::sleep(backoff) => {}
            () = shutdown.as_mut() => return Ok(()),
        }
        backoff = (backoff * 2).min(max_backoff);
    }
}

async fn run_once(
    config: &Config,
    launch: Launch,
    status: &watch::Sender<Status>,
    shutdown: &mut Pin<Box<impl Future<Output = ()>>>,
) -> Outcome {
    let mut cmd = Command::new(&config.ffmpeg_path);
    cmd.args(ffmpeg::args(config, &launch))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = match cmd.spawn() {
        Ok(child) => child,
        Err(e) => return Outcome::SpawnFailed(e),
    };
    let pid = child.id();
    tracing::info!(?pid, start_number = launch.start_number, ts_offset_s = launch.ts_offset_s, "ffmpeg started");
    status.send_modify(|s| {
        s.pid = pid;
        s.starts += 1;
        s.start_number = launch.start_number;
    });
    let epoch = Instant::now();
    let last_progress_ms = Arc::new(AtomicU64::new(0));
    let stderr = child.stderr.take().map(|e| tokio::spawn(log_stderr(e)));
    let stdout = child.stdout.take().map(|o| tokio::spawn(watch_progress(o, epoch, last_progress_ms.clone())));
    let stall = Duration::from_secs(u64::from(config.stall_timeout_s));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let outcome = loop {
        tokio::select! {
            res = child.wait() => break Outcome::Exited(res.map_or_else(|e| e.to_string(), |s| s.to_string())),
            () = shutdown.as_mut() => {
                kill(&mut child).await;
                break Outcome::Shutdown;
            }
            _ = tick.tick() => {
                let since = epoch.elapsed().saturating_sub(Duration::from_millis(last_progress_ms.load(Ordering::Relaxed)));
                if since > stall {
                    kill(&mut child).await;
                    break Outcome::Stalled;
                }
            }
        }
    };
    status.send_modify(|s| s.pid = None);
    if let Some(task) = stdout {
        task.abort();
    }
    if let Some(task) = stderr {
        // The pipe closes with the process; don't wait long for the last lines.
        if let Ok(Ok(tail)) = tokio::time::timeout(Duration::from_secs(1), task).await
            && !matches!(outcome, Outcome::Shutdown)
            && !tail.is_empty()
        {
            tracing::warn!(stderr = %tail.join(" | "), "last ffmpeg output");
        }
    }
    outcome
}

async fn kill(child: &mut Child) {
    if let Err(e) = child.kill().await {
        tracing::warn!(error = %e, "could not kill ffmpeg");
    }
}

/// Logs every stderr line at debug level and returns the last [`TAIL_LINES`].
async fn log_stderr(stderr: impl AsyncRead + Unpin) -> Vec<String> {
    let mut reader = BufReader::new(stderr);
    let mut tail = std::collections::VecDeque::with_capacity(TAIL_LINES);
    while let Ok(Some(line)) = next_line(&mut reader).await {
        tracing::debug!(target: "ffmpeg", "{line}");
        if tail.len() == TAIL_LINES {
            tail.pop_front();
        }
        tail.push_back(line);
    }
    tail.into()
}

/// Reads ffmpeg's `-progress` key=value lines, recording when the last one arrived.
async fn watch_progress(stdout: impl AsyncRead + Unpin, epoch: Instant, last_ms: Arc<AtomicU64>) {
    let mut reader = BufReader::new(stdout);
    while let Ok(Some(line)) = next_line(&mut reader).await {
        last_ms.store(u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX), Ordering::Relaxed);
        if line.starts_with("speed=") {
            tracing::trace!(target: "ffmpeg", "{line}");
        }
    }
}

/// The next line of at most [`MAX_LINE`] bytes (lossy UTF-8), `None` at the end of input.
async fn next_line(reader: &mut (impl AsyncBufRead + Unpin)) -> io::Result<Option<String>> {
    let mut line = Vec::new();
    loop {
        let buf = reader.fill_buf().await?;
        if buf.is_empty() {
            return Ok((!line.is_empty()).then(|| String::from_utf8_lossy(&line).into_owned()));
        }
        let (end, found) = match buf.iter().position(|&b| b == b'\n') {
            Some(i) => (i, true),
            None => (buf.len(), false),
        };
        let room = MAX_LINE.saturating_sub(line.len());
        line.extend_from_slice(&buf[..end.min(room)]);
        reader.consume(if found { end + 1 } else { end });
        if found {
            let text = String::from_utf8_lossy(&line);
            return Ok(Some(text.trim_end_matches('\r').to_owned()));
        }
    }
}

fn unix_now_ms() -> u64 {
    SystemTime::now().duration_since(UNIX_EPOCH).map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn reads_bounded_lines() {
        let long = "x".repeat(MAX_LINE * 3);
        let input = format!("a=1\r\n{long}\nlast");
        let mut r = BufReader::with_capacity(64, input.as_bytes());
        assert_eq!(next_line(&mut r).await.unwrap().as_deref(), Some("a=1"));
        assert_eq!(next_line(&mut r).await.unwrap().map(|l| l.len()), Some(MAX_LINE));
        assert_eq!(next_line(&mut r).await.unwrap().as_deref(), Some("last"));
        assert_eq!(next_line(&mut r).await.unwrap(), None);
    }

    #[tokio::test]
    async fn a_missing_ffmpeg_is_an_error() {
        let config =
            Config { ffmpeg_path: "/nonexistent/ffmpeg".into(), ingest_token: "t".into(), ..Config::default() };
        let (tx, _rx) = watch::channel(Status::default());
        let err = run_with_status(config, std::future::pending(), tx).await.unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }

    #[tokio::test]
    async fn restarts_a_failing_ffmpeg_with_backoff_until_shutdown() {
        // `false` exits at once with status 1: every launch fails.
        let config = Config {
            ffmpeg_path: "false".into(),
            ingest_token: "t".into(),
            restart_backoff_ms: 10,
            max_restart_backoff_ms: 20,
            ..Config::default()
        };
        let (tx, mut rx) = watch::channel(Status::default());
        let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(run_with_status(
            config,
            async move {
                let _ = stopped.await;
            },
            tx,
        ));
        rx.wait_for(|s| s.starts >= 3).await.unwrap();
        stop.send(()).unwrap();
        task.await.unwrap().unwrap();
    }
}
