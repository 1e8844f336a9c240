//! An xapsd-style daemon's whole path, without sockets or timers: a device registers,
//! mail events arrive, the debouncer decides, and the APNs requests that would be
//! sent are printed. Time is simulated, so the run is instant and repeatable.
//!
//! ```sh
//! cargo run -p xaps-proto --example daemon_flow
//! ```

use std::error::Error;
use std::time::{Duration, Instant, SystemTime};

use apns_proto::{Environment, MailPush, Outcome, Topic};
use xaps_proto::daemon::{Notify, Register};
use xaps_proto::legacy::{Answer, Request};
use xaps_proto::registry::{Lookup, Registry};
use xaps_proto::{AccountId, Command, Debouncer, DeviceToken, UserName, registered_response};

const TOPIC: &str = "com.apple.mail.XServer.d19011df-561b-444d-ac59-09459e74a5e6";

/// A registration, as the debouncer keys it: (device token, account id).
type Key = (DeviceToken, AccountId);

fn main() -> Result<(), Box<dyn Error>> {
    let start = Instant::now();
    let wall = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    let at = |secs: u64| {
        (
            start + Duration::from_secs(secs),
            wall + Duration::from_secs(secs),
        )
    };

    let mut registry = Registry::new();
    let mut debouncer: Debouncer<Key> = Debouncer::default();
    let topic = Topic::try_from(TOPIC)?;
    let mut apns = MailPush::new(Environment::Production, &topic);

    // 1. The iPhone registers over IMAP; the server answers with its topic and its
    //    plugin posts /register for the *authenticated* user.
    let line = b"7 XAPPLEPUSHSERVICE aps-version 2 aps-account-id 55FAD99D-748E-44DA-8A7F-91D3478CAABD aps-device-token 73B23C63C18344D1BBBAB10887FD540BA4B00741987CA28CBB7C0C607F0667FF aps-subtopic com.apple.mobilemail mailboxes (INBOX \"Sent Messages\")\r\n";
    let (_, command) = Command::decode(line)?;
    println!("C: {}", String::from_utf8_lossy(line).trim_end());
    let reply = registered_response(command.request.version, TOPIC)?;
    println!("S: {}", String::from_utf8_lossy(&reply).trim_end());
    let alice = UserName::new("alice@example.org")?;
    let body = Register::new(&command.request, &alice).to_json()?;
    println!("plugin -> POST /register {body}");
    let wall_now = at(0).1;
    let (registered, change) =
        registry.register(Register::from_json(body.as_bytes())?, wall_now)?;
    println!("  registry: {registered:?}, answer 200 with the topic once this is stored:");
    println!("  {change:?}");

    // A second device arrives over the legacy socket protocol.
    let legacy = b"REGISTER aps-account-id=\"0A7C4DFD-3FC4-418D-B4FC-F6EE59603731\"\taps-device-token=\"3A1E4FBA6214E9DB210D15BAF10D5EE85ED217437B9BAC4AFACB8416AAD6E46D\"\taps-subtopic=\"com.apple.mobilemail\"\tdovecot-username=\"alice@example.org\"\tdovecot-mailboxes=(\"INBOX\")\r\n";
    println!("plugin -> {}", String::from_utf8_lossy(legacy).trim_end());
    if let (_, Request::Register(register)) = Request::decode(legacy)? {
        println!("  registry: {:?}", registry.register(register, wall_now)?.0);
        print!(
            "  answer: {}",
            String::from_utf8_lossy(&Answer::ok(TOPIC).encode())
        );
    }

    // 2. Mail events, as the plugin posts them.
    let events: [(u64, &str, &str, &[&str]); 6] = [
        (1, "alice@example.org", "INBOX", &["FlagsSet"]),
        (5, "alice@example.org", "INBOX", &["MessageRead"]),
        (12, "alice@example.org", "INBOX", &["MessageNew"]),
        (20, "alice@example.org", "Sent Messages", &["MessageAppend"]),
        (21, "alice@example.org", "Junk", &["MessageNew"]),
        (22, "bob@example.org", "INBOX", &["MessageNew"]),
    ];
    for (secs, user, mailbox, names) in events {
        let (now, wall_now) = at(secs);
        let due = debouncer.poll(now);
        send(&mut apns, &due, wall_now, "delayed")?;
        let notify = Notify::new(
            UserName::new(user)?,
            mailbox.into(),
            names.iter().map(|e| (*e).to_owned()).collect(),
            Vec::new(),
        )?;
        println!(
            "\nt={secs:>2}s plugin -> POST /notify {}",
            notify.to_json()?
        );
        let lookup = registry.lookup_notify(&notify);
        println!("  answer {}", lookup.outcome().status());
        if let Lookup::Push(targets) = lookup {
            let new_mail = notify.is_message_new();
            for target in targets {
                let key = (target.device_token.clone(), target.account_id.clone());
                match debouncer.on_event(key, new_mail, now) {
                    Some(key) => send(&mut apns, &[key], wall_now, "new mail")?,
                    None => println!(
                        "  {:?}: push scheduled 30 s after the last event",
                        target.device_token
                    ),
                }
            }
        }
    }

    // 3. The daemon's timer fires when the debouncer says.
    while let Some(deadline) = debouncer.next_deadline() {
        let secs = deadline.duration_since(start).as_secs();
        println!("\nt={secs:>2}s timer");
        let due = debouncer.poll(deadline);
        send(&mut apns, &due, at(secs).1, "delayed")?;
    }

    // 4. APNs says a token is gone: only registrations older than its timestamp go.
    let response = br#"{"reason":"Unregistered","timestamp":1700000100000}"#;
    let outcome = Outcome::from_parts(410, None, None, response);
    println!(
        "\nAPNs <- 410 {}: {:?}",
        String::from_utf8_lossy(response),
        outcome.action()
    );
    // The token of the device that registered over the legacy protocol.
    let gone =
        DeviceToken::new("3a1e4fba6214e9db210d15baf10d5ee85ed217437b9bac4afacb8416aad6e46d")?;
    if let apns_proto::Action::DropToken { since: Some(since) } = outcome.action() {
        for removed in registry.unregistered(&gone, since) {
            println!(
                "  removed {} / {}",
                removed.user,
                removed.account_id.as_str()
            );
            debouncer.cancel(&(removed.registration.device_token, removed.account_id));
        }
    }

    // 5. What the daemon writes to disk, in xapsd's format.
    println!("\nxapsd database:\n{}", registry.to_xapsd_json()?);
    Ok(())
}

/// Prints the APNs request for each due registration.
fn send(
    apns: &mut MailPush,
    due: &[Key],
    now: SystemTime,
    why: &str,
) -> Result<(), Box<dyn Error>> {
    for (token, account) in due {
        let request = apns.request(token, account.as_str(), now, None)?;
        println!("  push ({why}): {} {}", request.method(), request.uri());
        for (name, value) in request.headers() {
            println!("    {name}: {}", value.to_str()?);
        }
        println!("    {}", String::from_utf8_lossy(request.body()));
    }
    Ok(())
}
