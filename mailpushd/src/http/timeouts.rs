//! The two clocks of an HTTP/1.1 connection: `http.idle_timeout` while no request is
//! under way (before the first, and between keep-alive requests), and
//! `http.header_timeout` from a request's first octet to the end of its headers. Mail
//! servers keep connections open between events (Dovecot's HTTP client does), so the
//! idle clock is the long one; a client that begins a request and trickles it is cut
//! off by the short one. hyper has a single timer that runs in both states, so the
//! connection's reads are watched here instead.

use std::future::Future;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::time::{Instant, Sleep};

/// Where a connection is in its request cycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// No request under way: the idle clock runs.
    Idle,
    /// A request's headers are arriving; `matched` octets of the blank line that ends
    /// them have been seen.
    Headers { matched: u8 },
    /// The headers are in: the body and the answer are the handler's to time.
    Request,
}

/// The blank line that ends a request's headers.
const END_OF_HEADERS: &[u8; 4] = b"\r\n\r\n";

/// A stream whose reads end with `TimedOut` when a clock runs out.
pub(crate) struct Timed<S> {
    inner: S,
    idle: Duration,
    header: Duration,
    phase: Phase,
    clock: Pin<Box<Sleep>>,
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
        }
    }

    /// Follows the octets `read` through the request cycle, setting the clock when the
    /// phase changes.
    fn saw(&mut self, read: &[u8]) {
        for &octet in read {
            let next = match self.phase {
                Phase::Idle => {
                    self.clock.as_mut().reset(Instant::now() + self.header);
                    Phase::Headers { matched: 0 }.after(octet)
                }
                headers @ Phase::Headers { .. } => headers.after(octet),
                Phase::Request => return,
            };
            self.phase = next;
        }
    }
}

impl Phase {
    /// The phase after one more octet of headers.
    fn after(self, octet: u8) -> Phase {
        let Phase::Headers { matched } = self else {
            return self;
        };
        let expected = END_OF_HEADERS.get(usize::from(matched)).copied();
        let matched = if expected == Some(octet) {
            matched + 1
        } else if octet == b'\r' {
            1
        } else {
            0
        };
        if usize::from(matched) == END_OF_HEADERS.len() {
            Phase::Request
        } else {
            Phase::Headers { matched }
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
        Pin::new(&mut this.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
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
    fn the_headers_end_at_the_first_blank_line() {
        let start = Phase::Headers { matched: 0 };
        assert_eq!(
            run(start, b"GET / HTTP/1.1\r\nHost: x\r\n"),
            Phase::Headers { matched: 2 }
        );
        assert_eq!(
            run(start, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            Phase::Request
        );
        // A carriage return inside a near match starts a new one.
        assert_eq!(run(start, b"a\r\n\r\r\n\r\n"), Phase::Request);
        assert_eq!(run(start, b"a\r\n\rx"), Phase::Headers { matched: 0 });
        // Split across reads the same.
        let half = run(start, b"GET / HTTP/1.1\r\n\r");
        assert_eq!(run(half, b"\n"), Phase::Request);
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
}
