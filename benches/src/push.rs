//! Push-content workloads: building a new-mail push beside encrypting it, and one
//! event fanned out to many subscriptions.

use std::hint::black_box;
use std::num::NonZeroU32;

use imap_syntax::Mailbox;
use imap_webpush_proto::content::{Address, ContentBuilder, Envelope, Event, MailboxEvents};
use rand_core::OsRng;
use webpush_crypto::{Encryptor, Provider, SubscriptionKeys, UaKeys};

use crate::Op;

/// The slide's new-mail event.
pub fn new_mail() -> MailboxEvents<'static> {
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

/// A subscription and the event.
pub struct PushFixture {
    /// The subscription's keys.
    pub keys: SubscriptionKeys,
    /// The event.
    pub event: MailboxEvents<'static>,
    /// The event's plaintext, built once.
    pub plaintext: Vec<u8>,
}

impl Default for PushFixture {
    fn default() -> Self {
        let ua = UaKeys::generate(&mut OsRng).expect("keys");
        let event = new_mail();
        let plaintext = ContentBuilder::new(3993)
            .build(std::slice::from_ref(&event))
            .pop()
            .expect("one push");
        Self {
            keys: ua.subscription_keys(),
            event,
            plaintext,
        }
    }
}

impl PushFixture {
    fn build(&self) -> Vec<u8> {
        ContentBuilder::new(3993)
            .build(std::slice::from_ref(&self.event))
            .pop()
            .expect("one push")
    }

    fn build_and_encrypt(&self, provider: Provider) -> Vec<u8> {
        let plaintext = self.build();
        self.encrypt(provider, &plaintext)
    }

    fn encrypt(&self, provider: Provider, plaintext: &[u8]) -> Vec<u8> {
        Encryptor::new()
            .with_provider(provider)
            .encrypt(&self.keys, plaintext, &mut OsRng)
            .expect("encryption")
    }

    /// One event to `n` subscriptions: the content is built once, encrypted `n` times.
    pub fn fan_out(&self, provider: Provider, n: usize) -> usize {
        let plaintext = self.build();
        (0..n)
            .map(|_| black_box(self.encrypt(provider, &plaintext)).len())
            .sum()
    }
}

/// Building and encrypting a new-mail push, beside the encryption alone and the
/// building alone.
pub fn push_ops(f: &PushFixture) -> Vec<Op<'_>> {
    vec![
        (
            "build+encrypt/aws-lc-rs",
            Box::new(|| f.build_and_encrypt(Provider::AwsLcRs)),
        ),
        (
            "encrypt only/aws-lc-rs",
            Box::new(|| f.encrypt(Provider::AwsLcRs, &f.plaintext)),
        ),
        (
            "build+encrypt/rustcrypto",
            Box::new(|| f.build_and_encrypt(Provider::RustCrypto)),
        ),
        (
            "encrypt only/rustcrypto",
            Box::new(|| f.encrypt(Provider::RustCrypto, &f.plaintext)),
        ),
        ("build only", Box::new(|| f.build())),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_push_is_the_slide_push() {
        let f = PushFixture::default();
        assert!(
            f.plaintext
                .starts_with(b"* SELECT \"New Messages\"\r\n* 3 UIDFETCH (ENVELOPE")
        );
        for (_, op) in push_ops(&f) {
            assert!(!op().is_empty());
        }
        assert!(f.fan_out(Provider::AwsLcRs, 3) > 0);
    }
}
