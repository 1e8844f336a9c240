//! The legacy socket lines: the daemons' test strings and logged lines, the plugin's
//! construction byte for byte, refusals, prefixes and round trips.

use proptest::prelude::*;
use xaps_proto::daemon::{Notify, Register};
use xaps_proto::legacy::{
    Answer, Line, LineError, MAX_LINE_LEN, Request, START_LEN, Value, Verb, starts_request,
};
use xaps_proto::{AccountId, DeviceToken, MAX_MAILBOXES, UserName};

const TOKEN: &str = "3a1e4fba6214e9db210d15baf10d5ee85ed217437b9bac4afacb8416aad6e46d";
const ACCOUNT: &str = "0A7C4DFD-3FC4-418D-B4FC-F6EE59603731";

fn text(key: &str, value: &str) -> (String, Value) {
    (key.to_owned(), Value::Text(value.to_owned()))
}

fn list(key: &str, values: &[&str]) -> (String, Value) {
    (
        key.to_owned(),
        Value::List(values.iter().map(|v| (*v).to_owned()).collect()),
    )
}

fn register(user: &str, mailboxes: &[&str]) -> Register {
    Register {
        account_id: AccountId::new(ACCOUNT).unwrap(),
        device_token: DeviceToken::new(TOKEN).unwrap(),
        username: UserName::new(user).unwrap(),
        mailboxes: mailboxes.iter().map(|m| (*m).to_owned()).collect(),
    }
}

#[test]
fn the_go_daemon_test_strings() {
    let line = Line::parse(b"REGISTER aps-account-id=\"AAA\"\taps-device-token=\"BBB\"\taps-subtopic=\"com.apple.mobilemail\"\tdovecot-username=\"stefan\"\tdovecot-mailboxes=(\"Inbox\",\"Notes\")").unwrap();
    assert_eq!(
        line,
        Line {
            verb: Verb::Register,
            pairs: vec![
                text("aps-account-id", "AAA"),
                text("aps-device-token", "BBB"),
                text("aps-subtopic", "com.apple.mobilemail"),
                text("dovecot-username", "stefan"),
                list("dovecot-mailboxes", &["Inbox", "Notes"]),
            ],
        }
    );
    // "BBB" is a placeholder, not a token APNs would take: refused, as it must be.
    assert_eq!(
        Request::try_from(&line),
        Err(LineError::Invalid("aps-device-token"))
    );

    let line =
        Line::parse(b"NOTIFY dovecot-username=\"stefan\"\tdovecot-mailbox=\"Inbox\"").unwrap();
    assert_eq!(
        line.pairs,
        [
            text("dovecot-username", "stefan"),
            text("dovecot-mailbox", "Inbox")
        ]
    );
    // Before 2018 there were no events; xapsd took that as new mail.
    assert_eq!(
        Request::try_from(&line).unwrap(),
        Request::Notify(
            Notify::new(
                UserName::new("stefan").unwrap(),
                "Inbox".into(),
                vec!["MessageNew".into()],
                Vec::new()
            )
            .unwrap()
        )
    );
}

#[test]
fn logged_lines_with_tabs_shown_as_spaces() {
    let logged = format!(
        "REGISTER aps-account-id=\"{ACCOUNT}\"    aps-device-token=\"3A1E4FBA6214E9DB210D15BAF10D5EE85ED217437B9BAC4AFACB8416AAD6E46D\" aps-subtopic=\"com.apple.mobilemail\" dovecot-username=\"ledoktre@meanie.us\"   dovecot-mailboxes=(\"INBOX\",\"Notes\")"
    );
    let request = Request::try_from(&Line::parse(logged.as_bytes()).unwrap()).unwrap();
    assert_eq!(
        request,
        Request::Register(register("ledoktre@meanie.us", &["INBOX", "Notes"]))
    );

    let logged = b"NOTIFY dovecot-username=\"user@domain.sk\"      dovecot-mailbox=\"INBOX\" events=(\"MessageNew\")";
    let Request::Notify(notify) = Request::try_from(&Line::parse(logged).unwrap()).unwrap() else {
        panic!("not a notify");
    };
    assert_eq!(notify.username().as_str(), "user@domain.sk");
    assert!(notify.is_message_new());
}

#[test]
fn the_plugin_construction_byte_for_byte() {
    let request = Request::Register(register("user", &["INBOX", "Notes"]));
    let expected = format!(
        "REGISTER aps-account-id=\"{ACCOUNT}\"\taps-device-token=\"{TOKEN}\"\taps-subtopic=\"com.apple.mobilemail\"\tdovecot-username=\"user\"\tdovecot-mailboxes=(\"INBOX\",\"Notes\")\r\n"
    );
    assert_eq!(request.encode().unwrap(), expected.as_bytes());
    assert_eq!(
        Request::decode(expected.as_bytes()).unwrap(),
        (expected.len(), request)
    );

    let notify = Request::Notify(
        Notify::new(
            UserName::new("user").unwrap(),
            "INBOX".into(),
            vec!["MessageNew".into()],
            Vec::new(),
        )
        .unwrap(),
    );
    let expected =
        "NOTIFY dovecot-username=\"user\"\tdovecot-mailbox=\"INBOX\"\tevents=(\"MessageNew\")\r\n";
    assert_eq!(notify.encode().unwrap(), expected.as_bytes());
    // A bare LF ends a line too.
    let lf = expected.replace("\r\n", "\n");
    assert_eq!(Request::decode(lf.as_bytes()).unwrap(), (lf.len(), notify));
}

#[test]
fn escapes_are_undone_and_commas_stay_in_names() {
    let odd = ["Orders, 2024", "say \"hi\"", "back\\slash", "Entwürfe"];
    let request = Request::Register(register("user", &odd));
    let bytes = request.encode().unwrap();
    let wire = String::from_utf8(bytes.clone()).unwrap();
    assert!(wire.contains(r#"("Orders, 2024","say \"hi\"","back\\slash","Entwürfe")"#));
    assert_eq!(Request::decode(&bytes).unwrap().1, request);
    // Python's unescaping also took a backslash before other characters.
    let line = Line::parse(br#"NOTIFY dovecot-username="u\ser" dovecot-mailbox="INBOX""#).unwrap();
    assert_eq!(line.pairs[0], text("dovecot-username", "user"));
}

#[test]
fn refusals_carry_the_daemon_texts() {
    let reg = |pairs: &str| Request::decode(format!("REGISTER {pairs}\r\n").as_bytes());
    let full = [
        format!("aps-account-id=\"{ACCOUNT}\""),
        format!("aps-device-token=\"{TOKEN}\""),
        "aps-subtopic=\"com.apple.mobilemail\"".to_owned(),
        "dovecot-username=\"u\"".to_owned(),
        "dovecot-mailboxes=(\"INBOX\")".to_owned(),
    ];
    assert!(reg(&full.join("\t")).is_ok());
    let names = [
        "aps-account-id",
        "aps-device-token",
        "aps-subtopic",
        "dovecot-username",
        "dovecot-mailboxes",
    ];
    for (skip, name) in names.iter().enumerate() {
        let without: Vec<_> = full
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != skip)
            .map(|(_, p)| p.as_str())
            .collect();
        let err = reg(&without.join("\t")).unwrap_err();
        assert_eq!(err, LineError::Missing(name));
        assert_eq!(
            Answer::error(&err).encode(),
            format!("ERROR Missing {name} argument\n").as_bytes()
        );
    }
    let with = |i: usize, pair: &str| {
        let mut p = full.clone();
        p[i] = pair.to_owned();
        reg(&p.join("\t")).unwrap_err()
    };
    assert_eq!(
        with(2, "aps-subtopic=\"com.apple.other\""),
        LineError::UnknownSubtopic
    );
    assert_eq!(
        Answer::error(&LineError::UnknownSubtopic).encode(),
        b"ERROR Unknown aps-subtopic\n"
    );
    assert_eq!(
        with(1, "aps-device-token=\"abc\""),
        LineError::Invalid("aps-device-token")
    );
    assert_eq!(
        with(1, "aps-device-token=\"\""),
        LineError::Missing("aps-device-token")
    );
    assert_eq!(
        with(4, "dovecot-mailboxes=()"),
        LineError::Missing("dovecot-mailboxes")
    );
    assert_eq!(
        with(4, "dovecot-mailboxes=\"INBOX\""),
        LineError::Invalid("dovecot-mailboxes")
    );
    assert_eq!(
        with(3, "dovecot-username=(\"u\")"),
        LineError::Invalid("dovecot-username")
    );
    // Syntax: duplicate key, bad quoting, NUL, CR inside, no pairs, missing separator.
    for bad in [
        format!("{}\t{}", full.join("\t"), full[0]),
        "aps-account-id=\"unterminated".to_owned(),
        "aps-account-id=unquoted".to_owned(),
        "aps-account-id=\"a\0b\"".to_owned(),
        "aps-account-id=\"a\rb\"".to_owned(),
        "dovecot-mailboxes=(\"a\",)".to_owned(),
        "dovecot-mailboxes=(\"a\"".to_owned(),
        "=\"a\"".to_owned(),
        String::new(),
        "a=\"1\"b=\"2\"".to_owned(),
    ] {
        assert_eq!(reg(&bad), Err(LineError::Syntax), "{bad:?}");
    }
    assert_eq!(
        Request::decode(b"SUBSCRIBE a=\"b\"\n"),
        Err(LineError::UnknownCommand)
    );
    assert_eq!(
        Answer::error(&LineError::UnknownCommand).encode(),
        b"ERROR Unknown command\n"
    );
    // Invalid UTF-8 in a value.
    assert_eq!(Line::parse(b"NOTIFY a=\"\xff\""), Err(LineError::Syntax));
}

#[test]
fn sizes_are_bounded() {
    // More list entries than a registration may have.
    let many = vec!["\"m\""; 1001].join(",");
    let line = format!("REGISTER dovecot-mailboxes=({many})\n");
    assert_eq!(Request::decode(line.as_bytes()), Err(LineError::Syntax));
    // A line that never ends is refused once it is over the limit, not buffered on.
    let endless = vec![b'a'; MAX_LINE_LEN];
    assert_eq!(Line::decode(&endless), Err(LineError::Syntax));
    assert_eq!(Line::decode(&endless[..1000]), Err(LineError::Incomplete));
    // Too many pairs.
    let pairs: Vec<String> = (0..17).map(|i| format!("k{i}=\"v\"")).collect();
    let line = format!("NOTIFY {}\n", pairs.join("\t"));
    assert_eq!(Line::decode(line.as_bytes()), Err(LineError::Syntax));
}

#[test]
fn values_that_cannot_be_sent_are_refused() {
    let mut r = register("user", &["INBOX"]);
    r.mailboxes.push("two\nlines".into());
    assert_eq!(Request::Register(r).encode(), Err(LineError::Unencodable));
}

#[test]
fn lines_the_decoder_would_refuse_are_not_encoded() {
    let text = |k: &str| (k.to_owned(), Value::Text("v".into()));
    let line = |pairs: Vec<(String, Value)>| Line {
        verb: Verb::Notify,
        pairs,
    };
    let refused = |l: Line| {
        assert!(matches!(l.encode(), Err(LineError::NotALine(_))), "{l:?}");
    };
    refused(line(vec![]));
    refused(line(vec![text("k"), text("k")]));
    refused(line(vec![text("")]));
    for key in ["a b", "a=b", "k\"", "é"] {
        refused(line(vec![text(key)]));
    }
    refused(line((0..17).map(|i| text(&format!("k{i}"))).collect()));
    assert!(
        line((0..16).map(|i| text(&format!("k{i}"))).collect())
            .encode()
            .is_ok()
    );
    let items = |n: usize| Value::List(vec!["m".to_owned(); n]);
    refused(line(vec![("m".to_owned(), items(MAX_MAILBOXES + 1))]));
    assert!(
        line(vec![("m".to_owned(), items(MAX_MAILBOXES))])
            .encode()
            .is_ok()
    );
    // Longer than a line, terminator included, may be.
    let long = |n: usize| line(vec![("k".to_owned(), Value::Text("x".repeat(n)))]);
    let fits = MAX_LINE_LEN - "NOTIFY k=\"\"\r\n".len();
    let bytes = long(fits).encode().unwrap();
    assert_eq!(bytes.len(), MAX_LINE_LEN);
    assert_eq!(Line::decode(&bytes).map(|(n, _)| n), Ok(MAX_LINE_LEN));
    refused(long(fits + 1));
    // Ended by LF alone, a line is read only if it could be written with CRLF.
    let lf = |n: usize| format!("NOTIFY k=\"{}\"\n", "x".repeat(n)).into_bytes();
    assert_eq!(lf(fits).len(), MAX_LINE_LEN - 1);
    assert!(Line::decode(&lf(fits)).unwrap().1.encode().is_ok());
    assert_eq!(lf(fits + 1).len(), MAX_LINE_LEN);
    assert_eq!(Line::decode(&lf(fits + 1)), Err(LineError::Syntax));
}

/// A verb in any case is the line protocol, as the parser reads it; an HTTP request on
/// the same socket is not.
#[test]
fn a_connection_tells_its_protocol_by_its_first_octets() {
    for start in [
        &b"REGISTER aps"[..],
        b"register\taps",
        b"Notify do",
        b"NOTIFY\tdovecot",
    ] {
        assert!(
            starts_request(start),
            "{:?}",
            String::from_utf8_lossy(start)
        );
    }
    for start in [
        &b"POST /register HTTP/1.1"[..],
        b"GET /health",
        b"REGISTER",
        b"REGISTERS x",
        b"NOTIFY",
        b"NOTIFYING",
        b"",
    ] {
        assert!(
            !starts_request(start),
            "{:?}",
            String::from_utf8_lossy(start)
        );
    }
    let lower = b"notify dovecot-username=\"bob\"\tdovecot-mailbox=\"INBOX\"\r\n";
    let (_, request) = Request::decode(lower).unwrap();
    assert!(matches!(request, Request::Notify(_)));
}

#[test]
fn answers() {
    assert_eq!(
        Answer::decode(b"OK com.apple.mail.XServer.1234\n").unwrap(),
        (31, Answer::Ok("com.apple.mail.XServer.1234".into()))
    );
    // Python's daemon ends lines with CRLF; the NOTIFY answer has an empty text.
    assert_eq!(
        Answer::decode(b"OK \r\n").unwrap(),
        (5, Answer::Ok(String::new()))
    );
    assert_eq!(
        Answer::decode(b"ERROR Unknown aps-subtopic\r\n").unwrap().1,
        Answer::Error("Unknown aps-subtopic".into())
    );
    assert_eq!(Answer::decode(b"OK topic"), Err(LineError::Incomplete));
    assert_eq!(Answer::decode(b"MAYBE\n"), Err(LineError::Syntax));
    assert_eq!(Answer::decode(b"OK a\rb\n"), Err(LineError::Syntax));
    assert_eq!(Answer::decode(&[b'x'; 2000]), Err(LineError::Syntax));
    assert_eq!(Answer::ok("a\r\nb").encode(), b"OK a  b\n");
    assert_eq!(Answer::ok("").encode(), b"OK \n");
}

fn value_text() -> impl Strategy<Value = String> {
    // Anything but NUL, CR and LF, quotes and backslashes included.
    "[^\\x00\\r\\n]{0,12}"
}

fn arb_line() -> impl Strategy<Value = Line> {
    let value = prop_oneof![
        value_text().prop_map(Value::Text),
        prop::collection::vec(value_text(), 0..4).prop_map(Value::List),
    ];
    (
        prop_oneof![Just(Verb::Register), Just(Verb::Notify)],
        // Keys from a short alphabet too, so that some come twice.
        prop::collection::vec((prop_oneof!["[a-zA-Z0-9_-]{1,12}", "[ab]"], value), 1..6),
    )
        .prop_map(|(verb, pairs)| Line { verb, pairs })
}

fn arb_request() -> impl Strategy<Value = Request> {
    let name = "[^\\x00\\r\\n]{1,12}";
    prop_oneof![
        (
            "[A-F0-9-]{36}",
            "([0-9a-f]{2}){32}",
            "[a-z0-9@.]{1,20}",
            prop::collection::vec(name, 1..5)
        )
            .prop_map(|(account, token, user, mailboxes)| {
                Request::Register(Register {
                    account_id: AccountId::new(&account).unwrap(),
                    device_token: DeviceToken::new(&token).unwrap(),
                    username: UserName::new(&user).unwrap(),
                    mailboxes,
                })
            }),
        (name, name, prop::collection::vec("[A-Za-z]{1,14}", 1..4)).prop_filter_map(
            "a user name",
            |(username, mailbox, events)| Some(Request::Notify(
                Notify::new(UserName::new(&username).ok()?, mailbox, events, Vec::new()).ok()?
            ))
        ),
    ]
}

proptest! {
    #[test]
    fn lines_round_trip(line in arb_line()) {
        let repeated = line
            .pairs
            .iter()
            .enumerate()
            .any(|(i, (key, _))| line.pairs[..i].iter().any(|(k, _)| k == key));
        let bytes = match line.encode() {
            Ok(bytes) => bytes,
            Err(e) => {
                prop_assert!(repeated && matches!(e, LineError::NotALine(_)), "{e}");
                return Ok(());
            }
        };
        prop_assert!(!repeated);
        // A socket serving HTTP beside the lines tells them by their first octets.
        prop_assert!(starts_request(&bytes[..START_LEN]));
        prop_assert_eq!(Line::decode(&bytes), Ok((bytes.len(), line)));
        // Every proper prefix waits for more.
        for end in 0..bytes.len() {
            prop_assert_eq!(Line::decode(&bytes[..end]), Err(LineError::Incomplete));
        }
    }

    #[test]
    fn requests_round_trip(request in arb_request()) {
        let bytes = request.encode().unwrap();
        prop_assert_eq!(Request::decode(&bytes), Ok((bytes.len(), request)));
    }

    #[test]
    fn answers_round_trip(ok in any::<bool>(), text in "[^\\r\\n]{0,40}") {
        let answer = if ok { Answer::Ok(text) } else { Answer::Error(text) };
        let bytes = answer.encode();
        prop_assert_eq!(Answer::decode(&bytes), Ok((bytes.len(), answer)));
    }

    #[test]
    fn any_input_gets_a_value_or_an_error(input in prop::collection::vec(any::<u8>(), 0..200)) {
        if let Ok((used, line)) = Line::decode(&input) {
            prop_assert!(used <= input.len());
            // What was read re-encodes to something that reads the same.
            let again = line.encode().unwrap();
            prop_assert_eq!(Line::decode(&again).map(|(_, l)| l), Ok(line));
        }
        let _ = Answer::decode(&input);
    }
}
