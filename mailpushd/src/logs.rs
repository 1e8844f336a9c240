//! The daemon's logs: `tracing` events to standard error, filtered by `MAILPUSHD_LOG`
//! (an `EnvFilter` directive; `info` without it). The benches that run the daemon install
//! the same, so that what they measure pays what the daemon pays for the events and
//! spans that it and its libraries make.

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the process's log subscriber, unless one is installed already (then this
/// does nothing).
///
/// ```
/// mailpushd::logs::init(mailpushd::logs::LogFormat::Text);
/// tracing::info!("logged to standard error");
/// ```
pub fn init(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("MAILPUSHD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    // Colours for a person at a terminal; none in a file, a pipe or the journal.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_writer(std::io::stderr);
    // An error here means a subscriber is installed already, which then stays.
    let _ = match format {
        LogFormat::Text => builder.try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
}
