//! The whole IMAP WEBPUSH lifecycle, offline: an in-memory server and a client (a
//! browser, Delta Chat) play GETVAPID, WEBPUSH, the verification push, ACKWEBPUSH, a
//! new-mail push, LWEBPUSH, SILWEBPUSH, a VAPID key rotation and the delete.
//!
//! Every push is encrypted (RFC 8291), signed for the push service (VAPID, RFC 8292)
//! and printed as the HTTP request that would go out; the client decrypts it and
//! reads the IMAP responses inside. The client uses the draft's keys (those of RFC 8291
//! Appendix A), so the transcript matches the draft's slides.
//!
//! ```text
//! cargo run -p imap-webpush-proto --example lifecycle [-- --seed N]
//! ```

use std::time::{Duration, SystemTime};

use imap_syntax::Mailbox;
use imap_webpush_proto::content::{ContentBuilder, Event, MailboxEvents, PushItem, parse_push};
use imap_webpush_proto::state::{
    Account, ConnectionId, ConnectionIds, Push, Settings, VapidKeyId, disconnect, handle,
    receives_pushes,
};
use imap_webpush_proto::{Command, Config, Response};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use webpush_crypto::{
    AuthSecret, Encryptor, PrivateKey, Subject, TokenCache, Ttl, UaKeys, Urgency, VapidKey,
    VapidSigner, decrypt,
};

// The client of the slides: RFC 8291 Appendix A's user agent, and the draft's values.
#[path = "../tests/support/slide.rs"]
mod slide;
use slide::{AUTH as UA_AUTH, ID as SUB_ID, JZ as ENDPOINT, UA_PRIVATE};

type Error = Box<dyn std::error::Error>;

/// The server: settings, the account's stored subscriptions, its VAPID token cache.
struct Server {
    settings: Settings,
    account: Account,
    tokens: TokenCache,
    rng: ChaCha20Rng,
    now: SystemTime,
    connections: ConnectionIds,
    connection: ConnectionId,
}

impl Server {
    fn new(seed: u64) -> Result<Self, Error> {
        let mut rng = ChaCha20Rng::seed_from_u64(seed);
        let key = VapidKey::generate(&mut rng)?;
        let settings = Settings::new(key.public_key().clone(), VapidKeyId(1));
        let tokens = TokenCache::new(VapidSigner::new(
            key,
            Subject::new("mailto:postmaster@mail.example")?,
        ));
        let mut connections = ConnectionIds::new(&mut rng)?;
        Ok(Self {
            settings,
            account: Account::default(),
            tokens,
            connection: connections.next_id(),
            connections,
            rng,
            now: SystemTime::UNIX_EPOCH + Duration::from_secs(1_800_000_000),
        })
    }

    /// The client's IMAP connection ends: the silences it set end with it.
    fn disconnect(&mut self) {
        let changes = disconnect(&self.account, self.connection);
        println!(
            "  (the client disconnects: {} silence(s) end)\n",
            changes.len()
        );
        self.account.apply(&changes);
    }

    /// The client connects again.
    fn reconnect(&mut self) {
        self.connection = self.connections.next_id();
    }

    /// One command line from the client: decoded, applied, answered, pushes sent.
    fn command(&mut self, line: &str, client: &Client) -> Result<(), Error> {
        println!("C: {line}");
        let wire = format!("{line}\r\n");
        let (_, command) = Command::decode(wire.as_bytes(), &Config::SERVER)?;
        let t = handle(
            &command,
            &self.account,
            &self.settings,
            self.now,
            self.connection,
            &mut self.rng,
        );
        self.account.apply(&t.changes);
        for response in t.untagged.iter().chain([&t.tagged]) {
            print_response(response)?;
        }
        for push in &t.pushes {
            self.push(push, client)?;
        }
        Ok(())
    }

    /// Encrypts, signs and "sends" one push; the client reads it.
    fn push(&mut self, push: &Push, client: &Client) -> Result<(), Error> {
        let token = self.tokens.token(push.endpoint.origin(), self.now)?;
        let request = push.to_request(
            token,
            Ttl::from_secs(3600),
            Urgency::High,
            None,
            &Encryptor::new(),
            &mut self.rng,
        )?;
        println!(
            "\n  --> push service: {} {}",
            request.method(),
            request.uri()
        );
        for (name, value) in request.headers() {
            let value = value.to_str().unwrap_or("<binary>");
            let shown = match value.get(..100) {
                Some(head) if value.len() > 100 => format!("{head}…"),
                _ => value.to_owned(),
            };
            println!("      {name}: {shown}");
        }
        println!(
            "      <{} octets of aes128gcm ciphertext>",
            request.body().len()
        );
        client.receive(request.body())?;
        println!();
        Ok(())
    }

    /// New mail: a push to every subscription that should get one.
    fn new_mail(&mut self, events: &[MailboxEvents<'_>], client: &Client) -> Result<(), Error> {
        let pushes = ContentBuilder::for_encryptor(&Encryptor::new()).build(events);
        let me = self.connection;
        let targets: Vec<Push> = self
            .account
            .records
            .iter()
            .filter(|r| receives_pushes(r, &self.settings, self.now, |c| c == me))
            .flat_map(|r| pushes.iter().map(|p| Push::new(r, p.clone())))
            .collect();
        if targets.is_empty() {
            println!(
                "  (new mail: no active, unsilenced subscription under the current VAPID key; no push)\n"
            );
        }
        for push in &targets {
            self.push(push, client)?;
        }
        Ok(())
    }

    /// A new VAPID key: subscriptions activated under the old one get no pushes until
    /// the client subscribes again.
    fn rotate_vapid_key(&mut self) -> Result<(), Error> {
        let key = VapidKey::generate(&mut self.rng)?;
        self.settings.vapid_key = key.public_key().clone();
        self.settings.vapid_key_id = VapidKeyId(self.settings.vapid_key_id.0 + 1);
        self.tokens = TokenCache::new(VapidSigner::new(
            key,
            Subject::new("mailto:postmaster@mail.example")?,
        ));
        Ok(())
    }
}

fn print_response(response: &Response<'_>) -> Result<(), Error> {
    let mut out = Vec::new();
    response.encode(&mut out)?;
    print!("S: {}", String::from_utf8_lossy(&out).replace("\r\n", "\n"));
    Ok(())
}

/// The client: it holds the subscription's private key and reads pushes.
struct Client {
    keys: UaKeys,
    /// The token of the last verification push received.
    token: std::cell::RefCell<Option<String>>,
}

impl Client {
    fn receive(&self, body: &[u8]) -> Result<(), Error> {
        let plaintext = decrypt(&self.keys, body)?;
        println!("  <-- client decrypts:");
        for line in String::from_utf8_lossy(&plaintext).lines() {
            println!("      {line}");
        }
        for item in parse_push(&plaintext) {
            match item {
                PushItem::Ack(token) => {
                    println!(
                        "      => verification: answer ACKWEBPUSH {}",
                        token.as_str()
                    );
                    *self.token.borrow_mut() = Some(token.as_str().to_owned());
                }
                PushItem::Mailbox(group) => println!(
                    "      => {} event(s) in {}",
                    group.events.len(),
                    String::from_utf8_lossy(group.mailbox.as_bytes())
                ),
                other => println!("      => {other:?}"),
            }
        }
        Ok(())
    }

    /// The token of the last verification push.
    fn take_token(&self) -> Result<String, Error> {
        Ok(self
            .token
            .borrow_mut()
            .take()
            .ok_or("no verification push received")?)
    }
}

fn heading(text: &str) {
    println!("\n== {text}\n");
}

fn main() -> Result<(), Error> {
    let seed = std::env::args()
        .skip_while(|a| a != "--seed")
        .nth(1)
        .map(|s| s.parse::<u64>())
        .transpose()?
        .unwrap_or(1);
    let client = Client {
        keys: UaKeys::new(
            PrivateKey::from_base64url(UA_PRIVATE)?,
            AuthSecret::from_base64url(UA_AUTH)?,
        )?,
        token: std::cell::RefCell::new(None),
    };
    let mut server = Server::new(seed)?;
    let p256dh = client.keys.public_key().to_base64url();
    let auth = client.keys.auth().to_base64url();
    let subscribe = format!("WEBPUSH {SUB_ID} {ENDPOINT} {p256dh} {auth}");

    heading("1. The client asks for the server's VAPID key (its applicationServerKey)");
    server.command("a1 GETVAPID", &client)?;

    heading("2. It subscribes; the server stores the subscription inactive and pushes a token");
    server.command(&format!("a2 {subscribe}"), &client)?;

    heading("3. The client returns the token: the endpoint is proven, the subscription active");
    let token = client.take_token()?;
    server.now += Duration::from_secs(5);
    server.command(&format!("a3 ACKWEBPUSH {token}"), &client)?;

    heading("4. New mail arrives: the push carries the IMAP responses the client needs");
    server.now += Duration::from_secs(60);
    server.new_mail(&[slide::new_mail()], &client)?;

    heading("5. The client lists its subscriptions");
    server.command("a4 LWEBPUSH *", &client)?;

    heading("6. While connected, it silences pushes to itself until this connection ends");
    server.command(&format!("a5 SILWEBPUSH {SUB_ID} 0"), &client)?;
    server.new_mail(&[slide::new_mail()], &client)?;
    server.disconnect();
    server.new_mail(
        &[MailboxEvents {
            mailbox: Mailbox::Inbox,
            events: vec![Event::Exists(4)],
        }],
        &client,
    )?;

    heading("7. The server rotates its VAPID key: the subscription must be confirmed again");
    server.rotate_vapid_key()?;
    server.reconnect();
    server.new_mail(&[slide::new_mail()], &client)?;
    server.command("b1 GETVAPID", &client)?;
    server.command(&format!("b2 {subscribe}"), &client)?;
    let token = client.take_token()?;
    server.command(&format!("b3 ACKWEBPUSH {token}"), &client)?;

    heading("8. The client unsubscribes");
    server.command(&format!("b4 WEBPUSH {SUB_ID} NIL"), &client)?;
    server.command("b5 LWEBPUSH *", &client)?;
    Ok(())
}
