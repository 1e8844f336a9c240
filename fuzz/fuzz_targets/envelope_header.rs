//! Envelopes from arbitrary header values (date, subject, from, message-id, split at
//! NUL): reading the address list never panics, and an envelope that goes into a push
//! is read back from it unchanged.
#![no_main]

use std::num::NonZeroU32;

use imap_syntax::Mailbox;
use imap_webpush_proto::content::{
    ContentBuilder, Envelope, Event, HeaderValues, MailboxEvents, PushItem, parse_push,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let mut fields = text.split('\0');
    let mut next = || fields.next().unwrap_or_default();
    let (date, subject, from, message_id) = (next(), next(), next(), next());
    let envelope = Envelope::from_header_values(&HeaderValues {
        date,
        subject,
        from,
        message_id,
    });
    let groups = [MailboxEvents {
        mailbox: Mailbox::new("INBOX"),
        events: vec![Event::NewMessage {
            uid: NonZeroU32::MIN,
            envelope: Box::new(envelope.clone()),
            flags: None,
        }],
    }];
    for push in ContentBuilder::new(1 << 20).build(&groups) {
        for item in parse_push(&push) {
            if let PushItem::Mailbox(group) = item {
                for event in group.events {
                    if let Event::NewMessage { envelope: read, .. } = event {
                        assert_eq!(*read, envelope);
                    }
                }
            }
        }
    }
});
