//! Push-message content: the untagged IMAP responses a push carries, as typed events.
//!
//! A plaintext is one or more CRLF-terminated untagged responses. Responses about a
//! mailbox follow a `* SELECT <mailbox>` line naming it; a `* SELECT` line alone is the
//! generic event, "synchronize this mailbox".
//!
//! ```text
//! push         = *( select-group / ackwebpush-line )
//! select-group = "*" SP "SELECT" SP mailbox CRLF *( event CRLF )
//! event        = "*" SP uniqueid SP "UIDFETCH" SP "(" fetch-att *(SP fetch-att) ")"
//!              / "*" SP "VANISHED" SP sequence-set
//!              / "*" SP number SP "EXISTS"
//! fetch-att    = "ENVELOPE" SP envelope / "FLAGS" SP "(" [flag *(SP flag)] ")"
//! ```

mod encode;
mod header;
mod parse;

use std::borrow::Cow;
use std::num::NonZeroU32;

pub use encode::{Content, ContentBuilder, LeftOut, ack_push};
pub use header::{HeaderValues, MISSING_DOMAIN, MISSING_MAILBOX, encode_unstructured};

/// The `Topic` of a mailbox's pushes: a push service keeps only the newest undelivered
/// push of a topic, and one per mailbox is what a client needs ("look at this
/// mailbox"). The first 24 octets of the name's SHA-256, so the topic says nothing of
/// the name and every name gets one.
///
/// ```
/// use imap_webpush_proto::content::mailbox_topic;
/// assert_eq!(mailbox_topic("INBOX"), mailbox_topic("INBOX"));
/// assert_ne!(mailbox_topic("INBOX"), mailbox_topic("Work"));
/// assert_eq!(mailbox_topic("INBOX").as_str().len(), 32);
/// ```
pub fn mailbox_topic(mailbox: &str) -> webpush_crypto::Topic {
    use sha2::Digest as _;
    let digest = sha2::Sha256::digest(mailbox.as_bytes());
    let mut first = [0; 24];
    for (to, from) in first.iter_mut().zip(digest) {
        *to = from;
    }
    webpush_crypto::Topic::from_digest(&first)
}
pub use parse::parse_push;

use imap_syntax::{Mailbox, SequenceSet};

use crate::types::AckToken;

/// An address of an envelope (RFC 9051 `address`): each part may be absent (NIL).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Address<'a> {
    /// The display name (`addr-name`), as octets (UTF-8 or RFC 2047 encoded-words).
    pub name: Option<Cow<'a, [u8]>>,
    /// The source route (`addr-adl`), obsolete; almost always NIL.
    pub adl: Option<Cow<'a, [u8]>>,
    /// The local part (`addr-mailbox`), or a group name.
    pub mailbox: Option<Cow<'a, [u8]>>,
    /// The domain (`addr-host`); NIL marks a group's start or end.
    pub host: Option<Cow<'a, [u8]>>,
}

/// A message's envelope (RFC 9051 `envelope`). An empty address list is sent as NIL.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Envelope<'a> {
    /// `Date:`.
    pub date: Option<Cow<'a, [u8]>>,
    /// `Subject:`.
    pub subject: Option<Cow<'a, [u8]>>,
    /// `From:`.
    pub from: Vec<Address<'a>>,
    /// `Sender:`.
    pub sender: Vec<Address<'a>>,
    /// `Reply-To:`.
    pub reply_to: Vec<Address<'a>>,
    /// `To:`.
    pub to: Vec<Address<'a>>,
    /// `Cc:`.
    pub cc: Vec<Address<'a>>,
    /// `Bcc:`.
    pub bcc: Vec<Address<'a>>,
    /// `In-Reply-To:`.
    pub in_reply_to: Option<Cow<'a, [u8]>>,
    /// `Message-ID:`.
    pub message_id: Option<Cow<'a, [u8]>>,
}

/// A message flag: a system flag (`\Seen`, ...) or a keyword, validated as
/// `["\"] atom`.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Flag<'a>(Cow<'a, str>);

impl<'a> Flag<'a> {
    /// Validates a flag: an atom, optionally after one backslash.
    pub fn new(text: impl Into<Cow<'a, str>>) -> Option<Self> {
        let text = text.into();
        let atom = text.strip_prefix('\\').unwrap_or(&text);
        imap_syntax::is_atom(atom.as_bytes()).then_some(Self(text))
    }

    /// The flag as written.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// Something that happened in a mailbox.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event<'a> {
    /// A new message: `* <uid> UIDFETCH (ENVELOPE (...) [FLAGS (...)])`.
    NewMessage {
        /// Its UID.
        uid: NonZeroU32,
        /// Its envelope (boxed: it is ten times the size of the other events).
        envelope: Box<Envelope<'a>>,
        /// Its flags, when known.
        flags: Option<Vec<Flag<'a>>>,
    },
    /// Flags changed: `* <uid> UIDFETCH (FLAGS (...))`.
    FlagsChanged {
        /// The message's UID.
        uid: NonZeroU32,
        /// All its flags now.
        flags: Vec<Flag<'a>>,
    },
    /// Messages expunged: `* VANISHED <uid-set>` (RFC 7162).
    Vanished(SequenceSet),
    /// The number of messages: `* <n> EXISTS`.
    Exists(u32),
}

/// The events of one mailbox, sent under its `* SELECT` line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MailboxEvents<'a> {
    /// The mailbox.
    pub mailbox: Mailbox<'a>,
    /// What happened in it, in order. Empty for the generic event.
    pub events: Vec<Event<'a>>,
}

/// What a push carries, as a client reads it back.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushItem<'a> {
    /// Events of one mailbox (no events: synchronize it).
    Mailbox(MailboxEvents<'a>),
    /// The verification push's token, to return with ACKWEBPUSH.
    Ack(AckToken<'a>),
    /// A line this crate does not know, kept as sent (without its CRLF).
    Unknown(Cow<'a, [u8]>),
}
