//! Every transition of the subscription state machine, and that refusals change nothing.

use std::time::{Duration, SystemTime};

use imap_webpush_proto::content::{PushItem, parse_push};
use imap_webpush_proto::state::{
    Account, Activation, Change, ConnectionId, ConnectionIds, Settings, Silence, Transition,
    VapidKeyId, disconnect, handle, receives_pushes, sweep,
};
use imap_webpush_proto::{Code, Command, Config, Response, SilenceState, Status, StatusKind};
use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use slide::{AUTH, ID, P256DH, VAPID};
use webpush_crypto::PublicKey;

#[path = "support/slide.rs"]
mod slide;

const C1: ConnectionId = ConnectionId {
    instance: 1,
    serial: 1,
};
const C9: ConnectionId = ConnectionId {
    instance: 1,
    serial: 9,
};

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

const T0: u64 = 1_700_000_000;

struct Server {
    settings: Settings,
    account: Account,
    rng: ChaCha20Rng,
}

impl Server {
    fn new() -> Self {
        Self {
            settings: Settings::new(PublicKey::from_base64url(VAPID).unwrap(), VapidKeyId(1)),
            account: Account::default(),
            rng: ChaCha20Rng::seed_from_u64(7),
        }
    }

    fn run(&mut self, line: &str, now: u64, connection: ConnectionId) -> Transition {
        let (_, command) = Command::decode(line.as_bytes(), &Config::SERVER).unwrap();
        let t = handle(
            &command,
            &self.account,
            &self.settings,
            at(now),
            connection,
            &mut self.rng,
        );
        self.account.apply(&t.changes);
        t
    }

    fn subscribe(&mut self, tag: &str, id: &str, endpoint: &str, now: u64) -> Transition {
        self.run(
            &format!("{tag} WEBPUSH {id} {endpoint} {P256DH} {AUTH}\r\n"),
            now,
            C1,
        )
    }

    /// The token from the verification push of `t`.
    fn token(t: &Transition) -> String {
        assert_eq!(t.pushes.len(), 1);
        let items = parse_push(&t.pushes[0].plaintext);
        let [PushItem::Ack(token)] = &items[..] else {
            panic!("{items:?}")
        };
        token.as_str().to_owned()
    }
}

fn status(t: &Transition) -> (StatusKind, Option<Code<'static>>) {
    let Response::Status(Status { kind, code, .. }) = &t.tagged else {
        panic!("{:?}", t.tagged)
    };
    (*kind, code.clone())
}

fn assert_no(t: &Transition) {
    assert_eq!(status(t).0, StatusKind::No, "{:?}", t.tagged);
    assert!(t.changes.is_empty() && t.pushes.is_empty() && t.untagged.is_empty());
}

#[test]
fn lifecycle_create_ack_silence_delete() {
    let mut s = Server::new();
    let t = s.run("a1 GETVAPID\r\n", T0, C1);
    assert_eq!(t.untagged, [Response::Vapid(s.settings.vapid_key.clone())]);

    let t = s.subscribe("a2", ID, "https://push.example.net/push/random1", T0);
    assert_eq!(status(&t).0, StatusKind::Ok);
    assert!(matches!(t.untagged[0], Response::Vapid(_)), "VAPID first");
    assert!(matches!(
        t.untagged[1],
        Response::WebPush {
            silence: SilenceState::NotSilenced,
            ..
        }
    ));
    let token = Server::token(&t);
    assert_eq!(token.len(), 22, "128 random bits, base64url");
    assert!(matches!(
        s.account.records[0].activation,
        Activation::Inactive { .. }
    ));
    assert!(!receives_pushes(
        &s.account.records[0],
        &s.settings,
        at(T0),
        |_| { true }
    ));

    let t = s.run(&format!("a3 ACKWEBPUSH {token}\r\n"), T0 + 10, C1);
    assert_eq!(status(&t).0, StatusKind::Ok);
    assert_eq!(
        s.account.records[0].activation,
        Activation::Active {
            vapid_key: VapidKeyId(1)
        }
    );
    assert!(receives_pushes(
        &s.account.records[0],
        &s.settings,
        at(T0 + 10),
        |_| true
    ));

    // Single use: the same token again is unknown, and nothing changes.
    let before = s.account.clone();
    assert_no(&s.run(&format!("a4 ACKWEBPUSH {token}\r\n"), T0 + 11, C1));
    assert_eq!(s.account, before);

    // The same WEBPUSH again: still active, no new push, nothing stored.
    let t = s.subscribe("a5", ID, "https://push.example.net/push/random1", T0 + 12);
    assert!(t.pushes.is_empty() && t.changes.is_empty());
    assert!(matches!(t.untagged[..], [Response::WebPush { .. }]));

    // Silence for 300 s, then until the connection ends.
    let t = s.run(&format!("a6 SILWEBPUSH {ID} 300\r\n"), T0 + 20, C1);
    assert!(
        matches!(&t.untagged[0], Response::WebPush { silence: SilenceState::For(n), .. } if n.get() == 300)
    );
    assert!(!receives_pushes(
        &s.account.records[0],
        &s.settings,
        at(T0 + 319),
        |_| true
    ));
    assert!(receives_pushes(
        &s.account.records[0],
        &s.settings,
        at(T0 + 320),
        |_| true
    ));
    let t = s.run(&format!("a7 SILWEBPUSH {ID} 0\r\n"), T0 + 30, C9);
    assert!(matches!(
        &t.untagged[0],
        Response::WebPush {
            silence: SilenceState::UntilDisconnect,
            ..
        }
    ));
    assert_eq!(s.account.records[0].silence, Silence::UntilDisconnect(C9));
    assert!(!receives_pushes(
        &s.account.records[0],
        &s.settings,
        at(T0 + 31),
        |c| c == C9
    ));
    assert!(receives_pushes(
        &s.account.records[0],
        &s.settings,
        at(T0 + 31),
        |_| false
    ));

    let t = s.run("a8 LWEBPUSH *\r\n", T0 + 40, C1);
    assert_eq!(t.untagged.len(), 1);
    assert!(matches!(
        &t.untagged[0],
        Response::WebPush {
            silence: SilenceState::UntilDisconnect,
            ..
        }
    ));
    // The silencing connection ends: the silence ends with it, and a later listing on
    // another connection says so.
    let changes = disconnect(&s.account, C9);
    assert_eq!(changes.len(), 1);
    assert!(
        disconnect(&s.account, C1).is_empty(),
        "another connection's end"
    );
    s.account.apply(&changes);
    assert_eq!(s.account.records[0].silence, Silence::None);
    let t = s.run("a8 LWEBPUSH *\r\n", T0 + 41, C1);
    assert!(matches!(
        &t.untagged[0],
        Response::WebPush {
            silence: SilenceState::NotSilenced,
            ..
        }
    ));

    // Delete, and delete again (unknown id): both OK.
    let t = s.run(&format!("a9 WEBPUSH {ID} NIL\r\n"), T0 + 50, C1);
    assert_eq!((status(&t).0, t.changes.len()), (StatusKind::Ok, 1));
    assert!(s.account.records.is_empty());
    let t = s.run(&format!("b1 WEBPUSH {ID} NIL\r\n"), T0 + 51, C1);
    assert_eq!((status(&t).0, t.changes.len()), (StatusKind::Ok, 0));
}

#[test]
fn tokens_expire_and_changes_deactivate() {
    let mut s = Server::new();
    let t = s.subscribe("a1", ID, "https://push.example.net/p/1", T0);
    let token = Server::token(&t);
    let before = s.account.clone();
    let t = s.run(&format!("a2 ACKWEBPUSH {token}\r\n"), T0 + 300, C1);
    assert_eq!(status(&t).0, StatusKind::No);
    assert_eq!(s.account, before, "an expired token changes nothing");

    // WEBPUSH again issues a fresh token; the old one is dead.
    let t = s.subscribe("a3", ID, "https://push.example.net/p/1", T0 + 400);
    let fresh = Server::token(&t);
    assert_ne!(fresh, token);
    assert_no(&s.run(&format!("a4 ACKWEBPUSH {token}\r\n"), T0 + 401, C1));
    assert_eq!(
        status(&s.run(&format!("a5 ACKWEBPUSH {fresh}\r\n"), T0 + 402, C1)).0,
        StatusKind::Ok
    );

    // A changed endpoint makes it inactive again, with a new verification push.
    let t = s.subscribe("a6", ID, "https://push.example.net/p/2", T0 + 500);
    assert_eq!(t.pushes.len(), 1);
    assert!(matches!(
        s.account.records[0].activation,
        Activation::Inactive { .. }
    ));
}

#[test]
fn vapid_rotation_deactivates() {
    let mut s = Server::new();
    let t = s.subscribe("a1", ID, "https://push.example.net/p/1", T0);
    let token = Server::token(&t);
    s.run(&format!("a2 ACKWEBPUSH {token}\r\n"), T0 + 1, C1);
    s.settings.vapid_key_id = VapidKeyId(2);
    assert!(!receives_pushes(
        &s.account.records[0],
        &s.settings,
        at(T0 + 2),
        |_| false
    ));
    let t = s.subscribe("a3", ID, "https://push.example.net/p/1", T0 + 3);
    assert_eq!(t.pushes.len(), 1, "re-verification after rotation");
    assert!(matches!(
        s.account.records[0].activation,
        Activation::Inactive { .. }
    ));
}

/// The VAPID key rotated between WEBPUSH and ACKWEBPUSH: the client subscribed its push
/// service with the old one, so the token is refused, and changes nothing; WEBPUSH
/// again (unchanged, its token still live) makes a new token under the new key, which
/// activates the subscription.
#[test]
fn a_token_sent_under_a_rotated_vapid_key_does_not_activate() {
    let mut s = Server::new();
    let t = s.subscribe("a1", ID, "https://push.example.net/p/1", T0);
    let old = Server::token(&t);
    s.settings.vapid_key_id = VapidKeyId(2);
    let before = s.account.clone();
    let t = s.run(&format!("a2 ACKWEBPUSH {old}\r\n"), T0 + 1, C1);
    assert_no(&t);
    assert_eq!(s.account, before);
    let t = s.subscribe("a3", ID, "https://push.example.net/p/1", T0 + 2);
    assert!(matches!(t.untagged[0], Response::Vapid(_)));
    let new = Server::token(&t);
    assert_ne!(new, old);
    assert_no(&s.run(&format!("a4 ACKWEBPUSH {old}\r\n"), T0 + 3, C1));
    let t = s.run(&format!("a5 ACKWEBPUSH {new}\r\n"), T0 + 3, C1);
    assert_eq!(status(&t).0, StatusKind::Ok);
    assert_eq!(
        s.account.records[0].activation,
        Activation::Active {
            vapid_key: VapidKeyId(2)
        }
    );
}

#[test]
fn refusals_leave_the_account_unchanged() {
    let mut s = Server::new();
    s.settings.max_subscriptions = 2;
    s.subscribe("a1", "one", "https://push.example.net/p/1", T0);
    s.subscribe("a2", "two", "https://push.example.net/p/2", T0);
    let before = s.account.clone();

    let t = s.subscribe("a3", "three", "https://push.example.net/p/3", T0);
    assert_eq!(status(&t), (StatusKind::No, Some(Code::Limit)));
    // Updating an existing one is not blocked by the limit.
    assert_eq!(
        status(&s.subscribe("a4", "two", "https://push.example.net/p/2b", T0)).0,
        StatusKind::Ok
    );
    let before_policy = s.account.clone();
    for endpoint in [
        "https://127.0.0.1/p",
        "https://[::1]/p",
        "http://push.example.net/p",
        "https://10.0.0.1/p",
    ] {
        let t = s.subscribe("a5", "one", endpoint, T0);
        assert_eq!(
            status(&t),
            (StatusKind::No, Some(Code::Cannot)),
            "{endpoint}"
        );
        assert_no(&t);
    }
    assert_eq!(s.account, before_policy);
    assert_ne!(before, before_policy);

    // The VAPID key as the subscription key.
    let t = s.run(
        &format!("a6 WEBPUSH one https://push.example.net/p/1 {VAPID} {AUTH}\r\n"),
        T0,
        C1,
    );
    assert_no(&t);

    // Unknown and guessed tokens; silencing what is unknown or inactive.
    assert_no(&s.run("a7 ACKWEBPUSH AAAAAAAAAAAAAAAAAAAAAA\r\n", T0, C1));
    assert_no(&s.run("a8 SILWEBPUSH nope 10\r\n", T0, C1));
    assert_no(&s.run("a9 SILWEBPUSH one 10\r\n", T0, C1));
    assert_no(&s.run("b1 LWEBPUSH nope\r\n", T0, C1));
    assert_eq!(s.account, before_policy);
}

#[test]
fn a_token_from_another_account_does_not_match() {
    let mut alice = Server::new();
    let t = alice.subscribe("a1", ID, "https://push.example.net/p/1", T0);
    let token = Server::token(&t);
    let mut bob = Server::new();
    bob.rng = ChaCha20Rng::seed_from_u64(8);
    bob.subscribe("b1", ID, "https://push.example.net/p/1", T0);
    let before = bob.account.clone();
    assert_no(&bob.run(&format!("b2 ACKWEBPUSH {token}\r\n"), T0 + 1, C1));
    assert_eq!(bob.account, before);
}

/// The amplification the ACK handshake exists to stop: a client repeating the same
/// WEBPUSH must not make the server push again and again.
#[test]
fn identical_webpush_commands_push_once_per_interval() {
    let mut s = Server::new();
    let mut pushes = 0;
    let mut tokens = std::collections::HashSet::new();
    for i in 0..1000 {
        let t = s.subscribe("a1", ID, "https://push.example.net/p/1", T0);
        assert_eq!(status(&t).0, StatusKind::Ok, "command {i}");
        pushes += t.pushes.len();
        tokens.extend(t.pushes.iter().map(|p| p.plaintext.clone()));
    }
    assert_eq!(pushes, 1, "1,000 identical commands in one second");
    assert_eq!(s.account.records.len(), 1);

    // One a second for ten minutes: the pending token is pushed again once a minute
    // while it lives, then a fresh one once it expired; never more.
    let mut s = Server::new();
    let mut pushes = 0;
    let mut tokens = std::collections::HashSet::new();
    for i in 0..600 {
        let t = s.subscribe("a1", ID, "https://push.example.net/p/1", T0 + i);
        pushes += t.pushes.len();
        tokens.extend(t.pushes.iter().map(|p| p.plaintext.clone()));
    }
    assert_eq!(pushes, 10, "one per resend interval");
    assert_eq!(
        tokens.len(),
        2,
        "the token lives five minutes, then a new one"
    );
}

#[test]
fn verification_pushes_per_account_are_limited() {
    let mut s = Server::new();
    s.settings.max_subscriptions = 100;
    // New subscriptions, each its own verification push: 20 an hour, then NO [LIMIT].
    for i in 0..20 {
        let t = s.subscribe("a1", &format!("id{i}"), "https://push.example.net/p/1", T0);
        assert_eq!((status(&t).0, t.pushes.len()), (StatusKind::Ok, 1), "{i}");
    }
    let before = s.account.clone();
    let t = s.subscribe("a2", "id20", "https://push.example.net/p/1", T0 + 10);
    assert_eq!(status(&t), (StatusKind::No, Some(Code::Limit)));
    assert_no(&t);
    assert_eq!(s.account, before, "a refused command changes nothing");
    // Deleting and re-creating does not reset the count.
    s.run("a3 WEBPUSH id0 NIL\r\n", T0 + 20, C1);
    assert_no(&s.subscribe("a4", "id0", "https://push.example.net/p/1", T0 + 21));
    // A new window, new pushes.
    let t = s.subscribe("a5", "id20", "https://push.example.net/p/1", T0 + 3600);
    assert_eq!((status(&t).0, t.pushes.len()), (StatusKind::Ok, 1));
}

#[test]
fn sweep_ends_what_is_over() {
    let mut s = Server::new();
    let t = s.subscribe("a1", "pending", "https://push.example.net/p/1", T0);
    let _ = Server::token(&t);
    let t = s.subscribe("a2", "silenced", "https://push.example.net/p/2", T0);
    let token = Server::token(&t);
    s.run(&format!("a3 ACKWEBPUSH {token}\r\n"), T0 + 1, C1);
    s.run("a4 SILWEBPUSH silenced 0\r\n", T0 + 2, C9);
    // Before anything is over, nothing changes.
    assert!(sweep(&s.account, at(T0 + 3), |c| c == C9).is_empty());
    // The token expired and the silencing connection is gone (a restart: none of the
    // old process's connections are open).
    let ids = ConnectionIds::new(&mut ChaCha20Rng::seed_from_u64(1)).unwrap();
    let changes = sweep(&s.account, at(T0 + 300), |c| ids.owns(c));
    s.account.apply(&changes);
    assert_eq!(
        s.account.records.len(),
        1,
        "the never acknowledged one is gone"
    );
    assert_eq!(s.account.records[0].sub_id.as_str(), "silenced");
    assert_eq!(s.account.records[0].silence, Silence::None);
    // A timed silence ends when its time is up.
    s.run("a5 SILWEBPUSH silenced 60\r\n", T0 + 400, C1);
    assert!(sweep(&s.account, at(T0 + 459), |_| true).is_empty());
    let changes = sweep(&s.account, at(T0 + 460), |_| true);
    assert!(matches!(&changes[..], [Change::Store(r)] if r.silence == Silence::None));
}

#[test]
fn connection_ids_do_not_collide_across_restarts() {
    let mut rng = ChaCha20Rng::seed_from_u64(3);
    let mut before = ConnectionIds::new(&mut rng).unwrap();
    let mut after = ConnectionIds::new(&mut rng).unwrap();
    let old: Vec<_> = (0..100).map(|_| before.next_id()).collect();
    let new: Vec<_> = (0..100).map(|_| after.next_id()).collect();
    assert!(old.iter().all(|c| !new.contains(c)));
    assert!(old.iter().all(|&c| !after.owns(c)));
}

#[cfg(feature = "serde")]
#[test]
fn accounts_round_trip_through_serde() {
    let mut s = Server::new();
    let t = s.subscribe("a1", ID, "https://push.example.net/p/1", T0);
    let token = Server::token(&t);
    s.subscribe("a2", "two", "https://push.example.net/p/2", T0);
    s.run(&format!("a3 ACKWEBPUSH {token}\r\n"), T0 + 1, C1);
    s.run(&format!("a4 SILWEBPUSH {ID} 0\r\n"), T0 + 2, C9);
    let json = serde_json::to_string(&s.account).unwrap();
    let again: Account = serde_json::from_str(&json).unwrap();
    assert_eq!(again, s.account);
    // A pending record stored before the key it was made under was kept reads, without.
    assert!(json.contains(",\"vapid_key\":1}"), "{json}");
    let earlier: Account = serde_json::from_str(&json.replace(",\"vapid_key\":1}", "}")).unwrap();
    assert!(earlier.records.iter().any(|r| matches!(
        r.activation,
        Activation::Inactive {
            vapid_key: None,
            ..
        }
    )));
    // What the store holds is checked on the way back in.
    let tampered = json.replace("https://push.example.net/p/2", "https://x:99999/");
    assert!(serde_json::from_str::<Account>(&tampered).is_err());
}

/// A silence "until this connection ends" set where the end may never be reported
/// ends at the limit, though the connection counts as open, unless it ends first;
/// until then it is reported as the client asked it.
#[test]
fn a_silence_until_disconnect_ends_at_the_limit_where_one_is_set() {
    let mut s = Server::new();
    let t = s.subscribe("a1", ID, "https://push.example.net/p/1", T0);
    let token = Server::token(&t);
    s.run(&format!("a2 ACKWEBPUSH {token}\r\n"), T0 + 1, C1);
    s.settings.disconnect_silence_limit = Some(Duration::from_secs(3600));
    let t = s.run(&format!("a3 SILWEBPUSH {ID} 0\r\n"), T0 + 10, C9);
    assert!(matches!(
        &t.untagged[0],
        Response::WebPush {
            silence: SilenceState::UntilDisconnect,
            ..
        }
    ));
    let record = s.account.records[0].clone();
    assert_eq!(
        record.silence,
        Silence::UntilDisconnectOrTime(C9, T0 + 3610)
    );
    assert_eq!(s.account.next_deadline(), Some(T0 + 3610));
    let open = |_| true;
    assert!(!receives_pushes(&record, &s.settings, at(T0 + 3609), open));
    assert!(sweep(&s.account, at(T0 + 3609), open).is_empty());
    assert!(receives_pushes(&record, &s.settings, at(T0 + 3610), open));
    assert_eq!(record.silence_state(T0 + 3610), SilenceState::NotSilenced);
    let swept = sweep(&s.account, at(T0 + 3610), open);
    assert_eq!(swept.len(), 1);
    // Or when its connection ends, as any such silence.
    assert_eq!(disconnect(&s.account, C9).len(), 1);
    assert!(receives_pushes(&record, &s.settings, at(T0 + 20), |_| {
        false
    }));
    let mut ended = s.account.clone();
    ended.apply(&swept);
    assert_eq!(ended.records[0].silence, Silence::None);
}

/// Plain http and local addresses only for a local test push service, when asked.
#[test]
fn local_test_service_endpoints_only_when_asked() {
    use imap_webpush_proto::state::Endpoints;
    let mut s = Server::new();
    let local = "http://localhost:8090/notify/abc";
    assert_no(&s.subscribe("a1", ID, local, T0));
    s.settings.endpoints = Endpoints::LocalTestService;
    let t = s.subscribe("a2", ID, local, T0);
    assert_eq!(status(&t).0, StatusKind::Ok);
    assert_eq!(s.account.records[0].endpoint.as_str(), local);
}
