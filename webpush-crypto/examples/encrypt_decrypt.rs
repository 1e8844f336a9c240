//! Encrypts a notification for a browser subscription and decrypts it as the browser
//! would, printing each step.
//!
//! ```text
//! cargo run -p webpush-crypto --example encrypt_decrypt [-- "message text"]
//! ```

use webpush_crypto::ece::Header;
use webpush_crypto::{Encryptor, Error, SubscriptionKeys, UaKeys, base64url, decrypt};

fn main() -> Result<(), Error> {
    let message = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "* SELECT INBOX\r\n* 42 EXISTS\r\n".to_owned());
    let mut rng = rand_core::OsRng;

    println!("1. The browser subscribes: it makes a P-256 key pair and a 16-octet auth secret,");
    println!("   and hands the mail server the public parts (PushSubscription.keys):");
    let browser = UaKeys::generate(&mut rng)?;
    let p256dh = browser.public_key().to_base64url();
    let auth = browser.auth().to_base64url();
    println!("     p256dh = {p256dh}");
    println!("     auth   = {auth}");

    println!("\n2. The server stores them, validated (the point must lie on P-256):");
    let keys = SubscriptionKeys::from_base64url(&p256dh, &auth)?;
    println!("     {keys:?}");

    let encryptor = Encryptor::new();
    println!(
        "\n3. It encrypts {} octets with provider '{}', record size {}, padding {:?} (limit {} octets):",
        message.len(),
        encryptor.provider().name(),
        encryptor.record_size().get(),
        encryptor.padding(),
        encryptor.plaintext_limit(),
    );
    println!("     {message:?}");
    let body = encryptor.encrypt(&keys, message.as_bytes(), &mut rng)?;
    let (header, record) = Header::parse(&body)?;
    println!(
        "   The body is {} octets (Content-Encoding: aes128gcm):",
        body.len()
    );
    println!("     salt        = {}", base64url::encode(&header.salt.0));
    println!("     rs          = {}", header.rs.get());
    println!(
        "     keyid       = {} (the server's one-time public key)",
        base64url::encode(header.keyid)
    );
    println!(
        "     record      = {} octets: ciphertext, delimiter and 16-octet tag",
        record.len()
    );
    println!("     body        = {}", base64url::encode(&body));

    println!("\n4. The push service relays the body; only the browser's private key opens it:");
    let plaintext = decrypt(&browser, &body)?;
    println!("     {:?}", String::from_utf8_lossy(&plaintext));
    assert_eq!(plaintext, message.as_bytes());

    println!("\n5. A single flipped bit is caught by the tag:");
    let mut tampered = body.clone();
    if let Some(last) = tampered.last_mut() {
        *last ^= 1;
    }
    match decrypt(&browser, &tampered) {
        Err(e) => println!("     refused: {e}"),
        Ok(_) => println!("     accepted?! this must never happen"),
    }
    Ok(())
}
