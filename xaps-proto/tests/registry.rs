//! The registry: refresh, lookup, the APNs 410 rule, expiry, limits, and xapsd's
//! database in and out.

use std::time::{Duration, SystemTime};

use proptest::prelude::*;
use xaps_proto::daemon::{Notify, NotifyOutcome, Register};
use xaps_proto::registry::{Lookup, PushMailboxes, Registered, Registry, RegistryError};
use xaps_proto::{AccountId, DeviceToken, UserName};

/// xapsd's database test data, verbatim.
const XAPSD_TEST_DATA: &str = r#"{
  "Users": {
    "alice": {
      "Accounts": {
        "aliceaccountid1": {
          "DeviceToken": "alicedevicetoken1",
          "RegistrationTime": "2018-09-22T12:42:31Z",
          "Mailboxes": [
            "Inbox"
          ]
        }
      }
    },
    "stefan": {
      "Accounts": {
        "stefanaccountid1": {
          "DeviceToken": "stefandevicetoken1",
          "Mailboxes": [
            "Inbox"
          ]
        },
        "stefanaccountid2": {
          "DeviceToken": "stefandevicetoken2",
          "Mailboxes": [
            "Inbox",
            "Ham"
          ]
        }
      }
    }
  }
}"#;

const DAY: Duration = Duration::from_secs(86_400);

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

fn token(n: u8) -> String {
    format!("{n:02x}").repeat(32)
}

fn u(name: &str) -> UserName {
    UserName::new(name).unwrap()
}

fn register(user: &str, account: &str, token_byte: u8, mailboxes: &[&str]) -> Register {
    Register {
        account_id: AccountId::new(account).unwrap(),
        device_token: DeviceToken::new(&token(token_byte)).unwrap(),
        username: u(user),
        mailboxes: mailboxes.iter().map(|m| (*m).to_owned()).collect(),
    }
}

fn accounts(lookup: &Lookup<'_>) -> Vec<String> {
    match lookup {
        Lookup::Push(targets) => targets
            .iter()
            .map(|t| t.account_id.as_str().to_owned())
            .collect(),
        _ => Vec::new(),
    }
}

#[test]
fn the_xapsd_test_data() {
    // Its tokens are placeholders, not hex: APNs would refuse them, so they are
    // reported, not imported.
    let (registry, rejected) = Registry::from_xapsd_json(XAPSD_TEST_DATA.as_bytes()).unwrap();
    assert!(registry.is_empty());
    let ids: Vec<_> = rejected.iter().map(|r| r.account_id.as_str()).collect();
    assert_eq!(
        ids,
        ["aliceaccountid1", "stefanaccountid1", "stefanaccountid2"]
    );
    assert!(
        rejected
            .iter()
            .all(|r| r.reason == "device token is not hex")
    );

    // The same data with real tokens round-trips byte for byte: users, accounts,
    // tokens, times (present or absent), mailboxes in their order.
    let real = XAPSD_TEST_DATA
        .replace("alicedevicetoken1", &token(0xa1))
        .replace("stefandevicetoken1", &token(0x51))
        .replace("stefandevicetoken2", &token(0x52));
    let (registry, rejected) = Registry::from_xapsd_json(real.as_bytes()).unwrap();
    assert!(rejected.is_empty());
    assert_eq!(registry.len(), 3);
    assert_eq!(registry.to_xapsd_json().unwrap(), real);
    let alice = registry
        .devices(&u("alice"), &AccountId::new("aliceaccountid1").unwrap())
        .next()
        .unwrap();
    assert_eq!(alice.registered_at.unwrap().unix_seconds(), 1_537_620_151);
    // xapsd matched "INBOX" exactly and so missed these "Inbox" entries; IMAP says
    // INBOX is case-insensitive.
    assert_eq!(
        accounts(&registry.lookup(&u("stefan"), "INBOX")),
        ["stefanaccountid1", "stefanaccountid2"]
    );
    // Ham pushes only where the policy lets mailboxes other than INBOX push.
    assert_eq!(registry.lookup(&u("stefan"), "Ham"), Lookup::NotPushed);
    let registry = registry.with_push_mailboxes(PushMailboxes::Listed);
    assert_eq!(
        accounts(&registry.lookup(&u("stefan"), "Ham")),
        ["stefanaccountid2"]
    );
    assert_eq!(registry.lookup(&u("stefan"), "ham"), Lookup::NotSubscribed);
}

#[test]
fn a_real_entry_keeps_its_offset_and_nanoseconds() {
    let db = format!(
        r#"{{
  "Users": {{
    "me@domain.com": {{
      "Accounts": {{
        "0715A26B-CA09-4730-A419-793000CA982E": {{
          "DeviceToken": "{}",
          "RegistrationTime": "2022-03-02T09:47:54.855456616+01:00",
          "Mailboxes": [
            "Junk",
            "INBOX",
            "Sent",
            "Notes"
          ]
        }}
      }}
    }}
  }}
}}"#,
        token(7)
    );
    let (registry, rejected) = Registry::from_xapsd_json(db.as_bytes()).unwrap();
    assert!(rejected.is_empty());
    assert_eq!(registry.to_xapsd_json().unwrap(), db);
}

#[test]
fn imports_are_normalized_and_checked() {
    let upper = token(0xab).to_uppercase();
    let db = format!(
        r#"{{"Users":{{
            "Bob":{{"Accounts":{{"A":{{"DeviceToken":"{upper}","RegistrationTime":"0001-01-01T00:00:00Z","Mailboxes":["INBOX"]}}}}}},
            "bob":{{"Accounts":{{"A":{{"DeviceToken":"{t2}","RegistrationTime":"2020-01-01T00:00:00Z","Mailboxes":["INBOX"]}}}}}},
            "carol":{{"Accounts":{{
                "B":{{"DeviceToken":"{t2}","Mailboxes":[]}},
                "C":{{"DeviceToken":"{t2}","Mailboxes":null}},
                "D":{{"DeviceToken":"{t2}","RegistrationTime":"yesterday","Mailboxes":["INBOX"]}},
                "E":{{"DeviceToken":"{t2}","Mailboxes":["INBOX"],"Unknown":1}}
            }}}},
            "dave":{{"Accounts":null}}
        }},"AppleCerts":{{}}}}"#,
        t2 = token(2)
    );
    let (registry, rejected) = Registry::from_xapsd_json(db.as_bytes()).unwrap();
    let reasons: Vec<_> = rejected
        .iter()
        .map(|r| (r.user.as_str(), r.account_id.as_str()))
        .collect();
    assert_eq!(
        reasons,
        [("bob", "A"), ("carol", "B"), ("carol", "C"), ("carol", "D")]
    );
    // "Bob" and "bob" merged; the entry with a time beats Go's zero time.
    let bob = registry
        .get(
            &u("BOB"),
            &AccountId::new("A").unwrap(),
            &DeviceToken::new(&token(2)).unwrap(),
        )
        .unwrap();
    assert_eq!(bob.device_token.as_str(), token(2));
    assert_eq!(registry.len(), 2);

    // The zero time means "no time": exported without the field, never expired.
    let (registry, _) = Registry::from_xapsd_json(
        format!(r#"{{"Users":{{"z":{{"Accounts":{{"A":{{"DeviceToken":"{upper}","RegistrationTime":"0001-01-01T00:00:00Z","Mailboxes":["INBOX"]}}}}}}}}}}"#).as_bytes(),
    )
    .unwrap();
    let mut registry = registry;
    assert!(
        !registry
            .to_xapsd_json()
            .unwrap()
            .contains("RegistrationTime")
    );
    // The token as the database had it (xapsd keeps tokens as received).
    assert!(registry.to_xapsd_json().unwrap().contains(&upper));
    assert!(registry.expire(at(4_000_000_000)).is_empty());

    for bad in [
        "",
        "[]",
        "{\"Users\":[]}",
        "{\"Users\":{\"a\":{\"Accounts\":{\"b\":1}}}}",
    ] {
        assert!(Registry::from_xapsd_json(bad.as_bytes()).is_err(), "{bad}");
    }
    assert!(Registry::from_xapsd_json(b"{}").unwrap().0.is_empty());
}

#[test]
fn register_refreshes_and_keeps_every_device_of_an_account() {
    let mut registry = Registry::new();
    let r = register("User", "ACC", 1, &["INBOX"]);
    assert_eq!(
        registry.register(r.clone(), at(1000)).map(|(r, _)| r),
        Ok(Registered::New)
    );
    assert_eq!(
        registry.register(r, at(2000)).map(|(r, _)| r),
        Ok(Registered::Refreshed)
    );
    // The same account from another device (an iPhone restored from this one's
    // backup): a second registration, and both are pushed.
    let clone = register("user", "ACC", 2, &["INBOX", "Notes"]);
    assert_eq!(
        registry.register(clone.clone(), at(3000)).map(|(r, _)| r),
        Ok(Registered::New)
    );
    assert_eq!(registry.len(), 2);
    let Lookup::Push(targets) = registry.lookup(&u("user"), "INBOX") else {
        panic!("both devices are pushed")
    };
    let tokens: Vec<&str> = targets.iter().map(|t| t.device_token.as_str()).collect();
    assert_eq!(tokens, [token(1), token(2)]);
    assert!(targets.iter().all(|t| t.account_id.as_str() == "ACC"));
    // Each device refreshes its own; they do not take turns.
    assert_eq!(
        registry.register(clone, at(4000)).map(|(r, _)| r),
        Ok(Registered::Refreshed)
    );
    let account = AccountId::new("ACC").unwrap();
    let times: Vec<i64> = registry
        .devices(&u("user"), &account)
        .map(|r| r.registered_at.unwrap().unix_seconds())
        .collect();
    assert_eq!(times, [2000, 4000]);
    // A 410 for one token removes that device only.
    let removed = registry.unregistered(&DeviceToken::new(&token(1)).unwrap(), at(5000));
    assert_eq!(removed.len(), 1);
    assert_eq!(registry.len(), 1);
    let left = registry
        .get(&u("user"), &account, &DeviceToken::new(&token(2)).unwrap())
        .unwrap();
    assert_eq!(left.mailboxes, ["INBOX", "Notes"]);
    // An export keeps one device per account, as xapsd does: the most recent.
    registry
        .register(register("user", "ACC", 3, &["INBOX"]), at(6000))
        .unwrap();
    assert_eq!(registry.one_per_account(), 1);
    let json = registry.to_xapsd_json().unwrap();
    assert!(
        json.contains(&token(3)) && !json.contains(&token(2)),
        "{json}"
    );
}

#[test]
fn lookup_answers_like_xapsd() {
    let mut registry = Registry::new();
    registry
        .register(register("u", "A", 1, &["INBOX"]), at(0))
        .unwrap();
    registry
        .register(register("u", "B", 2, &["inbox", "Work"]), at(0))
        .unwrap();
    registry
        .register(register("v", "C", 3, &["Work"]), at(0))
        .unwrap();
    let notify = |user: &str, mailbox: &str| {
        Notify::new(
            u(user),
            mailbox.into(),
            vec!["MessageNew".into()],
            Vec::new(),
        )
        .unwrap()
    };
    let outcome = |user, mailbox| registry.lookup_notify(&notify(user, mailbox)).outcome();
    assert_eq!(accounts(&registry.lookup(&u("U"), "INBOX")), ["A", "B"]);
    // INBOX only by default, as xapsd: 200 and no push for the others, even where a
    // device listed them (Junk would wake the phone for every spam).
    assert_eq!(registry.lookup(&u("u"), "Work"), Lookup::NotPushed);
    assert_eq!(outcome("u", "Work"), NotifyOutcome::Accepted);
    assert_eq!(outcome("w", "Junk"), NotifyOutcome::Accepted);
    // One user's registrations never answer for another's mailboxes.
    assert_eq!(
        accounts(&registry.lookup(&u("v"), "INBOX")),
        Vec::<String>::new()
    );
    assert_eq!(outcome("u", "INBOX"), NotifyOutcome::Accepted);
    assert_eq!(outcome("v", "INBOX"), NotifyOutcome::NotSubscribed);
    assert_eq!(outcome("w", "INBOX"), NotifyOutcome::NoDevice);
    // Pushing for every listed mailbox, or for a chosen set, is the operator's choice.
    let registry = registry.with_push_mailboxes(PushMailboxes::Listed);
    assert_eq!(accounts(&registry.lookup(&u("u"), "Work")), ["B"]);
    assert_eq!(accounts(&registry.lookup(&u("v"), "Work")), ["C"]);
    let registry =
        registry.with_push_mailboxes(PushMailboxes::Only(vec!["inbox".into(), "Work".into()]));
    assert_eq!(accounts(&registry.lookup(&u("u"), "INBOX")), ["A", "B"]);
    assert_eq!(accounts(&registry.lookup(&u("u"), "Work")), ["B"]);
    assert_eq!(registry.lookup(&u("u"), "Junk"), Lookup::NotPushed);
}

#[test]
fn an_apns_410_removes_only_older_registrations() {
    let mut registry = Registry::new();
    registry
        .register(register("u", "A", 1, &["INBOX"]), at(1000))
        .unwrap();
    registry
        .register(register("u", "B", 1, &["INBOX"]), at(3000))
        .unwrap();
    registry
        .register(register("u", "C", 2, &["INBOX"]), at(1000))
        .unwrap();
    let gone = DeviceToken::new(&token(1)).unwrap();
    let removed = registry.unregistered(&gone, at(2000));
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].account_id.as_str(), "A");
    assert_eq!(removed[0].user.as_str(), "u");
    // B registered after the token was reported invalid: the device came back.
    assert_eq!(accounts(&registry.lookup(&u("u"), "INBOX")), ["B", "C"]);
    // Same instant is not older.
    assert!(registry.unregistered(&gone, at(3000)).is_empty());
}

/// Times RFC 3339 cannot write, from APNs or a setting, are compared, not converted.
#[test]
fn times_beyond_year_9999_are_compared_not_written() {
    let mut registry = Registry::new();
    registry
        .register(register("u", "A", 1, &["INBOX"]), at(1000))
        .unwrap();
    registry
        .register(register("u", "B", 2, &["INBOX"]), at(1000))
        .unwrap();
    // A 410 whose timestamp is the largest a u64 of milliseconds holds.
    let far = SystemTime::UNIX_EPOCH + Duration::from_millis(u64::MAX);
    let gone = DeviceToken::new(&token(1)).unwrap();
    let removed = registry.unregistered(&gone, far);
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].account_id.as_str(), "A");
    // A maximum age reaching back before year 1 expires nothing.
    let mut ancient = Registry::new().with_max_age(Duration::from_secs(u64::MAX / 2));
    ancient
        .register(register("u", "A", 1, &["INBOX"]), at(0))
        .unwrap();
    assert!(ancient.expire(at(1000)).is_empty());
    assert!(ancient.expire(far).is_empty());
    // A clock past year 9999 registers nothing.
    let before = registry.to_xapsd_json().unwrap();
    assert_eq!(
        registry
            .register(register("u", "C", 3, &["INBOX"]), far)
            .map(|(r, _)| r),
        Err(RegistryError::Clock(far))
    );
    assert_eq!(registry.to_xapsd_json().unwrap(), before);
}

#[test]
fn registrations_expire_after_thirty_days() {
    let mut registry = Registry::new();
    registry
        .register(register("u", "A", 1, &["INBOX"]), at(0))
        .unwrap();
    registry
        .register(register("u", "B", 2, &["INBOX"]), at(DAY.as_secs()))
        .unwrap();
    assert!(registry.expire(at(30 * DAY.as_secs())).is_empty());
    let removed = registry.expire(at(30 * DAY.as_secs() + 1));
    assert_eq!(removed.len(), 1);
    assert_eq!(removed[0].account_id.as_str(), "A");
    // Configurable.
    let mut short = Registry::new().with_max_age(Duration::from_secs(60));
    short
        .register(register("u", "A", 1, &["INBOX"]), at(0))
        .unwrap();
    assert_eq!(short.expire(at(61)).len(), 1);
    assert!(short.is_empty());
    assert_eq!(short.lookup(&u("u"), "INBOX"), Lookup::NoDevice);
}

#[test]
fn refused_registrations_change_nothing() {
    let mut registry = Registry::new().with_max_accounts_per_user(2);
    registry
        .register(register("u", "A", 1, &["INBOX"]), at(0))
        .unwrap();
    registry
        .register(register("u", "B", 2, &["INBOX"]), at(0))
        .unwrap();
    let before = registry.to_xapsd_json().unwrap();
    assert_eq!(
        registry
            .register(register("u", "C", 3, &["INBOX"]), at(5))
            .map(|(r, _)| r),
        Err(RegistryError::TooManyAccounts {
            user: u("u"),
            limit: 2
        })
    );
    assert_eq!(
        registry
            .register(register("u", "A", 3, &[]), at(5))
            .map(|(r, _)| r),
        Err(RegistryError::Mailboxes)
    );
    let many: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let mut huge = register("u", "A", 3, &[]);
    huge.mailboxes = many;
    assert_eq!(
        registry.register(huge, at(5)).map(|(r, _)| r),
        Err(RegistryError::Mailboxes)
    );
    // A name longer than a command carries (the legacy protocol has no bound of its own).
    let long = "m".repeat(xaps_proto::MAX_MAILBOX_LEN + 1);
    assert_eq!(
        registry
            .register(register("u", "A", 3, &[long.as_str()]), at(5))
            .map(|(r, _)| r),
        Err(RegistryError::Mailboxes)
    );
    // No registration without a user: a user name is never empty.
    assert!(UserName::new("").is_err());
    assert_eq!(registry.to_xapsd_json().unwrap(), before);
    // A known account may still refresh at the limit, and removal frees a place.
    assert_eq!(
        registry
            .register(register("u", "B", 2, &["INBOX"]), at(9))
            .map(|(r, _)| r),
        Ok(Registered::Refreshed)
    );
    assert_eq!(
        registry
            .remove(&u("U"), &AccountId::new("A").unwrap())
            .len(),
        1
    );
    assert!(
        registry
            .register(register("u", "C", 3, &["INBOX"]), at(9))
            .is_ok()
    );
}

proptest! {
    #[test]
    fn export_import_keeps_everything(
        entries in prop::collection::vec(
            ("[a-z]{1,4}", "[A-Z0-9]{1,6}", any::<u8>(), prop::collection::vec("[^\\x00]{1,8}", 1..4), 0u64..4_000_000_000),
            0..20,
        )
    ) {
        let mut registry = Registry::new();
        for (user, account, t, mailboxes, time) in entries {
            let mailboxes: Vec<&str> = mailboxes.iter().map(String::as_str).collect();
            registry.register(register(&user, &account, t, &mailboxes), at(time)).unwrap();
        }
        let json = registry.to_xapsd_json().unwrap();
        let (again, rejected) = Registry::from_xapsd_json(json.as_bytes()).unwrap();
        prop_assert!(rejected.is_empty());
        // xapsd keeps one device per account: an account registered from several
        // comes back with one of them, and nothing comes back that was not there.
        let left_out = registry.one_per_account();
        prop_assert_eq!(again.iter().count(), registry.iter().count() - left_out);
        prop_assert!(again.iter().all(|kept| registry.iter().any(|r| r == kept)));
        if left_out == 0 {
            prop_assert!(registry.iter().eq(again.iter()));
        }
        prop_assert_eq!(again.to_xapsd_json().unwrap(), json);
    }
}

/// What a daemon stores round-trips through serde: registrations with and without a
/// time, with the offset and nanoseconds they were written with.
#[cfg(feature = "serde")]
#[test]
fn registrations_round_trip_through_serde() {
    use xaps_proto::Timestamp;
    use xaps_proto::registry::Registration;
    for registered_at in [
        None,
        Some(
            "2022-03-02T09:47:54.855456616+01:00"
                .parse::<Timestamp>()
                .unwrap(),
        ),
        Timestamp::from_system_time(at(1_700_000_000)),
    ] {
        let registration = Registration {
            device_token: DeviceToken::new(&token(7)).unwrap(),
            mailboxes: vec!["INBOX".into(), "Quote\"Back\\slash".into()],
            registered_at,
        };
        let json = serde_json::to_string(&registration).unwrap();
        assert_eq!(
            serde_json::from_str::<Registration>(&json).unwrap(),
            registration
        );
    }
    let bad = r#"{"device_token":"zz","mailboxes":["INBOX"],"registered_at":null}"#;
    assert!(serde_json::from_str::<Registration>(bad).is_err());
    let bad =
        r#"{"device_token":"00112233445566778899","mailboxes":[],"registered_at":"yesterday"}"#;
    assert!(serde_json::from_str::<Registration>(bad).is_err());
    let id = AccountId::new("0715A26B-CA09-4730-A419-793000CA982E").unwrap();
    let json = serde_json::to_string(&id).unwrap();
    assert_eq!(serde_json::from_str::<AccountId>(&json).unwrap(), id);
    assert!(serde_json::from_str::<AccountId>(r#""a b""#).is_err());
}
