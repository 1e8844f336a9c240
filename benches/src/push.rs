//! Push-content workloads: building a new-mail push beside encrypting it, and one
//! event fanned out to many subscriptions.

use std::hint::black_box;

use imap_webpush_proto::content::{ContentBuilder, MailboxEvents};
use rand_core::OsRng;
use webpush_crypto::{Encryptor, Provider, SubscriptionKeys, UaKeys};

use crate::Op;

/// The draft's slide values, shared with the crate's tests and example.
#[path = "../../imap-webpush-proto/tests/support/slide.rs"]
mod slide;

/// The slide's new-mail event.
pub fn new_mail() -> MailboxEvents<'static> {
    slide::new_mail()
}

/// The event's push, as a server builds it for one record of the default size.
fn build(event: &MailboxEvents<'_>) -> Vec<u8> {
    ContentBuilder::new(3993)
        .build(std::slice::from_ref(event))
        .pop()
        .expect("one push")
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
        let plaintext = build(&event);
        Self {
            keys: ua.subscription_keys(),
            event,
            plaintext,
        }
    }
}

impl PushFixture {
    fn build(&self) -> Vec<u8> {
        build(&self.event)
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
