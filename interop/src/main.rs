//! Reads one JSON request per line on stdin and answers one JSON line on stdout, so the
//! interop suite (`interop/*.py`) can drive this project next to independent
//! implementations. Binary values are unpadded base64url.
//!
//! Requests (`op`):
//! * `providers` → `{"providers": [...]}`
//! * `wp-encrypt` {provider, p256dh, auth, plaintext, pad_to?, ahead?} → `{"body"}`
//!   (`ahead`: `"key"`, an ephemeral key made before the call; `"agreement"`, a key
//!   agreed with the keys before the call; absent, a key made in the call)
//! * `wp-decrypt` {provider, private, auth, body} → `{"plaintext"}`
//! * `ece-encrypt` {provider, ikm, salt, keyid, rs, plaintext, padding} → `{"body"}`
//! * `ece-decrypt` {provider, ikm, body} → `{"plaintext", "keyid", "rs"}`
//! * `vapid-public` {provider, key} → `{"public"}` (key: the key file's bytes)
//! * `vapid-sign` {provider, key, endpoint, sub, now} → `{"authorization"}`
//! * `vapid-verify` {provider, authorization, audience, now} → `{"key", "exp", "sub"}`
//! * `build-push` {provider, subscription, key, sub, ttl, urgency?, topic?,
//!   plaintext, now} → `{"method", "uri", "headers", "body"}`
//!
//! Any failure answers `{"error": "..."}`, and the helper goes on with the next line.

// Code that serves never panics on its input: a failed unwrap or index is for tests.
#![cfg_attr(
    not(test),
    deny(
        clippy::unwrap_used,
        clippy::expect_used,
        clippy::panic,
        clippy::indexing_slicing
    )
)]
use std::io::{BufRead, Write};
use std::time::{Duration, SystemTime};

use serde::Deserialize;
use serde_json::{Value, json};
use webpush_crypto::ece::{self, RecordSize};
use webpush_crypto::{
    Agreement, AuthSecret, Encryptor, Endpoint, EphemeralKey, Error, Origin, Padding, PrivateKey,
    Provider, PushRequest, Salt, Subject, Subscription, SubscriptionKeys, Topic, Ttl, UaKeys,
    Urgency, VapidKey, VapidSigner, VapidVerifier, base64url, decrypt_with,
};

#[derive(Deserialize)]
#[serde(tag = "op", rename_all = "kebab-case")]
enum Request {
    Providers,
    WpEncrypt {
        provider: String,
        p256dh: String,
        auth: String,
        plaintext: String,
        #[serde(default)]
        pad_to: Option<usize>,
        #[serde(default)]
        ahead: Option<String>,
    },
    WpDecrypt {
        provider: String,
        private: String,
        auth: String,
        body: String,
    },
    EceEncrypt {
        provider: String,
        ikm: String,
        salt: String,
        keyid: String,
        rs: u32,
        plaintext: String,
        padding: usize,
    },
    EceDecrypt {
        provider: String,
        ikm: String,
        body: String,
    },
    VapidPublic {
        provider: String,
        key: String,
    },
    VapidSign {
        provider: String,
        key: String,
        endpoint: String,
        sub: String,
        now: u64,
    },
    VapidVerify {
        provider: String,
        authorization: String,
        audience: String,
        now: u64,
    },
    BuildPush {
        provider: String,
        subscription: String,
        key: String,
        sub: String,
        ttl: u32,
        #[serde(default)]
        urgency: Option<String>,
        #[serde(default)]
        topic: Option<String>,
        plaintext: String,
        now: u64,
    },
}

fn at(now: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(now)
}

fn vapid_key(provider_name: &str, file: &str) -> Result<VapidKey, String> {
    let provider_name_checked = provider(provider_name)?;
    let bytes = b64(file).map_err(|e| e.to_string())?;
    VapidKey::import(&bytes)
        .and_then(|k| k.with_provider(provider_name_checked))
        .map_err(|e| e.to_string())
}

fn signer(provider_name: &str, file: &str, sub: &str) -> Result<VapidSigner, String> {
    Ok(VapidSigner::new(
        vapid_key(provider_name, file)?,
        Subject::new(sub).map_err(|e| e.to_string())?,
    ))
}

fn provider(name: &str) -> Result<Provider, String> {
    Provider::all()
        .iter()
        .copied()
        .find(|p| p.name() == name)
        .ok_or_else(|| format!("provider {name} is not compiled in"))
}

fn b64(text: &str) -> Result<Vec<u8>, Error> {
    base64url::decode(text, "request field")
}

fn handle(request: Request) -> Result<Value, String> {
    let err = |e: Error| e.to_string();
    Ok(match request {
        Request::Providers => {
            json!({ "providers": Provider::all().iter().map(|p| p.name()).collect::<Vec<_>>() })
        }
        Request::WpEncrypt {
            provider: p,
            p256dh,
            auth,
            plaintext,
            pad_to,
            ahead,
        } => {
            let keys = SubscriptionKeys::from_base64url(&p256dh, &auth).map_err(err)?;
            let padding = pad_to.map_or(Padding::None, Padding::Exact);
            let encryptor = Encryptor::new()
                .with_provider(provider(&p)?)
                .with_padding(padding);
            let plaintext = b64(&plaintext).map_err(err)?;
            let rng = &mut rand_core::OsRng;
            let body = match ahead.as_deref() {
                None => encryptor.encrypt(&keys, &plaintext, rng),
                Some("key") => {
                    let key = EphemeralKey::generate(encryptor.provider(), rng).map_err(err)?;
                    encryptor.encrypt_prepared(&keys, &plaintext, key, rng)
                }
                Some("agreement") => {
                    let agreed =
                        Agreement::generate(encryptor.provider(), &keys, rng).map_err(err)?;
                    encryptor.encrypt_agreed(&plaintext, agreed, rng)
                }
                Some(other) => return Err(format!("unknown ahead {other:?}")),
            }
            .map_err(err)?;
            json!({ "body": base64url::encode(&body) })
        }
        Request::WpDecrypt {
            provider: p,
            private,
            auth,
            body,
        } => {
            let ua = UaKeys::new(
                PrivateKey::from_base64url(&private).map_err(err)?,
                AuthSecret::from_base64url(&auth).map_err(err)?,
            )
            .map_err(err)?;
            let plaintext =
                decrypt_with(provider(&p)?, &ua, &b64(&body).map_err(err)?).map_err(err)?;
            json!({ "plaintext": base64url::encode(&plaintext) })
        }
        Request::EceEncrypt {
            provider: p,
            ikm,
            salt,
            keyid,
            rs,
            plaintext,
            padding,
        } => {
            let body = ece::encrypt(
                provider(&p)?,
                &b64(&ikm).map_err(err)?,
                &Salt::from_base64url(&salt).map_err(err)?,
                &b64(&keyid).map_err(err)?,
                RecordSize::new(rs).map_err(err)?,
                &b64(&plaintext).map_err(err)?,
                padding,
            )
            .map_err(err)?;
            json!({ "body": base64url::encode(&body) })
        }
        Request::EceDecrypt {
            provider: p,
            ikm,
            body,
        } => {
            let body = b64(&body).map_err(err)?;
            let (header, plaintext) =
                ece::decrypt(provider(&p)?, &b64(&ikm).map_err(err)?, &body).map_err(err)?;
            json!({
                "plaintext": base64url::encode(&plaintext),
                "keyid": base64url::encode(header.keyid),
                "rs": header.rs.get(),
            })
        }
        Request::VapidPublic { provider: p, key } => {
            json!({ "public": vapid_key(&p, &key)?.public_key().to_base64url() })
        }
        Request::VapidSign {
            provider: p,
            key,
            endpoint,
            sub,
            now,
        } => {
            let endpoint = Endpoint::new(&endpoint).map_err(err)?;
            let token = signer(&p, &key, &sub)?
                .sign(endpoint.origin(), at(now))
                .map_err(err)?;
            json!({ "authorization": token.authorization() })
        }
        Request::VapidVerify {
            provider: p,
            authorization,
            audience,
            now,
        } => {
            let verified = VapidVerifier::new(Origin::new(&audience).map_err(err)?)
                .with_provider(provider(&p)?)
                .verify(&authorization, at(now))
                .map_err(err)?;
            json!({
                "key": verified.public_key().to_base64url(),
                "exp": verified.expires_at(),
                "sub": verified.subject(),
            })
        }
        Request::BuildPush {
            provider: p,
            subscription,
            key,
            sub,
            ttl,
            urgency,
            topic,
            plaintext,
            now,
        } => {
            let subscription = Subscription::from_json(&subscription).map_err(err)?;
            let signer = signer(&p, &key, &sub)?;
            let token = signer
                .sign(subscription.endpoint.origin(), at(now))
                .map_err(err)?;
            let mut builder =
                PushRequest::new(&subscription, Ttl::from_secs(ttl)).vapid(token.clone());
            if let Some(urgency) = urgency {
                builder = builder.urgency(urgency.parse::<Urgency>().map_err(err)?);
            }
            if let Some(topic) = topic {
                builder = builder.topic(Topic::new(&topic).map_err(err)?);
            }
            let encryptor = Encryptor::new().with_provider(provider(&p)?);
            let request = builder
                .build(
                    &encryptor,
                    &b64(&plaintext).map_err(err)?,
                    &mut rand_core::OsRng,
                )
                .map_err(err)?;
            let headers: serde_json::Map<String, Value> = request
                .headers()
                .iter()
                .map(|(name, value)| {
                    let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                    (name.as_str().to_owned(), Value::String(value))
                })
                .collect();
            json!({
                "method": request.method().as_str(),
                "uri": request.uri().to_string(),
                "headers": headers,
                "body": base64url::encode(request.body()),
            })
        }
    })
}

fn main() -> std::io::Result<()> {
    let stdin = std::io::stdin();
    let mut stdout = std::io::stdout().lock();
    for line in stdin.lock().lines() {
        let line = line?;
        let answer = serde_json::from_str::<Request>(&line)
            .map_err(|e| format!("bad request: {e}"))
            .and_then(handle)
            .unwrap_or_else(|e| json!({ "error": e }));
        writeln!(stdout, "{answer}")?;
        stdout.flush()?;
    }
    Ok(())
}
