//! The listeners: HTTP/1.1 over TCP (the credential decides), and a Unix socket whose
//! permissions decide, serving HTTP and the xaps plugin's legacy lines alike. Keep-alive,
//! a time limit on each request's head (not on an idle connection between requests),
//! a bound on connections, and a graceful end that lets open requests finish.

use std::path::Path;
use std::sync::Arc;

use hyper::service::service_fn;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::{GracefulShutdown, Watcher};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener};
use tokio::sync::{Semaphore, watch};

use super::access::{Access, Via};
use super::timeouts::Timed;
use crate::config::UnixSocket;
use crate::core::Core;

/// What the API's handlers share: the core, and who may use which route.
pub(crate) struct Front {
    pub(crate) core: Arc<Core>,
    pub(crate) access: Access,
}

/// The Unix socket cannot be set up.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SocketError {
    /// Something that is not a socket is where the socket goes.
    #[error("{0} exists and is not a socket: not replaced")]
    NotASocket(std::path::PathBuf),
    /// A process answers on the socket already: another daemon, most likely.
    #[error("a process listens on {0} already (another mailpushd?): not replaced")]
    InUse(std::path::PathBuf),
    /// The socket cannot be made, or its mode or group set.
    #[error("API socket {path}: {source}")]
    Io {
        /// Where.
        path: std::path::PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The configured group does not exist.
    #[error("API socket: no group {0:?} in /etc/group")]
    NoGroup(String),
}

/// Binds the API's Unix socket: an old socket at the path is replaced, anything else
/// there (a socket a process answers on too) is refused; mode and group as configured.
///
/// The socket's mode is its credential, and a socket listens from the moment it is
/// bound: under a lax umask, one bound at its path would take connections with the
/// umask's mode until its own was set, and a connection made then stays open. So it
/// is bound in a folder only the daemon's user can enter ([`UnixSocket::staging_dir`]),
/// given its group and mode there, and then renamed into place.
pub(crate) fn bind_socket(socket: &UnixSocket) -> Result<UnixListener, SocketError> {
    use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
    let path = &socket.path;
    let dir = socket.staging_dir();
    let staging = dir.join("s");
    check_old_socket(path)?;
    // A folder left by a start that failed half way: only what this function puts
    // there is removed, and a folder holding anything else stays (and is refused), as
    // does a socket another start is setting up there.
    if std::fs::symlink_metadata(&staging).is_ok() {
        check_old_socket(&staging)?;
        std::fs::remove_file(&staging).map_err(io_at(&staging))?;
    }
    match std::fs::remove_dir(&dir) {
        Err(e) if e.kind() != std::io::ErrorKind::NotFound => return Err(io_at(&dir)(e)),
        _ => {}
    }
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(io_at(&dir))?;
    let made = (|| {
        // The mode asked of the folder went through the umask.
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
            .map_err(io_at(&dir))?;
        let listener = UnixListener::bind(&staging).map_err(io_at(&staging))?;
        if let Some(group) = &socket.group {
            let gid = group_id(group)?.ok_or_else(|| SocketError::NoGroup(group.clone()))?;
            std::os::unix::fs::chown(&staging, None, Some(gid)).map_err(io_at(&staging))?;
        }
        std::fs::set_permissions(&staging, std::fs::Permissions::from_mode(socket.mode))
            .map_err(io_at(&staging))?;
        std::fs::rename(&staging, path).map_err(io_at(path))?;
        Ok(listener)
    })();
    if made.is_err() {
        // Best effort: the error says what failed; what is left is replaced at the
        // next start.
        let _ = std::fs::remove_file(&staging);
    }
    let _ = std::fs::remove_dir(&dir);
    made
}

/// Checks what is at the socket's path: nothing, or a socket no process answers on
/// (`rename` replaces it); anything else is refused.
fn check_old_socket(path: &Path) -> Result<(), SocketError> {
    use std::os::unix::fs::FileTypeExt;
    match std::fs::symlink_metadata(path) {
        Ok(m) if m.file_type().is_socket() => {
            match std::os::unix::net::UnixStream::connect(path) {
                Ok(_) => Err(SocketError::InUse(path.to_owned())),
                // A socket whose process ended refuses connections at once.
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => Ok(()),
                Err(e) => Err(io_at(path)(e)),
            }
        }
        Ok(_) => Err(SocketError::NotASocket(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(io_at(path)(e)),
    }
}

/// An I/O error at `path`, as a [`SocketError`].
fn io_at(path: &Path) -> impl Fn(std::io::Error) -> SocketError + '_ {
    move |source| SocketError::Io {
        path: path.to_owned(),
        source,
    }
}

/// The id of group `name`, from `/etc/group`.
fn group_id(name: &str) -> Result<Option<u32>, SocketError> {
    let path = Path::new("/etc/group");
    let text = std::fs::read_to_string(path).map_err(|source| SocketError::Io {
        path: path.to_owned(),
        source,
    })?;
    Ok(text.lines().find_map(|line| {
        let mut fields = line.split(':');
        let group = fields.next()?;
        let gid = fields.nth(1)?;
        (group == name).then(|| gid.parse().ok()).flatten()
    }))
}

/// The HTTP/1.1 connection settings. The header and idle timeouts are the stream's
/// ([`Timed`]): hyper's one timer would cut idle keep-alive connections as soon as
/// slow headers.
fn http1() -> hyper::server::conn::http1::Builder {
    let mut builder = hyper::server::conn::http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(None)
        .keep_alive(true);
    builder
}

/// `stream` on the API's idle and header clocks.
fn timed<S>(front: &Front, stream: S) -> Timed<S> {
    let http = &front.core.config().http;
    Timed::new(stream, http.idle_timeout, http.header_timeout)
}

/// Serves one HTTP connection to its end, or to the graceful end `watcher` is told of.
async fn serve_http<S>(front: Arc<Front>, via: Via, stream: S, watcher: Watcher)
where
    S: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let handler = front.clone();
    let service = service_fn(move |request| {
        let front = handler.clone();
        async move { Ok::<_, std::convert::Infallible>(super::handle(front, via, request).await) }
    });
    let connection = http1().serve_connection(TokioIo::new(stream), service);
    if let Err(e) = watcher.watch(connection).await {
        tracing::debug!(error = %e, "HTTP connection ended");
    }
}

/// Serves TCP until `stop` says so, then lets open requests finish (within the body
/// timeout).
pub(crate) async fn serve(
    listener: TcpListener,
    front: Arc<Front>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(front.core.config().http.max_connections));
    while let Some((stream, _, permit)) =
        crate::accept::next(&permits, &mut stop, || listener.accept(), "HTTP API").await
    {
        let _ = stream.set_nodelay(true);
        let held = Held {
            stream,
            _permit: permit,
        };
        let timed = timed(&front, held);
        tokio::spawn(serve_http(
            front.clone(),
            Via::Tcp,
            timed,
            graceful.watcher(),
        ));
    }
    let _ = tokio::time::timeout(front.core.config().http.body_timeout, graceful.shutdown()).await;
}

/// Serves the Unix socket until `stop` says so: each connection is HTTP, or the legacy
/// line protocol when it begins with `REGISTER` or `NOTIFY`.
pub(crate) async fn serve_socket(
    listener: UnixListener,
    front: Arc<Front>,
    mut stop: watch::Receiver<bool>,
) {
    let graceful = GracefulShutdown::new();
    let permits = Arc::new(Semaphore::new(front.core.config().http.max_connections));
    while let Some((stream, _, permit)) =
        crate::accept::next(&permits, &mut stop, || listener.accept(), "API socket").await
    {
        let (front, watcher) = (front.clone(), graceful.watcher());
        tokio::spawn(async move {
            let held = Held {
                stream,
                _permit: permit,
            };
            let mut held = timed(&front, held);
            match super::legacy::start(&mut held).await {
                Ok(start) if xaps_proto::legacy::starts_request(&start) => {
                    super::legacy::serve(held, start, &front.core).await;
                }
                Ok(start) => {
                    let replayed = Replay {
                        start: std::io::Cursor::new(start),
                        rest: held,
                    };
                    serve_http(front, Via::Socket, replayed, watcher).await;
                }
                Err(e) => {
                    tracing::debug!(error = %e, "API socket connection ended before a request")
                }
            }
        });
    }
    let _ = tokio::time::timeout(front.core.config().http.body_timeout, graceful.shutdown()).await;
}

/// A stream and the place it holds among the connections served.
struct Held<S> {
    stream: S,
    _permit: tokio::sync::OwnedSemaphorePermit,
}

impl<S: AsyncRead + Unpin> AsyncRead for Held<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Held<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.stream).poll_shutdown(cx)
    }
}

/// A stream whose first octets were read already: they are read again first.
struct Replay<S> {
    start: std::io::Cursor<Vec<u8>>,
    rest: S,
}

impl<S: AsyncRead + Unpin> AsyncRead for Replay<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        let this = &mut *self;
        let before = buf.filled().len();
        let start = std::pin::Pin::new(&mut this.start).poll_read(cx, buf);
        if buf.filled().len() > before {
            return start;
        }
        std::pin::Pin::new(&mut this.rest).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Replay<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<std::io::Result<usize>> {
        std::pin::Pin::new(&mut self.rest).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.rest).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<std::io::Result<()>> {
        std::pin::Pin::new(&mut self.rest).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::{FileTypeExt, PermissionsExt};

    use super::*;

    fn socket(dir: &Path, mode: u32) -> UnixSocket {
        UnixSocket {
            path: dir.join("api.sock"),
            group: None,
            mode,
        }
    }

    #[tokio::test]
    async fn the_socket_gets_its_mode_before_it_takes_its_name() {
        let dir = tempfile::tempdir().unwrap();
        let socket = socket(dir.path(), 0o600);
        // A socket left by an earlier run is replaced, and so is a staging folder left
        // by a start that failed half way.
        drop(std::os::unix::net::UnixListener::bind(&socket.path).unwrap());
        std::fs::create_dir(socket.staging_dir()).unwrap();
        drop(std::os::unix::net::UnixListener::bind(socket.staging_dir().join("s")).unwrap());
        let listener = bind_socket(&socket).unwrap();
        let meta = std::fs::symlink_metadata(&socket.path).unwrap();
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.permissions().mode() & 0o777, 0o600);
        assert!(!socket.staging_dir().exists());
        let client = tokio::net::UnixStream::connect(&socket.path);
        let (accepted, connected) = tokio::join!(listener.accept(), client);
        accepted.unwrap();
        connected.unwrap();
        // One that is listened on is not replaced.
        assert!(matches!(
            bind_socket(&socket).unwrap_err(),
            SocketError::InUse(p) if p == socket.path
        ));
    }

    #[tokio::test]
    async fn what_is_not_the_daemons_socket_is_refused_and_left_alone() {
        let dir = tempfile::tempdir().unwrap();
        let socket = socket(dir.path(), 0o660);
        std::fs::write(&socket.path, "mine").unwrap();
        let refused = bind_socket(&socket).unwrap_err();
        assert!(
            matches!(&refused, SocketError::NotASocket(p) if *p == socket.path),
            "{refused}"
        );
        assert_eq!(std::fs::read_to_string(&socket.path).unwrap(), "mine");
        std::fs::remove_file(&socket.path).unwrap();
        // A staging folder holding something else stays.
        std::fs::create_dir(socket.staging_dir()).unwrap();
        std::fs::write(socket.staging_dir().join("other"), "mine").unwrap();
        assert!(matches!(
            bind_socket(&socket).unwrap_err(),
            SocketError::Io { .. }
        ));
        assert!(socket.staging_dir().join("other").exists());
        assert!(!socket.path.exists());
    }

    #[tokio::test]
    async fn a_failed_set_up_leaves_no_socket_behind() {
        let dir = tempfile::tempdir().unwrap();
        let mut socket = socket(dir.path(), 0o660);
        socket.group = Some("no-such-group-here".into());
        assert!(matches!(
            bind_socket(&socket).unwrap_err(),
            SocketError::NoGroup(_)
        ));
        assert!(!socket.path.exists());
        assert!(!socket.staging_dir().exists());
    }
}
