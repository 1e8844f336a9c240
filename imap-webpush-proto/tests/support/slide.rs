//! The values of the draft's slide transcripts, shared by the tests, the lifecycle
//! example and the benches. Their keys are those of RFC 8291 Appendix A.

// Each user takes the subset it needs.
#![allow(dead_code)]

use std::num::NonZeroU32;

use imap_syntax::Mailbox;
use imap_webpush_proto::content::{Address, Envelope, Event, MailboxEvents};

/// The server's VAPID key in the slides.
pub(crate) const VAPID: &str =
    "BOniQ9xHBPNY9gnQW4o-16vHqOb40pEIMifyUdFsxAgyzVkFMguxw0QrdbZcq8hRjN2zpeInRvKVPlkzABvuTnI";
/// The subscription's p256dh (RFC 8291 Appendix A's `ua_public`).
pub(crate) const P256DH: &str =
    "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4";
/// Its private key (RFC 8291 Appendix A's `ua_private`).
pub(crate) const UA_PRIVATE: &str = "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94";
/// The subscription's auth secret.
pub(crate) const AUTH: &str = "BTBZMqHH6r4Tts7J_aSIgg";
/// The subscription id.
pub(crate) const ID: &str = "a8282bf9-6102-4e1b-bb61-d26d0e532e65";
/// The endpoint registered in the create example.
pub(crate) const RANDOM1: &str = "https://push.example.net/push/random1";
/// The endpoint of the later examples (RFC 8030's).
pub(crate) const JZ: &str = "https://push.example.net/push/JzLQ3raZJfFBR0aqvOMsLrt54w4rJUsV";

/// The new-mail push of the slides.
pub(crate) const SLIDE_PUSH: &[u8] = b"* SELECT \"New Messages\"\r\n* 3 UIDFETCH (ENVELOPE (\"Mon, 7 Feb 1994 21:52:25 -0800 (PST)\" \"afternoon meeting\" ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) ((\"Fred Foobar\" NIL \"foobar\" \"Blurdybloop.example\")) ((NIL NIL \"mooch\" \"owatagu.siam.edu.example\")) NIL NIL NIL \"<B27397-0100000@Blurdybloop.example>\"))\r\n";

/// The event behind [`SLIDE_PUSH`]: message 3 arrives in "New Messages".
pub(crate) fn new_mail() -> MailboxEvents<'static> {
    let fred = Address {
        name: Some(b"Fred Foobar"[..].into()),
        adl: None,
        mailbox: Some(b"foobar"[..].into()),
        host: Some(b"Blurdybloop.example"[..].into()),
    };
    MailboxEvents {
        mailbox: Mailbox::new("New Messages"),
        events: vec![Event::NewMessage {
            uid: NonZeroU32::MIN.saturating_add(2),
            envelope: Box::new(Envelope {
                date: Some(b"Mon, 7 Feb 1994 21:52:25 -0800 (PST)"[..].into()),
                subject: Some(b"afternoon meeting"[..].into()),
                from: vec![fred.clone()],
                sender: vec![fred.clone()],
                reply_to: vec![fred],
                to: vec![Address {
                    name: None,
                    adl: None,
                    mailbox: Some(b"mooch"[..].into()),
                    host: Some(b"owatagu.siam.edu.example"[..].into()),
                }],
                message_id: Some(b"<B27397-0100000@Blurdybloop.example>"[..].into()),
                ..Envelope::default()
            }),
            flags: None,
        }],
    }
}
