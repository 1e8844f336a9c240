//! The lifecycle end to end with the draft's keys (RFC 8291 Appendix A's user agent):
//! commands from the slides, the verification push and the new-mail push encrypted,
//! sent as requests, decrypted by the client and read back; every deterministic byte
//! is checked.

use std::time::{Duration, SystemTime};

use imap_webpush_proto::content::{ContentBuilder, PushItem, parse_push};
use imap_webpush_proto::state::{
    Account, Change, ConnectionId, Push, Settings, VapidKeyId, handle, receives_pushes,
};
use imap_webpush_proto::{Command, Config, Response};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use slide::{AUTH, ID, JZ as ENDPOINT, P256DH, SLIDE_PUSH, UA_PRIVATE, new_mail};
use webpush_crypto::{
    AuthSecret, Encryptor, Origin, Outcome, PrivateKey, PushRequest, Subject, Subscription, Ttl,
    UaKeys, Urgency, VapidKey, VapidSigner, VapidVerifier, decrypt,
};

#[path = "support/slide.rs"]
mod slide;

fn encode(responses: &[Response<'_>]) -> Vec<u8> {
    let mut out = Vec::new();
    for r in responses {
        r.encode(&mut out).unwrap();
    }
    out
}

#[test]
fn lifecycle_with_the_draft_keys() {
    let ua = UaKeys::new(
        PrivateKey::from_base64url(UA_PRIVATE).unwrap(),
        AuthSecret::from_base64url(AUTH).unwrap(),
    )
    .unwrap();
    assert_eq!(ua.public_key().to_base64url(), P256DH);
    let mut rng = ChaCha20Rng::seed_from_u64(1);
    let vapid = VapidKey::generate(&mut rng).unwrap();
    let vapid_b64 = vapid.public_key().to_base64url();
    let settings = Settings::new(vapid.public_key().clone(), VapidKeyId(1));
    let signer = VapidSigner::new(
        vapid,
        Subject::new("mailto:postmaster@mail.example").unwrap(),
    );
    let now = SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000);
    let mut account = Account::default();
    let connection = ConnectionId {
        instance: 1,
        serial: 1,
    };
    let run = |line: &str, account: &mut Account, rng: &mut ChaCha20Rng| {
        let (_, command) = Command::decode(line.as_bytes(), &Config::SERVER).unwrap();
        let t = handle(&command, account, &settings, now, connection, rng);
        account.apply(&t.changes);
        let mut all = t.untagged.clone();
        all.push(t.tagged.clone());
        (encode(&all), t.pushes)
    };

    let (wire, _) = run("a1 GETVAPID\r\n", &mut account, &mut rng);
    assert_eq!(
        wire,
        format!("* VAPID {vapid_b64}\r\na1 OK GETVAPID completed\r\n").as_bytes()
    );

    let (wire, pushes) = run(
        &format!("a2 WEBPUSH {ID} {ENDPOINT} {P256DH} {AUTH}\r\n"),
        &mut account,
        &mut rng,
    );
    assert_eq!(
        wire,
        format!(
            "* VAPID {vapid_b64}\r\n* WEBPUSH {ID} {ENDPOINT} NIL\r\na2 OK WEBPUSH completed\r\n"
        )
        .as_bytes()
    );
    // The verification push, as a real request: encrypted, VAPID-signed, and only the
    // subscription's private key opens it.
    let push = &pushes[0];
    let subscription = Subscription::new(push.endpoint.clone(), push.keys.clone());
    let token = signer.sign(subscription.endpoint.origin(), now).unwrap();
    let request = PushRequest::new(&subscription, Ttl::from_secs(3600))
        .vapid(token.clone())
        .build(&Encryptor::new(), &push.plaintext, &mut rng)
        .unwrap();
    assert_eq!(request.uri(), ENDPOINT);
    VapidVerifier::new(Origin::new("https://push.example.net").unwrap())
        .verify(request.headers()["authorization"].to_str().unwrap(), now)
        .unwrap();
    let plaintext = decrypt(&ua, request.body()).unwrap();
    let [PushItem::Ack(ack)] = &parse_push(&plaintext)[..] else {
        panic!()
    };
    assert_eq!(
        plaintext,
        format!("* ACKWEBPUSH {}\r\n", ack.as_str()).as_bytes()
    );

    let (wire, _) = run(
        &format!("a3 ACKWEBPUSH {}\r\n", ack.as_str()),
        &mut account,
        &mut rng,
    );
    assert_eq!(
        wire,
        format!("* WEBPUSH {ID} {ENDPOINT} NIL\r\na3 OK ACKWEBPUSH completed\r\n").as_bytes()
    );
    assert!(receives_pushes(&account.records[0], &settings, now, |_| {
        false
    }));

    // New mail: the slide's push, byte for byte, through encryption and back.
    let event = new_mail();
    let encryptor = Encryptor::new();
    let plaintexts = ContentBuilder::for_encryptor(&encryptor).build(std::slice::from_ref(&event));
    assert_eq!(plaintexts, [SLIDE_PUSH.to_vec()]);
    // The stored record to a request in one call, nothing cloned into a Subscription.
    let push = Push::new(&account.records[0], plaintexts[0].clone());
    let request = push
        .to_request(
            token.clone(),
            Ttl::from_secs(3600),
            Urgency::High,
            None,
            &encryptor,
            &mut rng,
        )
        .unwrap();
    assert_eq!(request.uri(), ENDPOINT);
    assert_eq!(request.headers()["urgency"], "high");
    let plaintext = decrypt(&ua, request.body()).unwrap();
    assert_eq!(plaintext, SLIDE_PUSH);
    assert_eq!(parse_push(&plaintext), [PushItem::Mailbox(event)]);
    // With a key made ahead: the message carries that key, and decrypts the same.
    let key = webpush_crypto::EphemeralKey::generate(encryptor.provider(), &mut rng).unwrap();
    let key_id = key.public_key().as_bytes().to_vec();
    let request = push
        .to_request_with_key(
            token.clone(),
            Ttl::from_secs(3600),
            Urgency::High,
            None,
            &encryptor,
            Some(key.into()),
            &mut rng,
        )
        .unwrap();
    let (header, _) = webpush_crypto::ece::Header::parse(request.body()).unwrap();
    assert_eq!(header.keyid, key_id.as_slice());
    assert_eq!(decrypt(&ua, request.body()).unwrap(), SLIDE_PUSH);
    // With a key agreed ahead with this subscription's keys: the same.
    let agreed =
        webpush_crypto::Agreement::generate(encryptor.provider(), &push.keys, &mut rng).unwrap();
    let key_id = agreed.public_key().as_bytes().to_vec();
    let to_request = |ahead: webpush_crypto::Agreement| {
        push.to_request_with_key(
            token.clone(),
            Ttl::from_secs(3600),
            Urgency::High,
            None,
            &encryptor,
            Some(ahead.into()),
            &mut rand_core::OsRng,
        )
    };
    let request = to_request(agreed).unwrap();
    let (header, _) = webpush_crypto::ece::Header::parse(request.body()).unwrap();
    assert_eq!(header.keyid, key_id.as_slice());
    assert_eq!(decrypt(&ua, request.body()).unwrap(), SLIDE_PUSH);
    // One agreed with another subscription's keys is refused: that one could not
    // decrypt the message.
    let other = UaKeys::generate(&mut rng).unwrap().subscription_keys();
    let elsewhere =
        webpush_crypto::Agreement::generate(encryptor.provider(), &other, &mut rng).unwrap();
    assert_eq!(
        to_request(elsewhere).unwrap_err(),
        webpush_crypto::Error::AgreementForOtherKeys
    );
    // What the push service answers becomes what to store: 410 deletes, 201 keeps.
    let gone = Outcome::classify(http::StatusCode::GONE, &http::HeaderMap::new());
    assert_eq!(
        push.on_outcome(&gone, &account),
        Some(Change::Delete(account.records[0].sub_id.clone()))
    );
    let created = Outcome::classify(http::StatusCode::CREATED, &http::HeaderMap::new());
    assert_eq!(push.on_outcome(&created, &account), None);
    // A late 410 for an endpoint the subscription has left deletes nothing: the
    // subscription with that id now has another endpoint.
    let mut replaced = account.clone();
    if let Some(record) = replaced.records.first_mut() {
        record.endpoint =
            imap_webpush_proto::endpoint_policy("https://push.example.net/push/other").unwrap();
    }
    assert_eq!(push.on_outcome(&gone, &replaced), None);
    // Nor one for the same endpoint given back to a client that subscribed again, with
    // keys of its own.
    let mut again = account.clone();
    if let Some(record) = again.records.first_mut() {
        record.keys = UaKeys::generate(&mut rng).unwrap().subscription_keys();
    }
    assert_eq!(push.on_outcome(&gone, &again), None);

    let (wire, _) = run("a4 LWEBPUSH *\r\n", &mut account, &mut rng);
    assert_eq!(
        wire,
        format!("* WEBPUSH {ID} {ENDPOINT} NIL\r\na4 OK LWEBPUSH completed\r\n").as_bytes()
    );
    let (wire, _) = run(&format!("a5 WEBPUSH {ID} NIL\r\n"), &mut account, &mut rng);
    assert_eq!(wire, b"a5 OK WEBPUSH completed\r\n");
}
