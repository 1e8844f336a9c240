//! Reads one JSON request per line on stdin and answers one JSON line on stdout, so the
//! interop suite (`interop/*.py`) can drive this project next to independent
//! implementations. Binary values are unpadded base64url.
//!
//! Requests (`op`):
//! * `providers` → `{"providers": [...]}`
//! * `wp-encrypt` {provider, p256dh, auth, plaintext, pad_to?} → `{"body"}`
//! * `wp-decrypt` {provider, private, auth, body} → `{"plaintext"}`
//! * `ece-encrypt` {provider, ikm, salt, keyid, rs, plaintext, padding} → `{"body"}`
//! * `ece-decrypt` {provider, ikm, body} → `{"plaintext", "keyid", "rs"}`
//!
//! Any failure answers `{"error": "..."}`, and the helper goes on with the next line.

use std::io::{BufRead, Write};

use serde::Deserialize;
use serde_json::{Value, json};
use webpush_crypto::ece::{self, RecordSize};
use webpush_crypto::{
    AuthSecret, Encryptor, Error, Padding, PrivateKey, Provider, Salt, SubscriptionKeys, UaKeys,
    base64url, decrypt_with,
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
        } => {
            let keys = SubscriptionKeys::from_base64url(&p256dh, &auth).map_err(err)?;
            let padding = pad_to.map_or(Padding::None, Padding::Exact);
            let body = Encryptor::new()
                .with_provider(provider(&p)?)
                .with_padding(padding)
                .encrypt(&keys, &b64(&plaintext).map_err(err)?, &mut rand_core::OsRng)
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
