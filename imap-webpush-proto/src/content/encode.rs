//! Building push plaintexts within a size budget, degrading instead of failing.

use std::io::Write as _;

use imap_syntax::{Mailbox, encode};
use webpush_crypto::Encryptor;

use super::{Address, Envelope, Event, Flag, MailboxEvents};
use crate::types::AckToken;

/// The verification push: exactly `* ACKWEBPUSH <token>\r\n`.
///
/// ```
/// use imap_webpush_proto::{AckToken, content};
/// let token = AckToken::new("585078c5-fb8b-4ed0-8e77-474ab08f0a30")?;
/// assert_eq!(content::ack_push(&token), b"* ACKWEBPUSH 585078c5-fb8b-4ed0-8e77-474ab08f0a30\r\n");
/// # Ok::<(), imap_webpush_proto::ArgumentError>(())
/// ```
pub fn ack_push(token: &AckToken<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(token.as_str().len() + 16);
    out.extend_from_slice(b"* ACKWEBPUSH ");
    // Tokens are validated ASTRING-CHARs, so they go out bare.
    out.extend_from_slice(token.as_str().as_bytes());
    out.extend_from_slice(b"\r\n");
    out
}

/// How much of an event to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Detail {
    /// Everything.
    Full,
    /// New messages without their envelope (their flags if known, else nothing).
    Reduced,
}

/// What a build left out of an event to stay within the budget, so a server can log it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum LeftOut {
    /// A new message went without its envelope (its flags, when known, went out).
    Envelope {
        /// The mailbox, as an index into the groups given.
        group: usize,
        /// The event, as an index into that group's events.
        event: usize,
    },
    /// The event went out not at all: after its mailbox's events, a `* SELECT` line
    /// alone for the mailbox (the generic event) tells the client to synchronize.
    Event {
        /// The mailbox, as an index into the groups given.
        group: usize,
        /// The event, as an index into that group's events.
        event: usize,
    },
}

/// The plaintexts of a build, and what had to be left out of them.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Content {
    /// The plaintexts, in order.
    pub pushes: Vec<Vec<u8>>,
    /// What did not fit, in event order.
    pub left_out: Vec<LeftOut>,
}

/// Builds push plaintexts from mailbox events, each within a budget.
///
/// The budget is the plaintext limit of the encryption (3993 octets for the default
/// 4096-octet record without padding). Events are placed in order, each in the fullest
/// form that still fits in [`max_pushes`](Self::max_pushes) plaintexts: with its
/// envelope, else a new message with its flags alone, else not at all. So as many
/// envelopes go out as fit, the lines after them still go out when they fit, and an
/// event added at the end never makes the push say less about the events before it.
/// Every mailbox keeps its `* SELECT` line, the generic "synchronize this mailbox"
/// event, even if those lines need more pushes than the maximum. What was left out is
/// reported ([`build_content`](Self::build_content)).
///
/// ```
/// use imap_syntax::Mailbox;
/// use imap_webpush_proto::content::{ContentBuilder, Event, MailboxEvents};
///
/// let events = [MailboxEvents { mailbox: Mailbox::Inbox, events: vec![Event::Exists(42)] }];
/// let pushes = ContentBuilder::new(3993).build(&events);
/// assert_eq!(pushes, [b"* SELECT INBOX\r\n* 42 EXISTS\r\n".to_vec()]);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ContentBuilder {
    budget: usize,
    max_pushes: usize,
}

impl ContentBuilder {
    /// A builder for plaintexts of at most `budget` octets, one push per event batch.
    pub fn new(budget: usize) -> Self {
        Self {
            budget,
            max_pushes: 1,
        }
    }

    /// A builder for what `encryptor` can carry in one message.
    pub fn for_encryptor(encryptor: &Encryptor) -> Self {
        Self::new(encryptor.plaintext_limit())
    }

    /// Allows up to `max` pushes (at least 1) per batch before details are dropped.
    pub fn max_pushes(mut self, max: usize) -> Self {
        self.max_pushes = max.max(1);
        self
    }

    /// The budget per plaintext.
    pub fn budget(&self) -> usize {
        self.budget
    }

    /// The generic push for `mailbox`, `* SELECT <mailbox>` alone: what a client reads
    /// as "synchronize this mailbox", sent for events without details and instead of
    /// a push a service finds too large. `None` for a mailbox no push can name (a NUL
    /// in it, or a name longer than the budget).
    ///
    /// ```
    /// use imap_syntax::Mailbox;
    /// use imap_webpush_proto::content::ContentBuilder;
    /// let generic = ContentBuilder::new(3993).generic(&Mailbox::new("INBOX"));
    /// assert_eq!(generic.as_deref(), Some(&b"* SELECT INBOX\r\n"[..]));
    /// ```
    pub fn generic(&self, mailbox: &Mailbox<'_>) -> Option<Vec<u8>> {
        self.build(&[MailboxEvents {
            mailbox: mailbox.clone(),
            events: Vec::new(),
        }])
        .into_iter()
        .next()
    }

    /// The plaintexts for `groups`, in order; none for no groups.
    pub fn build(&self, groups: &[MailboxEvents<'_>]) -> Vec<Vec<u8>> {
        self.build_content(groups).pushes
    }

    /// The plaintexts for `groups`, and what did not fit in them.
    pub fn build_content(&self, groups: &[MailboxEvents<'_>]) -> Content {
        let mut packer = Packer {
            builder: self,
            content: Content::default(),
        };
        for (g, group) in groups.iter().enumerate() {
            let mut select = b"* SELECT ".to_vec();
            if encode::mailbox(&mut select, &group.mailbox).is_err()
                || select.len() + 2 > self.budget
            {
                // A mailbox no IMAP form can carry (a NUL), or a name longer than a
                // whole push: nothing of it can be sent.
                let all = (0..group.events.len()).map(|event| LeftOut::Event { group: g, event });
                packer.content.left_out.extend(all);
                continue;
            }
            select.extend_from_slice(b"\r\n");
            // Whether the last push already carries this group's SELECT line.
            let mut selected = false;
            // Whether an event went out not at all: the client is told to synchronize.
            let mut dropped = false;
            for (e, event) in group.events.iter().enumerate() {
                let full = render_event(event, Detail::Full);
                if let Some(line) = &full
                    && packer.place(&select, &mut selected, line)
                {
                    continue;
                }
                let reduced = render_event(event, Detail::Reduced);
                let placed = reduced
                    .as_ref()
                    .is_some_and(|line| packer.place(&select, &mut selected, line));
                dropped |= !placed;
                packer.content.left_out.push(match placed {
                    true => LeftOut::Envelope { group: g, event: e },
                    false => LeftOut::Event { group: g, event: e },
                });
            }
            if !selected || dropped {
                packer.select_alone(&select);
            }
        }
        packer.content
    }
}

/// Places lines into pushes, in order.
struct Packer<'a> {
    builder: &'a ContentBuilder,
    content: Content,
}

impl Packer<'_> {
    /// Appends `line` (after `select`, if this push has none yet) to the last push, or
    /// to a new one while the maximum allows; `false` when it fits nowhere.
    fn place(&mut self, select: &[u8], selected: &mut bool, line: &[u8]) -> bool {
        let budget = self.builder.budget;
        let need = |selected: bool| line.len() + if selected { 0 } else { select.len() };
        if let Some(push) = self.content.pushes.last_mut()
            && push.len() + need(*selected) <= budget
        {
            if !*selected {
                push.extend_from_slice(select);
                *selected = true;
            }
            push.extend_from_slice(line);
            return true;
        }
        if self.content.pushes.len() < self.builder.max_pushes && need(false) <= budget {
            let mut push = Vec::with_capacity(budget);
            push.extend_from_slice(select);
            push.extend_from_slice(line);
            self.content.pushes.push(push);
            *selected = true;
            return true;
        }
        false
    }

    /// A mailbox none of whose events went out, or not all, gets a SELECT line alone
    /// (the generic event), in a new push past the maximum if need be.
    fn select_alone(&mut self, select: &[u8]) {
        match self.content.pushes.last_mut() {
            Some(push) if push.len() + select.len() <= self.builder.budget => {
                push.extend_from_slice(select);
            }
            _ => self.content.pushes.push(select.to_vec()),
        }
    }
}

/// One event's line with its CRLF; `None` when it has nothing to say at this detail or
/// holds a string no IMAP form can carry.
fn render_event(event: &Event<'_>, detail: Detail) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    match event {
        Event::NewMessage {
            uid,
            envelope,
            flags,
        } => {
            let _ = write!(out, "* {uid} UIDFETCH (");
            match (detail, flags) {
                (Detail::Full, _) => {
                    out.extend_from_slice(b"ENVELOPE ");
                    write_envelope(&mut out, envelope)?;
                    if let Some(flags) = flags {
                        out.push(b' ');
                        write_flags(&mut out, flags);
                    }
                }
                (Detail::Reduced, Some(flags)) => write_flags(&mut out, flags),
                (Detail::Reduced, None) => return None,
            }
            out.push(b')');
        }
        Event::FlagsChanged { uid, flags } => {
            let _ = write!(out, "* {uid} UIDFETCH (");
            write_flags(&mut out, flags);
            out.push(b')');
        }
        Event::Vanished(set) => {
            out.extend_from_slice(b"* VANISHED ");
            encode::sequence_set(&mut out, set);
        }
        Event::Exists(n) => {
            let _ = write!(out, "* {n} EXISTS");
        }
    }
    out.extend_from_slice(b"\r\n");
    Some(out)
}

fn write_flags(out: &mut Vec<u8>, flags: &[Flag<'_>]) {
    out.extend_from_slice(b"FLAGS (");
    for (i, flag) in flags.iter().enumerate() {
        if i > 0 {
            out.push(b' ');
        }
        out.extend_from_slice(flag.as_str().as_bytes());
    }
    out.push(b')');
}

/// `envelope = "(" env-date SP env-subject SP env-from SP env-sender SP env-reply-to SP
/// env-to SP env-cc SP env-bcc SP env-in-reply-to SP env-message-id ")"`.
fn write_envelope(out: &mut Vec<u8>, envelope: &Envelope<'_>) -> Option<()> {
    out.push(b'(');
    encode::nstring(out, envelope.date.as_deref()).ok()?;
    out.push(b' ');
    encode::nstring(out, envelope.subject.as_deref()).ok()?;
    for list in [
        &envelope.from,
        &envelope.sender,
        &envelope.reply_to,
        &envelope.to,
        &envelope.cc,
        &envelope.bcc,
    ] {
        out.push(b' ');
        write_addresses(out, list)?;
    }
    out.push(b' ');
    encode::nstring(out, envelope.in_reply_to.as_deref()).ok()?;
    out.push(b' ');
    encode::nstring(out, envelope.message_id.as_deref()).ok()?;
    out.push(b')');
    Some(())
}

/// `"(" 1*address ")" / nil`; `address = "(" addr-name SP addr-adl SP addr-mailbox SP
/// addr-host ")"`.
fn write_addresses(out: &mut Vec<u8>, list: &[Address<'_>]) -> Option<()> {
    if list.is_empty() {
        out.extend_from_slice(b"NIL");
        return Some(());
    }
    out.push(b'(');
    for address in list {
        out.push(b'(');
        for (i, part) in [&address.name, &address.adl, &address.mailbox, &address.host]
            .into_iter()
            .enumerate()
        {
            if i > 0 {
                out.push(b' ');
            }
            encode::nstring(out, part.as_deref()).ok()?;
        }
        out.push(b')');
    }
    out.push(b')');
    Some(())
}
