//! Building push plaintexts within a size budget, degrading instead of failing.

use std::io::Write as _;

use imap_syntax::encode;
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

/// Builds push plaintexts from mailbox events, each within a budget.
///
/// The budget is the plaintext limit of the encryption (3993 octets for the default
/// 4096-octet record without padding). When the events do not fit in
/// [`max_pushes`](Self::max_pushes) plaintexts, the builder degrades instead of
/// failing: first new messages lose their envelopes, then events that still do not fit
/// are left out and their mailbox's `* SELECT` line remains, the generic "synchronize
/// this mailbox" event. A mailbox is never left out, even if its `* SELECT` lines need
/// more pushes than the maximum.
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

    /// The plaintexts for `groups`, in order; none for no groups.
    pub fn build(&self, groups: &[MailboxEvents<'_>]) -> Vec<Vec<u8>> {
        let render = |detail| -> Vec<Group> {
            groups
                .iter()
                .filter_map(|g| Group::render(g, detail))
                .collect()
        };
        // The reduced form is rendered only when the full one does not fit: the common
        // case renders each event once.
        if let Some(pushes) = self.pack(&render(Detail::Full)) {
            return pushes;
        }
        let reduced = render(Detail::Reduced);
        self.pack(&reduced)
            .unwrap_or_else(|| self.pack_generic(&reduced))
    }

    /// Packs whole lines into at most `max_pushes` plaintexts, splitting a mailbox's
    /// events across pushes (each under its own `* SELECT` line) when needed.
    fn pack(&self, groups: &[Group]) -> Option<Vec<Vec<u8>>> {
        let mut pushes: Vec<Vec<u8>> = Vec::new();
        for group in groups {
            let lines = &group.lines;
            let mut need_select = true;
            for line in lines
                .iter()
                .map(Vec::as_slice)
                .chain(lines.is_empty().then_some(&[][..]))
            {
                let extra = if need_select { group.select.len() } else { 0 } + line.len();
                let fits = pushes
                    .last()
                    .is_some_and(|p| p.len() + extra <= self.budget);
                if !fits {
                    if group.select.len() + line.len() > self.budget {
                        return None;
                    }
                    pushes.push(Vec::with_capacity(self.budget));
                    need_select = true;
                }
                let push = pushes.last_mut()?;
                if need_select {
                    push.extend_from_slice(&group.select);
                    need_select = false;
                }
                push.extend_from_slice(line);
            }
            if pushes.len() > self.max_pushes {
                return None;
            }
        }
        Some(pushes)
    }

    /// The last step: every mailbox's `* SELECT` line, with as many of its (reduced)
    /// events as still fit in the same push.
    fn pack_generic(&self, groups: &[Group]) -> Vec<Vec<u8>> {
        let mut pushes: Vec<Vec<u8>> = Vec::new();
        for group in groups {
            if group.select.len() > self.budget {
                // A mailbox name longer than a whole push cannot be sent at all.
                continue;
            }
            let fits = pushes
                .last()
                .is_some_and(|p| p.len() + group.select.len() <= self.budget);
            if !fits {
                pushes.push(Vec::with_capacity(self.budget));
            }
            let Some(push) = pushes.last_mut() else {
                continue;
            };
            push.extend_from_slice(&group.select);
            for line in &group.lines {
                if push.len() + line.len() <= self.budget {
                    push.extend_from_slice(line);
                }
            }
        }
        pushes
    }
}

/// One mailbox's lines at one level of detail.
struct Group {
    select: Vec<u8>,
    lines: Vec<Vec<u8>>,
}

impl Group {
    /// Renders a group; `None` if its mailbox name cannot be encoded (a NUL octet).
    fn render(group: &MailboxEvents<'_>, detail: Detail) -> Option<Self> {
        let mut select = b"* SELECT ".to_vec();
        encode::mailbox(&mut select, &group.mailbox).ok()?;
        select.extend_from_slice(b"\r\n");
        let lines = group
            .events
            .iter()
            .filter_map(|event| {
                // An event whose strings cannot be encoded is sent in reduced form.
                render_event(event, detail).or_else(|| match detail {
                    Detail::Full => render_event(event, Detail::Reduced),
                    Detail::Reduced => None,
                })
            })
            .collect();
        Some(Self { select, lines })
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
