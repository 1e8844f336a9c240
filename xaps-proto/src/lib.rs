//! iOS Mail push for IMAP servers, without I/O: Apple's `XAPPLEPUSHSERVICE` command.
//!
//! A device registers for pushes with `XAPPLEPUSHSERVICE aps-version 2 aps-account-id
//! … aps-device-token … aps-subtopic com.apple.mobilemail mailboxes (…)`. The server
//! answers with its APNs topic. This crate parses every form devices and servers are
//! known to send (version 1's quoted keys, version 2's atoms, keys in any case and
//! order, `mailboxes` anywhere, unknown keys kept) and writes the lines servers send.
//!
//! ```
//! use xaps_proto::{Command, Version, completed, registered_response};
//!
//! let line = b"1 XAPPLEPUSHSERVICE aps-version 2 aps-account-id ACC37604-1111-494B-2222-FCA34566717E aps-device-token FD3ABAA234203CC2349587349587999BBBEC1CB40AEE23688E2665BBBB2A28D4 aps-subtopic com.apple.mobilemail mailboxes (Notes INBOX \"Sent Messages\")\r\n";
//! let (_, command) = Command::decode(line)?;
//! // Tokens are kept as the device sent them, and compared without regard to case.
//! assert!(command.request.device_token.as_str().starts_with("FD3ABAA2"));
//! let mut reply = registered_response(command.request.version, "custom-topic").unwrap();
//! reply.extend(completed(&command.tag));
//! assert_eq!(reply, b"* XAPPLEPUSHSERVICE aps-version \"2\" aps-topic \"custom-topic\"\r\n1 OK XAPPLEPUSHSERVICE completed.\r\n");
//! # Ok::<(), xaps_proto::DecodeFailure>(())
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

pub mod daemon;
mod debounce;
mod encode;
mod error;
pub mod legacy;
pub mod owed;
mod parse;
pub mod registry;
mod timestamp;
mod types;
mod user;

pub use debounce::{DEFAULT_DELAY, Debouncer, DelayTooLong, MAX_DELAY, is_message_new};
pub use encode::{completed, mailbox_response, registered_response};
pub use error::{CommandError, EncodeError};
pub use parse::{Command, DecodeFailure, MAX_COMMAND_LEN, Response};
pub use timestamp::{Timestamp, TimestampError};
pub use types::{
    AccountId, CAPABILITY, DeviceToken, ExtraValue, MAIL_SUBTOPIC, MAX_ACCOUNT_ID_LEN,
    MAX_MAILBOX_LEN, MAX_MAILBOXES, RegistrationRequest, Version,
};
pub use user::{MAX_USER_NAME_LEN, UserName, UserNameError};

// The README's example is compiled and run with the doctests.
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;
