//! Why a registration command is refused, in the words Dovecot's plugin answers with.

/// A refused `XAPPLEPUSHSERVICE` command. Each variant's text is what the widely
/// deployed Dovecot plugin sends, so clients and logs see familiar messages; the
/// server answers `<tag> BAD Error in IMAP command XAPPLEPUSHSERVICE: <text>` (see
/// [`CommandError::bad_response`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CommandError {
    /// The line is not `tag XAPPLEPUSHSERVICE key value ...`: a syntax error, a NUL,
    /// a duplicate key, a list where a value belongs, or limits exceeded.
    #[error("Invalid arguments.")]
    Syntax,
    /// `aps-version` missing or not a number.
    #[error("Unknown aps-version.")]
    Version,
    /// `aps-account-id` missing, empty or not printable ASCII.
    #[error("Incomplete or empty aps-account-id parameter.")]
    AccountId,
    /// `aps-device-token` missing, empty, not hex, or of odd length.
    #[error("Incomplete or empty aps-device-token parameter.")]
    DeviceToken,
    /// `aps-subtopic` missing or not `com.apple.mobilemail`.
    #[error("Incomplete or empty aps-subtopic parameter.")]
    Subtopic,
    /// Version 2 without a non-empty `mailboxes (...)` list.
    #[error("Incomplete or empty mailboxes parameter.")]
    Mailboxes,
    /// More input is needed; nothing was consumed.
    #[error("incomplete command")]
    Incomplete,
    /// A literal was announced; answer `+` to receive it.
    #[error("literal of {length} octets announced")]
    LiteralAnnounced {
        /// Its length.
        length: u32,
    },
    /// Another command: not this crate's.
    #[error("not an XAPPLEPUSHSERVICE command")]
    NotXaps,
}

impl CommandError {
    /// The line a server sends for this error, or `None` when there is nothing to
    /// answer yet (incomplete input, a literal to accept, another command).
    ///
    /// ```
    /// use xaps_proto::CommandError;
    /// assert_eq!(
    ///     CommandError::Version.bad_response("a3").as_deref(),
    ///     Some("a3 BAD Error in IMAP command XAPPLEPUSHSERVICE: Unknown aps-version.\r\n")
    /// );
    /// ```
    pub fn bad_response(&self, tag: &str) -> Option<String> {
        match self {
            CommandError::Incomplete
            | CommandError::LiteralAnnounced { .. }
            | CommandError::NotXaps => None,
            other => Some(format!(
                "{tag} BAD Error in IMAP command XAPPLEPUSHSERVICE: {other}\r\n"
            )),
        }
    }
}
