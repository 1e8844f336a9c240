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
/// does nothing); refused when `MAILPUSHD_LOG` is set to what is not a filter.
///
/// ```
/// mailpushd::logs::init(mailpushd::logs::LogFormat::Text)?;
/// tracing::info!("logged to standard error");
/// # Ok::<(), mailpushd::logs::LogError>(())
/// ```
pub fn init(format: LogFormat) -> Result<(), LogError> {
    // Unset is `info`; set, it must read: a mistyped level is said, not taken as
    // `info` without a word.
    let filter = match std::env::var("MAILPUSHD_LOG") {
        Err(std::env::VarError::NotPresent) => tracing_subscriber::EnvFilter::new("info"),
        Err(std::env::VarError::NotUnicode(value)) => {
            return Err(LogError::Filter {
                value: value.to_string_lossy().into_owned(),
                reason: "not UTF-8".into(),
            });
        }
        Ok(value) => {
            tracing_subscriber::EnvFilter::try_new(&value).map_err(|e| LogError::Filter {
                value,
                reason: e.to_string(),
            })?
        }
    };
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
    Ok(())
}

/// The logs could not be set up as asked.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// `MAILPUSHD_LOG` is set to what is not a filter.
    #[error(
        "MAILPUSHD_LOG={value:?} is not a log filter (info, debug, mailpushd=debug,...): {reason}"
    )]
    Filter {
        /// The value, as set.
        value: String,
        /// Why it does not read.
        reason: String,
    },
}
