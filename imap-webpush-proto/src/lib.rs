//! The IMAP `WEBPUSH` extension (draft-gougeon-imap-webpush), without I/O: commands
//! and responses parsed and encoded for both sides.
//!
//! A server decodes [`Command`]s from its clients and encodes [`Response`]s; a client
//! (Delta Chat, a webmail) does the reverse. Errors split the way IMAP answers them:
//! [`DecodeError`] (syntax or invalid arguments, answered `BAD` by
//! [`DecodeError::response`]) and [`Refusal`] (a valid command the server will not
//! carry out, answered `NO`).
//!
//! ```
//! use imap_webpush_proto::{Command, CommandBody, Config};
//!
//! let line = b"a2 WEBPUSH a8282bf9-6102-4e1b-bb61-d26d0e532e65 https://push.example.net/push/random1 BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4 BTBZMqHH6r4Tts7J_aSIgg\r\n";
//! let (_, command) = Command::decode(line, &Config::SERVER)?;
//! let CommandBody::WebPush { sub_id, subscription: Some(args) } = &command.body else { unreachable!() };
//! assert_eq!(args.endpoint.as_str(), "https://push.example.net/push/random1");
//!
//! let mut out = Vec::new();
//! command.encode(&mut out).unwrap();
//! assert_eq!(out, line);
//! # Ok::<(), imap_webpush_proto::DecodeError>(())
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

mod command;
pub mod content;
mod encode;
mod error;
mod parse;
mod policy;
mod response;
pub mod state;
mod types;

pub use command::{
    COMMAND_NAMES, Command, CommandBody, Config, SubscriptionArgs, is_webpush_command,
};
pub use error::{ArgumentError, DecodeError, Refusal};
pub use policy::{LOCAL_NAMES, PushAddress, check_host, endpoint_policy};
pub use response::{CAPABILITY, Code, OtherCode, Response, Status, StatusKind, Text};
pub use types::{
    AckToken, EndpointText, ListSelector, MAX_ACK_TOKEN_LEN, MAX_ENDPOINT_LEN, MAX_SUB_ID_LEN,
    SilenceState, SubId,
};

// The README's example is compiled and run with the doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
