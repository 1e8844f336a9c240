//! The IMAP (RFC 9051) lexical layer shared by IMAP extension crates: atoms, strings,
//! literals, numbers, lists, sequence sets, mailboxes and tags.
//!
//! * [`parse`]: nom streaming parsers over `&[u8]`. Short input is
//!   `nom::Err::Incomplete`, never a wrong value. Values borrow from the input. Every
//!   size is bounded by caller-set [`Limits`]; a synchronizing literal announcement is
//!   reported ([`SyntaxErrorKind::LiteralAnnounced`]) so a server can answer `+`.
//! * [`encode`]: writers that pick the shortest valid form (atom, quoted, literal).
//!
//! ```
//! use imap_syntax::{Limits, encode, parse};
//!
//! let (rest, name) = parse::astring(b"\"New Messages\" ", &Limits::SERVER)?;
//! assert_eq!((name.as_bytes(), rest), (&b"New Messages"[..], &b" "[..]));
//! // A prefix is incomplete, never a shorter value:
//! assert!(matches!(parse::astring(b"\"New Mess", &Limits::SERVER), Err(nom::Err::Incomplete(_))));
//!
//! let mut out = Vec::new();
//! encode::astring(&mut out, b"New Messages")?;
//! assert_eq!(out, b"\"New Messages\"");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

#![forbid(unsafe_code)]
// Code that serves never panics on its input: a failed unwrap or index is for tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]

pub mod chars;
pub mod encode;
mod error;
pub mod framing;
pub mod parse;
pub mod relay;
mod types;

pub use error::{IResult, Limits, LiteralMode, SyntaxError, SyntaxErrorKind};
/// The parser library the parsers are written with, re-exported for its result types.
pub use nom;
pub use types::{
    AString, AStringAtom, Atom, IString, Mailbox, SeqNumber, Sequence, SequenceSet, Tag,
    ValueError, is_atom,
};

// The README's example is compiled and run with the doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
