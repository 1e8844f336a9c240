//! The two clocks of an HTTP/1.1 connection: `http.idle_timeout` while no request is
//! under way (before the first, and between keep-alive requests), and
//! `http.header_timeout` from a request's first octet to the end of its headers. Mail
//! servers keep connections open between events (Dovecot's HTTP client does), so the
//! idle clock is the long one; a client that begins a request and trickles it is cut
//! off by the short one. hyper has a single timer that runs in both states, so the
//! connection's reads are watched here instead. Its writes too: an answer that makes
//! no progress for `http.header_timeout` ends the connection, as hyper stops reading
//! while an answer waits (a client that pipelines requests and never reads would
//! otherwise hold its connection for good).

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request under way: the idle clock runs. Line ends are still idle: a server
    /// skips empty lines before a request line (RFC 9112, section 2.2), as hyper does.
    Idle,
    /// A request's headers are arriving; `empty_line` says whether the line under way
    /// holds nothing yet but a carriage return, so that the next line feed ends them.
    Headers { empty_line: bool },
    /// The headers are in: the body and the answer are the handler's to time.
    Request,
}

/// A stream whose reads end with `TimedOut` when a clock runs out, and whose writes
/// when one has waited too long.
pub(crate) struct Timed<S> {
    inner: S,
    idle: Duration,
    header: Duration,
    phase: Phase,
    clock: Pin<Box<Sleep>>,
    /// Runs while a write waits for the client to take what was written before.
    stall: Pin<Box<Sleep>>,
    stalled: bool,
}

impl<S> Timed<S> {
    /// `inner`, idle at first.
    pub(crate) fn new(inner: S, idle: Duration, header: Duration) -> Self {
        Self {
            inner,
            idle,
            header,
            phase: Phase::Idle,
            clock: Box::pin(tokio::time::sleep(idle)),
            stall: Box::pin(tokio::time::sleep(header)),
            stalled: false,
        }
    }

    /// After a write or flush that returned `waiting` or not: the error that ends the
    /// connection once writes have waited `header` in a row.
    fn stalled<T>(
        &mut self,
        cx: &mut Context<'_>,
        written: Poll<std::io::Result<T>>,
    ) -> Poll<std::io::Result<T>> {
        if written.is_ready() {
            self.stalled = false;
            return written;
        }
        if !self.stalled {
            self.stalled = true;
            self.stall.as_mut().reset(Instant::now() + self.header);
        }
        match self.stall.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                "answer not taken in time",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }

    /// Follows the octets `read` through the request cycle, setting the clock when the
    /// phase changes.
    fn saw(&mut self, read: &[u8]) {
        for &octet in read {
            let next = match self.phase {
                Phase::Idle if matches!(octet, b'\r' | b'\n') => Phase::Idle,
                Phase::Idle => {
                    self.clock.as_mut().reset(Instant::now() + self.header);
                    Phase::Headers { empty_line: false }
                }
                headers @ Phase::Headers { .. } => headers.after(octet),
                Phase::Request => return,
            };
            self.phase = next;
        }
    }
}

impl Phase {
    /// The phase after one more octet of headers. A line ends at a line feed, with or
    /// without a carriage return before it, as hyper's parser ends it; the headers end
    /// at the first empty line.
    fn after(self, octet: u8) -> Phase {
        let Phase::Headers { empty_line } = self else {
            return self;
        };
        match octet {
            b'\n' if empty_line => Phase::Request,
            b'\n' => Phase::Headers { empty_line: true },
            b'\r' => self,
            _ => Phase::Headers { empty_line: false },
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Timed<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        if this.phase != Phase::Request && this.clock.as_mut().poll(cx).is_ready() {
            let which = match this.phase {
                Phase::Idle => "idle",
                _ => "request headers",
            };
            return Poll::Ready(Err(std::io::Error::new(
                std::io::ErrorKind::TimedOut,
                format!("{which} timeout"),
            )));
        }
        let before = buf.filled().len();
        let read = Pin::new(&mut this.inner).poll_read(cx, buf);
        if let Poll::Ready(Ok(())) = read {
            let filled = buf.filled();
            this.saw(filled.get(before..).unwrap_or_default());
        }
        read
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Timed<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let this = &mut *self;
        // An answer is going out: once it has, the connection waits for the next request.
        if this.phase == Phase::Request {
            this.phase = Phase::Idle;
        }
        if this.phase == Phase::Idle {
            this.clock.as_mut().reset(Instant::now() + this.idle);
        }
        let written = Pin::new(&mut this.inner).poll_write(cx, buf);
        this.stalled(cx, written)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        let flushed = Pin::new(&mut this.inner).poll_flush(cx);
        this.stalled(cx, flushed)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(phase: Phase, octets: &[u8]) -> Phase {
        octets.iter().fold(phase, |p, &o| p.after(o))
    }

    #[test]
    fn the_headers_end_at_the_first_empty_line() {
        let start = Phase::Headers { empty_line: false };
        assert_eq!(
            run(start, b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Phase::Headers { empty_line: true }
        );
        assert_eq!(
            run(start, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Phase::Request
        );
        // Bare line feeds end lines for hyper too.
        assert_eq!(run(start, b"GET / HTTP/1.1\nHost: x\n\n"), Phase::Request);
        assert_eq!(run(start, b"GET / HTTP/1.1\r\n\n"), Phase::Request);
        assert_eq!(run(start, b"GET / HTTP/1.1\n\r\n"), Phase::Request);
        assert_eq!(
            run(start, b"a\r\nb\r\r\nc"),
            Phase::Headers { empty_line: false }
        );
        // Split across reads the same.
        let half = run(start, b"GET / HTTP/1.1\r\n\r");
        assert_eq!(run(half, b"\n"), Phase::Request);
    }

    #[tokio::test]
    async fn empty_lines_before_a_request_are_idle_not_a_request() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (mut client, server) = tokio::io::duplex(1024);
        let mut timed = Timed::new(
            server,
            Duration::from_millis(300),
            Duration::from_secs(3600),
        );
        // Empty lines that would have passed for the end of a request's headers.
        client.write_all(b"\r\n\r\n\n\n").await.unwrap();
        let mut buf = [0; 64];
        assert_eq!(timed.read(&mut buf).await.unwrap(), 6);
        assert_eq!(timed.phase, Phase::Idle);
        // Nothing more: the idle clock ends the connection (the header clock, an hour
        // here, never started).
        let err = tokio::time::timeout(Duration::from_secs(5), timed.read(&mut buf))
            .await
            .expect("the idle clock ended the read")
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("idle"), "{err}");
    }

    #[tokio::test]
    async fn idle_then_a_slow_header_times_out_on_the_short_clock() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let (client, server) = tokio::io::duplex(1024);
        let mut timed = Timed::new(
            server,
            Duration::from_millis(400),
            Duration::from_millis(100),
        );
        let mut client = client;
        // Idle for longer than the header clock: still open.
        tokio::time::sleep(Duration::from_millis(200)).await;
        client.write_all(b"GET / HT").await.unwrap();
        let mut buf = [0; 64];
        assert_eq!(timed.read(&mut buf).await.unwrap(), 8);
        // The rest never comes: the header clock ends it.
        let err = timed.read(&mut buf).await.unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("request headers"));
    }

    #[tokio::test]
    async fn an_answer_the_client_does_not_take_times_out() {
        use tokio::io::AsyncWriteExt;
        let (client, server) = tokio::io::duplex(64);
        let mut timed = Timed::new(
            server,
            Duration::from_secs(3600),
            Duration::from_millis(100),
        );
        // Taken slowly but steadily: each write's wait is shorter than the clock.
        let reader = tokio::spawn(async move {
            use tokio::io::AsyncReadExt;
            let mut client = client;
            let mut buf = [0; 64];
            for _ in 0..8 {
                tokio::time::sleep(Duration::from_millis(60)).await;
                client.read_exact(&mut buf).await.unwrap();
            }
            // Then no more: the next answer waits past the clock.
            client
        });
        timed.write_all(&[b'x'; 64 * 9]).await.unwrap();
        let _client = reader.await.unwrap();
        // Bounded here too, so that a stream that blocks fails the test, not hangs it.
        let err = tokio::time::timeout(Duration::from_secs(5), timed.write_all(&[b'y'; 128]))
            .await
            .expect("the stalled write ended by its clock")
            .unwrap_err();
        assert_eq!(err.kind(), std::io::ErrorKind::TimedOut);
        assert!(err.to_string().contains("answer not taken"));
    }
}
