//! Accepting and keeping connections within bounds, as Go's `http.Server` does for upstream:
//! a connection that never finishes its TLS handshake, never sends its headers or sits idle
//! is closed; the number of connections stays below the process's file limit; and running
//! out of descriptors anyway backs the accept loop off instead of spinning it.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::{Body, HttpBody};
use axum::Router;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt;

use crate::authn::{Authenticator, ConnectionUser};

/// What Go answers on a TLS port to a client speaking plain HTTP.
const PLAIN_HTTP_ANSWER: &[u8] =
    b"HTTP/1.0 400 Bad Request\r\n\r\nClient sent an HTTP request to an HTTPS server.\n";

/// Go's `DefaultMaxHeaderBytes`, upstream's bound on request headers (long label selectors
/// in URLs fit; a header flood does not).
const MAX_HEADER_BYTES: usize = 1 << 20;

/// Upstream's HTTP/2 stream limit per connection (Go's default).
const MAX_CONCURRENT_STREAMS: u32 = 250;

/// How long a connection told to close may take to finish what it is sending.
const CLOSE_GRACE: Duration = Duration::from_secs(5);

/// Descriptors kept free for the store, the watch cache and logs when the connection cap is
/// derived from the file limit.
const RESERVED_DESCRIPTORS: usize = 256;

/// The bounds on each connection.
#[derive(Debug, Clone)]
pub struct ConnectionLimits {
    /// Time for the TLS handshake and for each request's headers (Go's `ReadHeaderTimeout`,
    /// 32 s upstream).
    pub read_header_timeout: Duration,
    /// An open connection with no request in progress is closed after this (90 s upstream).
    pub idle_timeout: Duration,
    /// Connections served at once; further clients wait in the listen backlog.
    pub max_connections: usize,
}

impl ConnectionLimits {
    /// Raises the soft file limit to the hard one, as Go does at start-up, and returns a
    /// connection cap that stays below it, or `requested` if that is lower.
    pub fn connection_cap(requested: Option<usize>) -> usize {
        let derived = raise_file_limit()
            .saturating_sub(RESERVED_DESCRIPTORS)
            .max(64);
        requested.map_or(derived, |r| r.min(derived))
    }
}

/// The soft `RLIMIT_NOFILE` after raising it to the hard limit.
fn raise_file_limit() -> usize {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit/setrlimit only read and write the struct passed.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return 1024;
        }
        if limit.rlim_cur < limit.rlim_max {
            let raised = libc::rlimit {
                rlim_cur: limit.rlim_max,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    usize::try_from(limit.rlim_cur).unwrap_or(usize::MAX)
}

/// Accepts connections forever, serving `app` on each within `limits`.
pub async fn serve(
    listener: TcpListener,
    tls: rustls::ServerConfig,
    app: Router,
    limits: ConnectionLimits,
    shutdown: machinery::lifecycle::Shutdown,
) {
    let acceptor = TlsAcceptor::from(Arc::new(tls));
    let max_connections = limits.max_connections;
    let slots = Arc::new(Semaphore::new(max_connections));
    let limits = Arc::new(limits);
    let (closing, closed) = tokio::sync::watch::channel(false);
    let mut backoff = Backoff::default();
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            () = &mut shutdown => break,
            accepted = accept(&listener, &slots) => accepted,
        };
        match accepted {
            Ok((tcp, peer, slot)) => {
                backoff.reset();
                let (acceptor, app, limits) = (acceptor.clone(), app.clone(), limits.clone());
                let closed = closed.clone();
                tokio::spawn(async move {
                    serve_connection(acceptor, tcp, peer, app, &limits, closed).await;
                    drop(slot);
                });
            }
            Err(error) => {
                if is_resource_exhaustion(&error) {
                    backoff.wait(&error).await;
                } else {
                    tracing::debug!(%error, "accept failed");
                }
            }
        }
    }
    // Stop accepting, tell every connection to finish what it is answering, and wait for them
    // (each gets CLOSE_GRACE; a watch is cut then, as upstream ends watches on shutdown).
    drop(listener);
    let _ = closing.send(true);
    let all = u32::try_from(max_connections).unwrap_or(u32::MAX);
    let _ = tokio::time::timeout(CLOSE_GRACE * 2, slots.acquire_many(all)).await;
    tracing::info!("stopped serving");
}

/// The next connection, once a slot is free for it.
async fn accept(
    listener: &TcpListener,
    slots: &Arc<Semaphore>,
) -> std::io::Result<(TcpStream, SocketAddr, tokio::sync::OwnedSemaphorePermit)> {
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .map_err(std::io::Error::other)?;
    let (tcp, peer) = listener.accept().await?;
    Ok((tcp, peer, slot))
}

/// Errors that mean the process or machine is out of something a connection needs: retrying
/// at once would only fail again.
fn is_resource_exhaustion(error: &std::io::Error) -> bool {
    matches!(
        error.raw_os_error(),
        Some(libc::EMFILE | libc::ENFILE | libc::ENOBUFS | libc::ENOMEM)
    )
}

/// Go's accept back-off (5 ms doubling to 1 s), logging at most once every ten seconds with a
/// count of what it did not log.
#[derive(Default)]
struct Backoff {
    delay: Duration,
    last_log: Option<Instant>,
    suppressed: u64,
}

impl Backoff {
    const LOG_EVERY: Duration = Duration::from_secs(10);

    fn reset(&mut self) {
        self.delay = Duration::ZERO;
    }

    async fn wait(&mut self, error: &std::io::Error) {
        self.delay = (self.delay * 2).clamp(Duration::from_millis(5), Duration::from_secs(1));
        if self
            .last_log
            .is_none_or(|at| at.elapsed() >= Self::LOG_EVERY)
        {
            tracing::warn!(%error, retry_in = ?self.delay, suppressed = self.suppressed, "accept failed; backing off");
            self.last_log = Some(Instant::now());
            self.suppressed = 0;
        } else {
            self.suppressed += 1;
        }
        tokio::time::sleep(self.delay).await;
    }
}

async fn serve_connection(
    acceptor: TlsAcceptor,
    tcp: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: &ConnectionLimits,
    mut closed: tokio::sync::watch::Receiver<bool>,
) {
    let _ = tcp.set_nodelay(true);
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(15))
        .with_interval(Duration::from_secs(15));
    let _ = socket2::SockRef::from(&tcp).set_tcp_keepalive(&keepalive);
    let tls =
        match tokio::time::timeout(limits.read_header_timeout, handshake(&acceptor, tcp)).await {
            Ok(Some(tls)) => tls,
            Ok(None) => return,
            Err(_) => {
                tracing::debug!(%peer, "TLS handshake timed out");
                return;
            }
        };
    let user = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|chain| chain.first())
        .and_then(|leaf| Authenticator::from_certificate(leaf));
    let connection_user = ConnectionUser(user);
    let activity = Arc::new(Activity::new());
    let service = {
        let activity = activity.clone();
        tower::service_fn(
            move |mut request: axum::http::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(connection_user.clone());
                let guard = activity.begin();
                let response = app.clone().oneshot(request.map(Body::new));
                async move {
                    let response = response.await?;
                    Ok::<_, std::convert::Infallible>(response.map(|body| {
                        Body::new(Tracked {
                            body,
                            _guard: guard,
                        })
                    }))
                }
            },
        )
    };
    let mut builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.read_header_timeout)
        // hyper's default of 100 headers is kept: a larger count is allocated for every
        // request, which cost gets a third of their throughput.
        .max_buf_size(MAX_HEADER_BYTES + 64 * 1024);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_header_list_size(MAX_HEADER_BYTES as u32)
        .max_concurrent_streams(MAX_CONCURRENT_STREAMS);
    let connection = builder
        .serve_connection_with_upgrades(TokioIo::new(tls), TowerToHyperService::new(service));
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(error) = result {
                tracing::debug!(%peer, %error, "connection ended with an error");
            }
        }
        // Idle for too long, or the server is shutting down: finish what is in flight.
        () = async {
            tokio::select! {
                () = activity.idle(limits.idle_timeout) => {}
                () = async { closed.wait_for(|closing| *closing).await.map_or((), |_| ()) } => {}
            }
        } => {
            connection.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(CLOSE_GRACE, connection).await;
        }
    }
}

/// The TLS session of a new connection; `None` when the client spoke plain HTTP (answered
/// as Go answers it) or the handshake failed.
async fn handshake(
    acceptor: &TlsAcceptor,
    mut tcp: TcpStream,
) -> Option<tokio_rustls::server::TlsStream<TcpStream>> {
    let mut first = [0u8; 1];
    tcp.peek(&mut first).await.ok().filter(|read| *read == 1)?;
    // A TLS record starts with 0x16 (handshake); an HTTP request with its method's letters.
    if first[0].is_ascii_uppercase() {
        let _ = tcp.write_all(PLAIN_HTTP_ANSWER).await;
        let _ = tcp.shutdown().await;
        return None;
    }
    match acceptor.accept(tcp).await {
        Ok(tls) => Some(tls),
        Err(error) => {
            tracing::debug!(%error, "TLS handshake failed");
            None
        }
    }
}

/// Requests in progress on one connection, and when the last one ended: what tells an idle
/// connection from one streaming a watch.
struct Activity {
    active: AtomicUsize,
    /// When the connection started; `idle_since` counts from it.
    started: Instant,
    /// Milliseconds after `started` at which the last request ended.
    idle_since: AtomicU64,
    ended: Notify,
}

impl Activity {
    fn new() -> Self {
        Activity {
            active: AtomicUsize::new(0),
            started: Instant::now(),
            idle_since: AtomicU64::new(0),
            ended: Notify::new(),
        }
    }

    fn begin(self: &Arc<Self>) -> ActiveRequest {
        self.active.fetch_add(1, Ordering::SeqCst);
        ActiveRequest(self.clone())
    }

    /// Resolves once no request has been in progress for `limit`.
    async fn idle(&self, limit: Duration) {
        loop {
            let ended = self.ended.notified();
            tokio::pin!(ended);
            ended.as_mut().enable();
            if self.active.load(Ordering::SeqCst) > 0 {
                ended.await;
                continue;
            }
            let since = Duration::from_millis(self.idle_since.load(Ordering::SeqCst));
            let deadline = self.started + since + limit;
            if Instant::now() >= deadline {
                return;
            }
            tokio::select! {
                () = tokio::time::sleep_until(deadline) => {}
                () = ended => {}
            }
        }
    }
}

/// One request in progress; ends when its response body has been sent or dropped. Only the
/// last request of a busy connection to end records the time and wakes the idle timer, so
/// many streams on one HTTP/2 connection do not contend on every response.
struct ActiveRequest(Arc<Activity>);

impl Drop for ActiveRequest {
    fn drop(&mut self) {
        let activity = &self.0;
        let elapsed = u64::try_from(activity.started.elapsed().as_millis()).unwrap_or(u64::MAX);
        activity.idle_since.store(elapsed, Ordering::SeqCst);
        if activity.active.fetch_sub(1, Ordering::SeqCst) == 1 {
            activity.ended.notify_waiters();
        }
    }
}

/// A response body that keeps its request counted as active until it is done.
struct Tracked {
    body: Body,
    _guard: ActiveRequest,
}

impl HttpBody for Tracked {
    type Data = bytes::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        self: std::pin::Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        std::pin::Pin::new(&mut self.get_mut().body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn idle_waits_for_requests_to_end() {
        let activity = Arc::new(Activity::new());
        let request = activity.begin();
        let idle = tokio::spawn({
            let activity = activity.clone();
            async move { activity.idle(Duration::from_secs(90)).await }
        });
        tokio::time::sleep(Duration::from_secs(300)).await;
        assert!(
            !idle.is_finished(),
            "a connection with a request in progress is not idle"
        );
        drop(request);
        tokio::time::sleep(Duration::from_secs(89)).await;
        assert!(!idle.is_finished());
        tokio::time::sleep(Duration::from_secs(2)).await;
        assert!(idle.is_finished());
    }

    #[test]
    fn the_connection_cap_stays_below_the_file_limit() {
        let cap = ConnectionLimits::connection_cap(None);
        assert!(cap >= 64);
        assert_eq!(ConnectionLimits::connection_cap(Some(10)), 10.min(cap));
    }
}
