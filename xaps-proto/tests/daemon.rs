//! The xapsd JSON bodies: the plugin's exact strings and log lines, refusals, and
//! round trips.

use proptest::prelude::*;
use xaps_proto::daemon::{BodyError, Notify, NotifyOutcome, Register};
use xaps_proto::{AccountId, Command, DeviceToken, UserName};

fn u(name: &str) -> UserName {
    UserName::new(name).unwrap()
}

/// `name` with its letters outside ASCII in lower case (a name may hold no capital
/// outside ASCII), its ASCII ones as they were.
fn lower_outside_ascii(name: &str) -> String {
    name.chars()
        .flat_map(|c| {
            let ascii = c.is_ascii();
            c.to_lowercase()
                .filter(move |_| !ascii)
                .chain(Some(c).filter(|_| ascii))
        })
        .collect()
}

const TOKEN: &str = "2918390218931890821908309283098109381029309829018310983092892829";
const ACCOUNT: &str = "0715A26B-CA09-4730-A419-793000CA982E";

#[test]
fn the_plugin_strings() {
    // FP's concatenated body, with the space after "Mailboxes":.
    let body = format!(
        r#"{{"ApsAccountId":"{ACCOUNT}","ApsDeviceToken":"{TOKEN}","ApsSubtopic":"com.apple.mobilemail","Username":"user","Mailboxes": ["Open Orders","INBOX","Sent Messages"]}}"#
    );
    let register = Register::from_json(body.as_bytes()).unwrap();
    assert_eq!(
        register.mailboxes,
        ["Open Orders", "INBOX", "Sent Messages"]
    );
    // Our encoding has the same names in the same order.
    assert_eq!(
        register.to_json().unwrap(),
        body.replace("\"Mailboxes\": [", "\"Mailboxes\":[")
    );

    let notify = Notify::from_json(
        br#"{"Username":"me@domain.com","Mailbox":"INBOX","Events": ["MessageNew"]}"#,
    )
    .unwrap();
    assert_eq!(
        (notify.username().as_str(), notify.mailbox()),
        ("me@domain.com", "INBOX")
    );
    assert!(notify.is_message_new());
    assert_eq!(
        notify.to_json().unwrap(),
        r#"{"Username":"me@domain.com","Mailbox":"INBOX","Events":["MessageNew"]}"#
    );
    let flags = Notify::from_json(
        br#"{"Username":"u","Mailbox":"INBOX","Events": ["FlagsSet","MessageRead"]}"#,
    )
    .unwrap();
    assert!(!flags.is_message_new());

    for (outcome, status) in [
        (NotifyOutcome::Accepted, 200),
        (NotifyOutcome::NotSubscribed, 204),
        (NotifyOutcome::NoDevice, 404),
    ] {
        assert_eq!(outcome.status(), status);
        assert_eq!(NotifyOutcome::from_status(status), Some(outcome));
    }
    assert_eq!(NotifyOutcome::from_status(500), None);
}

#[test]
fn from_the_imap_command() {
    let line = format!(
        "a2 XAPPLEPUSHSERVICE aps-version 2 aps-account-id {ACCOUNT} aps-device-token {TOKEN} aps-subtopic com.apple.mobilemail mailboxes (INBOX Notes)\r\n"
    );
    let (_, command) = Command::decode(line.as_bytes()).unwrap();
    let register = Register::new(&command.request, &u("Alice@Example.org"));
    assert_eq!(register.username.as_str(), "alice@example.org");
    assert_eq!(
        Register::from_json(register.to_json().unwrap().as_bytes()).unwrap(),
        register
    );
}

/// Dovecot forwards `mailboxes ()` as `"Mailboxes": []` (xapsd refuses it, and the
/// device still gets OK); empty or missing, the list means INBOX. Names arrive
/// JSON-escaped and stay exact.
#[test]
fn what_a_real_dovecot_forwards() {
    let empty = format!(
        r#"{{"ApsAccountId":"{ACCOUNT}","ApsDeviceToken":"{TOKEN}","ApsSubtopic":"com.apple.mobilemail","Username":"alice","Mailboxes": []}}"#
    );
    assert_eq!(
        Register::from_json(empty.as_bytes()).unwrap().mailboxes,
        ["INBOX"]
    );
    let missing = empty.replace(r#","Mailboxes": []"#, "");
    assert_eq!(
        Register::from_json(missing.as_bytes()).unwrap().mailboxes,
        ["INBOX"]
    );
    let escaped = empty.replace("[]", r#"["INBOX","Quote\"Back\\slash","Caf\u00e9"]"#);
    let register = Register::from_json(escaped.as_bytes()).unwrap();
    assert_eq!(register.mailboxes, ["INBOX", "Quote\"Back\\slash", "Café"]);
    assert_eq!(
        Register::from_json(register.to_json().unwrap().as_bytes()).unwrap(),
        register
    );
    // From the IMAP command with `mailboxes ()`, the same.
    let line = format!(
        "a4 XAPPLEPUSHSERVICE aps-version 2 aps-account-id {ACCOUNT} aps-device-token {TOKEN} aps-subtopic com.apple.mobilemail mailboxes ()\r\n"
    );
    let (_, command) = Command::decode(line.as_bytes()).unwrap();
    assert_eq!(
        Register::new(&command.request, &u("alice")).mailboxes,
        ["INBOX"]
    );
}

#[test]
fn refusals() {
    let ok = format!(
        r#"{{"ApsAccountId":"{ACCOUNT}","ApsDeviceToken":"{TOKEN}","ApsSubtopic":"com.apple.mobilemail","Username":"user","Mailboxes":["INBOX"]}}"#
    );
    let field = |body: &str| match Register::from_json(body.as_bytes()) {
        Err(BodyError::Field { field }) => field,
        other => panic!("{other:?}"),
    };
    assert_eq!(field(&ok.replace(ACCOUNT, "")), "ApsAccountId");
    assert_eq!(field(&ok.replace(TOKEN, "xyz")), "ApsDeviceToken");
    assert_eq!(
        field(&ok.replace("com.apple.mobilemail", "com.apple.notes")),
        "ApsSubtopic"
    );
    assert_eq!(field(&ok.replace("\"user\"", "\"\"")), "Username");
    let many = format!("[{}]", vec!["\"x\""; 1001].join(","));
    assert_eq!(field(&ok.replace("[\"INBOX\"]", &many)), "Mailboxes");
    for bad in ["", "{}", "[1]", "{\"ApsAccountId\":1}", "not json"] {
        assert!(
            matches!(
                Register::from_json(bad.as_bytes()),
                Err(BodyError::Malformed { .. })
            ),
            "{bad}"
        );
    }
    let huge = format!("{{\"Username\":\"{}\"}}", "x".repeat(300_000));
    assert!(matches!(
        Notify::from_json(huge.as_bytes()),
        Err(BodyError::Malformed { .. })
    ));
    assert!(matches!(
        Notify::from_json(br#"{"Username":"u","Mailbox":"INBOX","Events":[]}"#),
        Err(BodyError::Field { field: "Events" })
    ));
    assert_eq!(BodyError::Field { field: "Events" }.status(), 400);
}

proptest! {
    #[test]
    fn register_round_trip(user in "\\PC{1,20}", mailboxes in proptest::collection::vec("\\PC{1,20}", 1..5), token in "([0-9a-f]{2}){8,64}") {
        let user = lower_outside_ascii(&user);
        prop_assume!(UserName::new(&user).is_ok());
        let register = Register {
            account_id: AccountId::new(ACCOUNT).unwrap(),
            device_token: DeviceToken::new(&token).unwrap(),
            username: u(&user),
            mailboxes,
        };
        let again = Register::from_json(register.to_json().unwrap().as_bytes()).unwrap();
        prop_assert_eq!(&again.mailboxes, &register.mailboxes);
        prop_assert_eq!(&again.device_token, &register.device_token);
        // Everything comes back; the user as the daemon stores it, ASCII in lower case.
        prop_assert_eq!(again.username.as_str(), user.to_ascii_lowercase());
        prop_assert_eq!(again, register);
    }

    #[test]
    fn notify_round_trip(user in "\\PC{1,20}", mailbox in "\\PC{1,20}", events in proptest::collection::vec("[A-Za-z]{1,15}", 1..4)) {
        let user = lower_outside_ascii(&user);
        prop_assume!(UserName::new(&user).is_ok());
        let notify = Notify::new(u(&user), mailbox, events, Vec::new()).unwrap();
        prop_assert_eq!(Notify::from_json(notify.to_json().unwrap().as_bytes()).unwrap(), notify);
    }

    #[test]
    fn bodies_are_total(input in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = Register::from_json(&input);
        let _ = Notify::from_json(&input);
    }
}

/// mailpushd's Lua script adds what it knows of new messages; xapsd's shape still reads
/// without it, and writes without it.
#[test]
fn bodies_a_daemon_would_refuse_are_not_written() {
    let register = Register {
        account_id: AccountId::new(ACCOUNT).unwrap(),
        device_token: DeviceToken::new(TOKEN).unwrap(),
        username: u("user"),
        mailboxes: vec!["INBOX".into()],
    };
    let field = |field| Err::<String, _>(BodyError::Field { field });
    // No body without a user is written: a user name is never empty. One read with
    // an empty user is refused with that field named.
    assert!(UserName::new("").is_err());
    let empty_user = register
        .to_json()
        .unwrap()
        .replace(r#""Username":"user""#, r#""Username":"""#);
    assert_eq!(
        Register::from_json(empty_user.as_bytes()).map(|_| String::new()),
        field("Username")
    );
    let many = Register {
        mailboxes: vec!["m".into(); xaps_proto::MAX_MAILBOXES + 1],
        ..register.clone()
    };
    assert_eq!(many.to_json(), field("Mailboxes"));
    let long = Register {
        mailboxes: vec!["m".repeat(xaps_proto::MAX_MAILBOX_LEN + 1)],
        ..register.clone()
    };
    assert_eq!(long.to_json(), field("Mailboxes"));
    let body = Register {
        mailboxes: vec!["m".into()],
        ..register.clone()
    }
    .to_json()
    .unwrap();
    let read = body.replace(
        r#"["m"]"#,
        &format!(r#"["{}"]"#, "m".repeat(xaps_proto::MAX_MAILBOX_LEN + 1)),
    );
    assert_ne!(read, body);
    assert_eq!(
        Register::from_json(read.as_bytes()).map(|_| String::new()),
        field("Mailboxes")
    );
    let large = Register {
        mailboxes: vec!["m".repeat(1000); 300],
        ..register
    };
    assert!(matches!(
        large.to_json(),
        Err(BodyError::Malformed {
            what: "register",
            ..
        })
    ));
    let notify = Notify::new(
        u("user"),
        "INBOX".into(),
        vec!["MessageNew".into()],
        Vec::new(),
    )
    .unwrap();
    assert!(notify.to_json().is_ok());
    let empty_user = notify
        .to_json()
        .unwrap()
        .replace(r#""Username":"user""#, r#""Username":"""#);
    assert_eq!(
        Notify::from_json(empty_user.as_bytes()).map(|_| String::new()),
        field("Username")
    );
    // Neither made nor read with an empty mailbox or no events.
    let (user, inbox, new) = (
        u("user"),
        String::from("INBOX"),
        vec![String::from("MessageNew")],
    );
    assert_eq!(
        Notify::new(user.clone(), String::new(), new.clone(), Vec::new()).map(|_| String::new()),
        field("Mailbox")
    );
    // Nor with a mailbox name longer than any command carries.
    let longest = "m".repeat(xaps_proto::MAX_MAILBOX_LEN);
    assert!(Notify::new(user.clone(), longest.clone(), new.clone(), Vec::new()).is_ok());
    assert_eq!(
        Notify::new(user.clone(), longest + "m", new, Vec::new()).map(|_| String::new()),
        field("Mailbox")
    );
    assert_eq!(
        Notify::new(user, inbox, Vec::new(), Vec::new()).map(|_| String::new()),
        field("Events")
    );
    let body = notify.to_json().unwrap();
    for (field_name, emptied) in [
        (
            "Mailbox",
            body.replace(r#""Mailbox":"INBOX""#, r#""Mailbox":"""#),
        ),
        ("Events", body.replace(r#"["MessageNew"]"#, "[]")),
    ] {
        assert_ne!(emptied, body);
        assert_eq!(
            Notify::from_json(emptied.as_bytes()).map(|_| String::new()),
            field(field_name)
        );
    }
}

#[test]
fn notify_with_message_details() {
    let body = br#"{"Username":"alice","Mailbox":"INBOX","Events": ["MessageNew"],"Messages":[{"Uid":7,"UidValidity":1796157589,"From":"Bob <bob@example.org>","Subject":"First","Date":"Tue, 01 Dec 2026 20:39:06 +0000"}]}"#;
    let notify = Notify::from_json(body).unwrap();
    assert_eq!(notify.messages().len(), 1);
    assert_eq!(notify.messages()[0].uid, 7);
    assert_eq!(notify.messages()[0].from, "Bob <bob@example.org>");
    assert_eq!(
        Notify::from_json(notify.to_json().unwrap().as_bytes()).unwrap(),
        notify
    );
    let plain =
        Notify::from_json(br#"{"Username":"alice","Mailbox":"INBOX","Events": ["MessageNew"]}"#)
            .unwrap();
    assert!(plain.messages().is_empty());
    assert!(!plain.to_json().unwrap().contains("Messages"));
}
