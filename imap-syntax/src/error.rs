//! Syntax errors, and the limits that bound what a parser accepts.

use nom::error::{ErrorKind, ParseError};

/// The bounds a parser enforces, set by the caller. Nothing is allocated or waited for
/// beyond them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// The largest literal accepted, in octets. A larger announcement is refused before
    /// any of its data is read.
    pub max_literal: u32,
    /// The deepest nesting of parenthesised lists.
    pub max_depth: usize,
    /// Whether the peer waits for a `+` continuation after a synchronizing literal
    /// announcement (`{n}`), as a client does when a server reads its commands. When
    /// true, input that ends right after the announcement yields
    /// [`SyntaxErrorKind::LiteralAnnounced`] so the server can answer `+` (or refuse);
    /// when false (a client reading a server), it is simply incomplete.
    pub literal_handshake: bool,
}

impl Limits {
    /// For a server reading commands: literals up to 64 KiB, nesting depth 8, and
    /// synchronizing literals announced to the caller.
    pub const SERVER: Self = Self {
        max_literal: 64 * 1024,
        max_depth: 8,
        literal_handshake: true,
    };
    /// For a client reading responses: literals up to 1 MiB, nesting depth 32.
    pub const CLIENT: Self = Self {
        max_literal: 1024 * 1024,
        max_depth: 32,
        literal_handshake: false,
    };
}

impl Default for Limits {
    fn default() -> Self {
        Self::SERVER
    }
}

/// Whether a literal is synchronizing (`{n}`: the sender waits for `+`) or not
/// (`{n+}`, RFC 7888 LITERAL+).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum LiteralMode {
    /// `{n}`.
    Sync,
    /// `{n+}`.
    NonSync,
}

/// What went wrong, without the position (see [`SyntaxError`]).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SyntaxErrorKind {
    /// The input does not match the grammar here.
    #[error("syntax error: expected {expected}")]
    Expected {
        /// What the grammar required at this point.
        expected: &'static str,
    },
    /// A literal larger than the configured limit was announced.
    #[error("literal of {length} octets exceeds the limit of {max}")]
    LiteralTooLarge {
        /// The announced length.
        length: u64,
        /// The limit.
        max: u32,
    },
    /// A synchronizing literal was announced and its data has not been sent: the peer
    /// waits for a `+` continuation request.
    #[error("literal of {length} octets announced; the client waits for a continuation")]
    LiteralAnnounced {
        /// The announced length.
        length: u32,
        /// Synchronizing or not.
        mode: LiteralMode,
    },
    /// A NUL octet, which IMAP forbids in strings and literals.
    #[error("NUL octet in a string")]
    Nul,
    /// A quoted string or atom that is not valid UTF-8.
    #[error("string is not valid UTF-8")]
    InvalidUtf8,
    /// A backslash followed by something other than `"` or `\` in a quoted string.
    #[error("invalid escape in a quoted string")]
    InvalidEscape,
    /// A number beyond its range (32 bits for `number`, 63 for `number64`), or zero
    /// where `nz-number` is required.
    #[error("number out of range")]
    NumberRange,
    /// Lists nested deeper than the configured limit.
    #[error("lists nested deeper than {max}")]
    TooDeep {
        /// The limit.
        max: usize,
    },
    /// A nom combinator failed (an internal grammar step).
    #[error("syntax error ({0:?})")]
    Nom(ErrorKind),
}

/// A syntax error and the number of octets of input left where it occurred, so the
/// caller can compute the offset.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind} ({remaining} octets before the end)")]
pub struct SyntaxError {
    /// What went wrong.
    pub kind: SyntaxErrorKind,
    /// Octets of input from the fault to the end of the input.
    pub remaining: usize,
}

impl SyntaxError {
    /// An error of `kind` at `input`.
    pub fn new(input: &[u8], kind: SyntaxErrorKind) -> Self {
        Self {
            kind,
            remaining: input.len(),
        }
    }

    /// A `nom::Err::Error` of `kind` at `input`: recoverable, so alternatives are tried.
    pub fn error(input: &[u8], kind: SyntaxErrorKind) -> nom::Err<Self> {
        nom::Err::Error(Self::new(input, kind))
    }

    /// A `nom::Err::Failure` of `kind` at `input`: final, no alternative can match.
    pub fn failure(input: &[u8], kind: SyntaxErrorKind) -> nom::Err<Self> {
        nom::Err::Failure(Self::new(input, kind))
    }

    /// "Expected `what`" at `input`, recoverable.
    pub fn expected(input: &[u8], what: &'static str) -> nom::Err<Self> {
        nom::Err::Error(Self::new(
            input,
            SyntaxErrorKind::Expected { expected: what },
        ))
    }
}

impl ParseError<&[u8]> for SyntaxError {
    fn from_error_kind(input: &[u8], kind: ErrorKind) -> Self {
        Self::new(input, SyntaxErrorKind::Nom(kind))
    }

    fn append(_input: &[u8], _kind: ErrorKind, other: Self) -> Self {
        // The innermost error says most.
        other
    }
}

/// The result of every parser in this crate.
pub type IResult<'a, T> = nom::IResult<&'a [u8], T, SyntaxError>;
