//! What the daemon's integration tests share.

/// A port free on 127.0.0.1 a moment ago, for a process the test starts.
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .unwrap_or(0)
}
