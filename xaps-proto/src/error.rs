//! Why a registration command is refused, in the words Dovecot's plugin answers with.

use imap_syntax::{Tag, ValueError};

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
    /// The line a server sends for this error, tagged (or `* BAD` without a tag), or
    /// `None` when there is nothing to answer yet (incomplete input, a literal to
    /// accept, another command). The tag is a validated [`Tag`], so it cannot carry a
    /// line break into the answer.
    ///
    /// ```
    /// use imap_syntax::Tag;
    /// use xaps_proto::CommandError;
    /// let tag = Tag::new("a3")?;
    /// assert_eq!(
    ///     CommandError::Version.bad_response(Some(&tag)).as_deref(),
    ///     Some("a3 BAD Error in IMAP command XAPPLEPUSHSERVICE: Unknown aps-version.\r\n")
    /// );
    /// # Ok::<(), imap_syntax::ValueError>(())
    /// ```
    pub fn bad_response(&self, tag: Option<&Tag<'_>>) -> Option<String> {
        let tag = tag.map_or("*", |t| t.as_str());
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

/// A registration that cannot be written as a command a server takes back as the same
/// registration ([`RegistrationRequest::encode`](crate::RegistrationRequest::encode)).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum EncodeError {
    /// A key or value IMAP cannot carry.
    #[error(transparent)]
    Value(#[from] ValueError),
    /// An unknown key given twice (ASCII case aside), or one of the keys this crate
    /// writes itself: a server refuses a command that repeats a key.
    #[error("key {key:?} appears twice")]
    RepeatedKey {
        /// The key, lossily as text.
        key: String,
    },
    /// More key-value pairs than a server takes in one command.
    #[error("{pairs} key-value pairs, more than the {max} a command may carry")]
    TooManyPairs {
        /// The pairs the command would have.
        pairs: usize,
        /// The most it may have.
        max: usize,
    },
    /// A key, value or mailbox name longer than a server takes.
    #[error("a key, value or mailbox name of {length} octets, more than {max}")]
    TooLong {
        /// Its length.
        length: usize,
        /// The most allowed.
        max: usize,
    },
    /// A command longer, literals included, than a server reads
    /// ([`MAX_COMMAND_LEN`](crate::MAX_COMMAND_LEN)).
    #[error("a command of {length} octets, more than the {max} a server reads")]
    CommandTooLong {
        /// Its length.
        length: usize,
        /// The most a server reads.
        max: usize,
    },
    /// Mailboxes the version cannot carry: version 1 pushes for `INBOX` alone, and
    /// version 2 lists 1 to [`MAX_MAILBOXES`](crate::MAX_MAILBOXES) names (an empty
    /// list would come back as `INBOX`).
    #[error(
        "{count} mailboxes for version {version}: version 1 takes INBOX alone, version 2 one to {max}"
    )]
    Mailboxes {
        /// The version.
        version: &'static str,
        /// How many were given.
        count: usize,
        /// The most version 2 takes.
        max: usize,
    },
}
