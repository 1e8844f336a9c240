//! Commands: GETVAPID, WEBPUSH, ACKWEBPUSH, LWEBPUSH and SILWEBPUSH.

use imap_syntax::{Limits, Tag};
use webpush_crypto::{AuthSecret, PublicKey};

use crate::types::{AckToken, EndpointText, ListSelector, SubId};

/// How much a decoder accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Config {
    /// Limits of the lexical layer (literal size, nesting, literal handshake).
    pub syntax: Limits,
    /// The longest command or response line, literals included.
    pub max_message: usize,
}

impl Config {
    /// For a server reading commands: 8 KiB lines, literals announced for `+`.
    pub const SERVER: Self = Self {
        syntax: Limits {
            max_literal: 4096,
            max_depth: 2,
            literal_handshake: true,
        },
        max_message: 8 * 1024,
    };
    /// For a client reading responses.
    pub const CLIENT: Self = Self {
        syntax: Limits {
            max_literal: 4096,
            max_depth: 2,
            literal_handshake: false,
        },
        max_message: 8 * 1024,
    };
}

impl Default for Config {
    fn default() -> Self {
        Self::SERVER
    }
}

/// A tagged WEBPUSH-extension command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Command<'a> {
    /// The client's tag.
    pub tag: Tag<'a>,
    /// What it asks.
    pub body: CommandBody<'a>,
}

/// The command proper.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CommandBody<'a> {
    /// `GETVAPID`: ask for the server's VAPID public key.
    GetVapid,
    /// `WEBPUSH <sub-id> (<endpoint> <p256dh> <auth> / NIL)`: create or update a
    /// subscription, or delete it with `NIL`.
    WebPush {
        /// The subscription.
        sub_id: SubId<'a>,
        /// Its endpoint and keys; `None` deletes it.
        subscription: Option<SubscriptionArgs<'a>>,
    },
    /// `ACKWEBPUSH <token>`: confirm the verification push.
    AckWebPush {
        /// The token from the verification push.
        token: AckToken<'a>,
    },
    /// `LWEBPUSH (* / <sub-id>)`: list subscriptions.
    LWebPush {
        /// Which.
        selector: ListSelector<'a>,
    },
    /// `SILWEBPUSH <sub-id> <seconds>`: silence a subscription; 0 until this connection
    /// ends.
    SilWebPush {
        /// The subscription.
        sub_id: SubId<'a>,
        /// Seconds; 0 means until the connection ends.
        seconds: u32,
    },
}

impl CommandBody<'_> {
    /// The command's name, as the server echoes it in `OK <NAME> completed`.
    pub fn name(&self) -> &'static str {
        match self {
            CommandBody::GetVapid => "GETVAPID",
            CommandBody::WebPush { .. } => "WEBPUSH",
            CommandBody::AckWebPush { .. } => "ACKWEBPUSH",
            CommandBody::LWebPush { .. } => "LWEBPUSH",
            CommandBody::SilWebPush { .. } => "SILWEBPUSH",
        }
    }
}

/// What WEBPUSH registers: the endpoint and the keys messages are encrypted for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscriptionArgs<'a> {
    /// The push endpoint, as sent (the server's policy decides whether it is usable).
    pub endpoint: EndpointText<'a>,
    /// The user agent's P-256 public key, validated on the curve.
    pub p256dh: PublicKey,
    /// The 16-octet auth secret.
    pub auth: AuthSecret,
}

/// Every command name this crate owns, for a server's dispatcher.
pub const COMMAND_NAMES: [&str; 5] = [
    "GETVAPID",
    "WEBPUSH",
    "ACKWEBPUSH",
    "LWEBPUSH",
    "SILWEBPUSH",
];

/// Whether `name` is one of [`COMMAND_NAMES`], ignoring case.
pub fn is_webpush_command(name: &[u8]) -> bool {
    COMMAND_NAMES
        .iter()
        .any(|n| n.as_bytes().eq_ignore_ascii_case(name))
}
