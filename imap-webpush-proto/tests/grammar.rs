//! The draft's slide transcripts as known answers (decode, compare, re-encode to the
//! same bytes, decode again), the prefix property, round trips and every refusal.

use std::num::NonZeroU32;

use imap_syntax::{Atom, LiteralMode, SyntaxErrorKind, Tag};
use imap_webpush_proto::{
    AckToken, ArgumentError, Code, Command, CommandBody, Config, DecodeError, EndpointText,
    ListSelector, OtherCode, Refusal, Response, SilenceState, Status, StatusKind, SubId,
    SubscriptionArgs, Text,
};
use proptest::prelude::*;
use slide::{AUTH, ID, JZ, P256DH, RANDOM1, VAPID};
use webpush_crypto::{AuthSecret, PublicKey};

#[path = "support/slide.rs"]
mod slide;

fn tag(t: &str) -> Tag<'static> {
    Tag::new(t.to_owned()).unwrap()
}

fn sub_id() -> SubId<'static> {
    SubId::new(ID).unwrap()
}

fn ok(t: &str, text: &'static str) -> Response<'static> {
    Response::Status(Status::ok(tag(t), Text::new(text).unwrap()))
}

fn webpush(endpoint: &'static str, silence: SilenceState) -> Response<'static> {
    Response::WebPush {
        sub_id: sub_id(),
        endpoint: EndpointText::new(endpoint).unwrap(),
        silence,
    }
}

/// The client lines of the slides (joined, with the reused tag a2 of the ACK renamed a3).
fn commands() -> Vec<(String, Command<'static>)> {
    let c = |t: &str, body| Command { tag: tag(t), body };
    vec![
        ("a1 GETVAPID\r\n".into(), c("a1", CommandBody::GetVapid)),
        (
            format!("a2 WEBPUSH {ID} {RANDOM1} {P256DH} {AUTH}\r\n"),
            c(
                "a2",
                CommandBody::WebPush {
                    sub_id: sub_id(),
                    subscription: Some(SubscriptionArgs {
                        endpoint: EndpointText::new(RANDOM1).unwrap(),
                        p256dh: PublicKey::from_base64url(P256DH).unwrap(),
                        auth: AuthSecret::from_base64url(AUTH).unwrap(),
                    }),
                },
            ),
        ),
        (
            "a3 ACKWEBPUSH 585078c5-fb8b-4ed0-8e77-474ab08f0a30\r\n".into(),
            c(
                "a3",
                CommandBody::AckWebPush {
                    token: AckToken::new("585078c5-fb8b-4ed0-8e77-474ab08f0a30").unwrap(),
                },
            ),
        ),
        (
            "a4 LWEBPUSH *\r\n".into(),
            c(
                "a4",
                CommandBody::LWebPush {
                    selector: ListSelector::All,
                },
            ),
        ),
        (
            format!("a5 WEBPUSH {ID} NIL\r\n"),
            c(
                "a5",
                CommandBody::WebPush {
                    sub_id: sub_id(),
                    subscription: None,
                },
            ),
        ),
        (
            "a6 LWEBPUSH *\r\n".into(),
            c(
                "a6",
                CommandBody::LWebPush {
                    selector: ListSelector::All,
                },
            ),
        ),
        (
            format!("a7 SILWEBPUSH {ID} 0\r\n"),
            c(
                "a7",
                CommandBody::SilWebPush {
                    sub_id: sub_id(),
                    seconds: 0,
                },
            ),
        ),
        (
            format!("a8 LWEBPUSH {ID}\r\n"),
            c(
                "a8",
                CommandBody::LWebPush {
                    selector: ListSelector::One(sub_id()),
                },
            ),
        ),
    ]
}

/// The server lines of the slides.
fn responses() -> Vec<(String, Response<'static>)> {
    vec![
        (
            format!("* VAPID {VAPID}\r\n"),
            Response::Vapid(PublicKey::from_base64url(VAPID).unwrap()),
        ),
        (
            "a1 OK GETVAPID completed\r\n".into(),
            ok("a1", "GETVAPID completed"),
        ),
        (
            format!("* WEBPUSH {ID} {RANDOM1} NIL\r\n"),
            webpush(RANDOM1, SilenceState::NotSilenced),
        ),
        (
            "a2 OK WEBPUSH completed\r\n".into(),
            ok("a2", "WEBPUSH completed"),
        ),
        (
            format!("* WEBPUSH {ID} {JZ} 0\r\n"),
            webpush(JZ, SilenceState::UntilDisconnect),
        ),
        (
            "a3 OK ACKWEBPUSH completed\r\n".into(),
            ok("a3", "ACKWEBPUSH completed"),
        ),
        (
            format!("* WEBPUSH {ID} {JZ} NIL\r\n"),
            webpush(JZ, SilenceState::NotSilenced),
        ),
        (
            "a4 OK LWEBPUSH completed\r\n".into(),
            ok("a4", "LWEBPUSH completed"),
        ),
        (
            "a5 OK WEBPUSH completed\r\n".into(),
            ok("a5", "WEBPUSH completed"),
        ),
        (
            "a6 OK LWEBPUSH completed\r\n".into(),
            ok("a6", "LWEBPUSH completed"),
        ),
        (
            format!("* WEBPUSH {ID} {JZ} 300\r\n"),
            webpush(JZ, SilenceState::For(NonZeroU32::new(300).unwrap())),
        ),
        (
            "a9 NO [LIMIT] too many push subscriptions for this account\r\n".into(),
            Refusal::Limit.response(tag("a9")),
        ),
        (
            "+ Ready for literal data\r\n".into(),
            Response::Continuation(Text::new("Ready for literal data").unwrap()),
        ),
    ]
}

#[test]
fn slide_commands_decode_and_re_encode_byte_for_byte() {
    for (line, expected) in commands() {
        let (rest, command) = Command::decode(line.as_bytes(), &Config::SERVER).unwrap();
        assert!(rest.is_empty(), "{line}");
        assert_eq!(command, expected, "{line}");
        let mut out = Vec::new();
        command.encode(&mut out).unwrap();
        assert_eq!(String::from_utf8(out.clone()).unwrap(), line);
        assert_eq!(Command::decode(&out, &Config::SERVER).unwrap().1, expected);
    }
}

/// Text that starts with `[` may follow a code, or be a continuation's; moved into a
/// status without a code it would read back as a code, so it is refused.
#[test]
fn bracketed_text_is_not_written_where_it_reads_back_as_a_code() {
    let (_, plus) = Response::decode(b"+ [LIMIT] hi\r\n", &Config::CLIENT).unwrap();
    let Response::Continuation(text) = plus else {
        panic!("a continuation: {plus:?}")
    };
    let mut out = Vec::new();
    Response::Continuation(text.clone())
        .encode(&mut out)
        .unwrap();
    assert_eq!(out, b"+ [LIMIT] hi\r\n");
    let moved = Response::Status(Status::ok(Tag::new("a1").unwrap(), text));
    let mut out = Vec::new();
    assert!(moved.encode(&mut out).is_err());
    let (_, after_code) = Response::decode(b"a2 NO [LIMIT] [x] y\r\n", &Config::CLIENT).unwrap();
    let Response::Status(mut status) = after_code else {
        panic!("a status: {after_code:?}")
    };
    let mut out = Vec::new();
    Response::Status(status.clone()).encode(&mut out).unwrap();
    assert_eq!(out, b"a2 NO [LIMIT] [x] y\r\n");
    status.code = None;
    assert!(Response::Status(status).encode(&mut Vec::new()).is_err());
}

#[test]
fn slide_responses_decode_and_re_encode_byte_for_byte() {
    for (line, expected) in responses() {
        let (rest, response) = Response::decode(line.as_bytes(), &Config::CLIENT).unwrap();
        assert!(rest.is_empty(), "{line}");
        assert_eq!(response, expected, "{line}");
        let mut out = Vec::new();
        response.encode(&mut out).unwrap();
        assert_eq!(String::from_utf8(out.clone()).unwrap(), line);
        assert_eq!(Response::decode(&out, &Config::CLIENT).unwrap().1, expected);
    }
}

#[test]
fn every_proper_prefix_is_incomplete() {
    for (line, _) in commands() {
        for cut in 0..line.len() {
            let got = Command::decode(&line.as_bytes()[..cut], &Config::SERVER);
            assert_eq!(got, Err(DecodeError::Incomplete), "{:?}", &line[..cut]);
        }
    }
    for (line, _) in responses() {
        for cut in 0..line.len() {
            let got = Response::decode(&line.as_bytes()[..cut], &Config::CLIENT);
            assert_eq!(got, Err(DecodeError::Incomplete), "{:?}", &line[..cut]);
        }
    }
}

#[test]
fn liberal_input() {
    // Keywords in any case; keys padded; quoted and literal endpoints.
    let line = format!("x1 WebPush {ID} \"{RANDOM1}\" {P256DH}= {AUTH}==\r\n");
    let (_, command) = Command::decode(line.as_bytes(), &Config::SERVER).unwrap();
    assert_eq!(command.body, commands()[1].1.body);
    let literal = format!(
        "x2 WEBPUSH {ID} {{{}+}}\r\n{RANDOM1} {P256DH} {AUTH}\r\n",
        RANDOM1.len()
    );
    let (_, command) = Command::decode(literal.as_bytes(), &Config::SERVER).unwrap();
    assert_eq!(command.body, commands()[1].1.body);
    let (_, response) = Response::decode(b"a1 ok GETVAPID completed\r\n", &Config::CLIENT).unwrap();
    assert_eq!(response, ok("a1", "GETVAPID completed"));
    let (_, response) =
        Response::decode(b"* OK [UNKNOWN-CODE arg 1] hi\r\n", &Config::CLIENT).unwrap();
    let Response::Status(Status {
        tag: None,
        kind: StatusKind::Ok,
        code: Some(Code::Other(other)),
        ..
    }) = response
    else {
        panic!("{response:?}")
    };
    assert_eq!(
        (other.name().as_str(), other.argument()),
        ("UNKNOWN-CODE", Some("arg 1"))
    );
}

#[test]
fn endpoints_that_need_quoting_or_a_literal() {
    for endpoint in [
        "https://push.example.net/p/a%20b",
        "https://[2001:db8::1]/p",
        "https://push.example.net/p/*x",
        "https://push.example.net/p/\"q\"",
        "https://push.example.net/p/grüße",
    ] {
        let response = webpush(
            Box::leak(endpoint.to_owned().into_boxed_str()),
            SilenceState::NotSilenced,
        );
        let mut out = Vec::new();
        response.encode(&mut out).unwrap();
        assert_eq!(
            Response::decode(&out, &Config::CLIENT).unwrap().1,
            response,
            "{endpoint}"
        );
    }
}

#[test]
fn syntax_and_argument_errors_answer_bad_with_the_tag() {
    let bad = |line: &[u8]| {
        let err = Command::decode(line, &Config::SERVER).unwrap_err();
        let mut out = Vec::new();
        err.response().unwrap().encode(&mut out).unwrap();
        (err, String::from_utf8(out).unwrap())
    };
    let (err, text) = bad(b"a1 GETVAPID extra\r\n");
    assert!(
        matches!(err, DecodeError::Syntax { tag: Some(_), .. }),
        "{err:?}"
    );
    assert!(text.starts_with("a1 BAD "), "{text}");

    let (err, text) = bad(format!("a2 WEBPUSH {ID} {RANDOM1} BAAA {AUTH}\r\n").as_bytes());
    assert!(
        matches!(
            err,
            DecodeError::Argument {
                error: ArgumentError::P256dh(_),
                ..
            }
        ),
        "{err:?}"
    );
    assert!(text.starts_with("a2 BAD p256dh key is invalid"), "{text}");

    // A point off the curve: the RFC key with its last coordinate octet changed.
    let off_curve = format!("{}A", &P256DH[..P256DH.len() - 1]);
    let (err, _) = bad(format!("a3 WEBPUSH {ID} {RANDOM1} {off_curve} {AUTH}\r\n").as_bytes());
    assert_eq!(
        err,
        DecodeError::Argument {
            tag: Some(tag("a3")),
            error: ArgumentError::P256dh(webpush_crypto::Error::PublicKeyNotOnCurve)
        }
    );
    let (err, _) = bad(format!("a4 WEBPUSH {ID} {RANDOM1} {P256DH} AAAA\r\n").as_bytes());
    assert!(matches!(
        err,
        DecodeError::Argument {
            error: ArgumentError::Auth(_),
            ..
        }
    ));
    let (err, _) =
        bad(format!("a5 WEBPUSH {ID} {RANDOM1} {P256DH} BTBZ+qHH6r4Tts7J/aSIgg\r\n").as_bytes());
    assert!(matches!(
        err,
        DecodeError::Argument {
            error: ArgumentError::Auth(_),
            ..
        }
    ));
    let (err, _) = bad(format!("a6 WEBPUSH {} NIL\r\n", "x".repeat(65)).as_bytes());
    assert_eq!(
        err,
        DecodeError::Argument {
            tag: Some(tag("a6")),
            error: ArgumentError::SubIdLength { len: 65 }
        }
    );
    let (err, _) = bad(b"a7 SILWEBPUSH id 99999999999\r\n");
    assert_eq!(
        err,
        DecodeError::Syntax {
            tag: Some(tag("a7")),
            kind: SyntaxErrorKind::NumberRange
        }
    );
    let (err, _) = bad(b"a8 WEBPUSH \"a\0b\" NIL\r\n");
    assert_eq!(
        err,
        DecodeError::Syntax {
            tag: Some(tag("a8")),
            kind: SyntaxErrorKind::Nul
        }
    );
    let (err, _) = bad(b"a9 WEBPUSH \"\xff\" NIL\r\n");
    assert_eq!(
        err,
        DecodeError::Syntax {
            tag: Some(tag("a9")),
            kind: SyntaxErrorKind::InvalidUtf8
        }
    );
    // No tag: an untagged BAD.
    let (err, text) = bad(b"+x GETVAPID\r\n");
    assert!(matches!(err, DecodeError::Syntax { tag: None, .. }));
    assert!(text.starts_with("* BAD "), "{text}");
}

#[test]
fn literals_are_announced_and_bounded() {
    let err = Command::decode(
        format!("b1 WEBPUSH {ID} {{37}}\r\n").as_bytes(),
        &Config::SERVER,
    )
    .unwrap_err();
    assert_eq!(
        err,
        DecodeError::LiteralFound {
            tag: tag("b1"),
            length: 37,
            mode: LiteralMode::Sync
        }
    );
    let mut out = Vec::new();
    err.response().unwrap().encode(&mut out).unwrap();
    assert_eq!(out, b"+ Ready for literal data\r\n");
    let err = Command::decode(
        format!("b2 WEBPUSH {ID} {{999999}}\r\n").as_bytes(),
        &Config::SERVER,
    )
    .unwrap_err();
    assert_eq!(
        err,
        DecodeError::Syntax {
            tag: Some(tag("b2")),
            kind: SyntaxErrorKind::LiteralTooLarge {
                length: 999_999,
                max: 4096
            }
        }
    );
}

#[test]
fn over_long_lines_are_refused_without_waiting() {
    let mut line = format!("c1 WEBPUSH {ID} https://push.example.net/").into_bytes();
    line.extend(std::iter::repeat_n(b'a', 9000));
    let refused = Command::decode(&line, &Config::SERVER);
    let Err(DecodeError::TooLong {
        tag: Some(tag),
        max: 8192,
    }) = &refused
    else {
        panic!("{refused:?}");
    };
    assert_eq!(tag.as_str(), "c1");
    // Answered under the command's tag, so that the client sees it end.
    let mut answer = Vec::new();
    refused
        .unwrap_err()
        .response()
        .unwrap()
        .encode(&mut answer)
        .unwrap();
    assert_eq!(answer, b"c1 BAD command longer than 8192 octets\r\n");
    line.extend_from_slice(format!(" {P256DH} {AUTH}\r\n").as_bytes());
    assert!(matches!(
        Command::decode(&line, &Config::SERVER),
        Err(DecodeError::TooLong { max: 8192, .. })
    ));
}

#[test]
fn other_commands_and_responses_are_passed_on() {
    assert_eq!(
        Command::decode(b"a1 SELECT INBOX\r\n", &Config::SERVER),
        Err(DecodeError::NotWebPush {
            tag: Some(tag("a1"))
        })
    );
    assert_eq!(
        Response::decode(b"* 3 EXISTS\r\n", &Config::CLIENT),
        Err(DecodeError::NotWebPush { tag: None })
    );
    assert!(imap_webpush_proto::is_webpush_command(b"silwebpush"));
    assert!(!imap_webpush_proto::is_webpush_command(b"SELECT"));
}

#[test]
fn ack_tokens_compare_and_print_safely() {
    let a = AckToken::new("585078c5-fb8b-4ed0-8e77-474ab08f0a30").unwrap();
    assert_eq!(
        a,
        AckToken::new("585078c5-fb8b-4ed0-8e77-474ab08f0a30".to_owned()).unwrap()
    );
    assert_ne!(
        a,
        AckToken::new("585078c5-fb8b-4ed0-8e77-474ab08f0a31").unwrap()
    );
    assert_eq!(format!("{a:?}"), "AckToken(<redacted>)");
}

fn endpoint_strategy() -> impl Strategy<Value = String> {
    prop_oneof![
        "https://[a-z]{1,10}\\.example/[a-zA-Z0-9_/-]{0,30}",
        "https://[a-z]{1,10}\\.example/[ -~]{0,30}",
        "https://[a-z]{1,10}\\.example/\\PC{0,10}",
        // Not a URL, but text the grammar carries, spelled as its NIL.
        "[Nn][Ii][Ll]",
    ]
}

proptest! {
    #[test]
    fn command_round_trip(
        id in "[A-Za-z0-9._-]{1,64}",
        endpoint in endpoint_strategy(),
        seconds in any::<u32>(),
        which in 0usize..4,
        t in "[A-Za-z0-9.]{1,8}",
    ) {
        let body = match which {
            0 => CommandBody::WebPush {
                sub_id: SubId::new(id.as_str()).unwrap(),
                subscription: Some(SubscriptionArgs {
                    endpoint: EndpointText::new(endpoint.as_str()).unwrap(),
                    p256dh: PublicKey::from_base64url(P256DH).unwrap(),
                    auth: AuthSecret::from_base64url(AUTH).unwrap(),
                }),
            },
            1 => CommandBody::SilWebPush { sub_id: SubId::new(id.as_str()).unwrap(), seconds },
            2 => CommandBody::LWebPush { selector: ListSelector::One(SubId::new(id.as_str()).unwrap()) },
            _ => CommandBody::AckWebPush { token: AckToken::new(id.as_str()).unwrap() },
        };
        let command = Command { tag: Tag::new(t.as_str()).unwrap(), body };
        let mut out = Vec::new();
        command.encode(&mut out).unwrap();
        // The server's own limits: literal data follows its announcement in `out`.
        let (rest, decoded) = Command::decode(&out, &Config::SERVER).unwrap();
        prop_assert!(rest.is_empty());
        prop_assert_eq!(decoded, command);
    }

    #[test]
    fn response_round_trip(id in "[A-Za-z0-9._-]{1,64}", endpoint in endpoint_strategy(), seconds in proptest::option::of(any::<u32>()), text in "[ -Z\\\\-~]{0,40}") {
        let silence = seconds.map_or(SilenceState::NotSilenced, SilenceState::from_secs);
        for response in [
            Response::WebPush { sub_id: SubId::new(id.as_str()).unwrap(), endpoint: EndpointText::new(endpoint.as_str()).unwrap(), silence },
            Response::Status(Status { tag: None, kind: StatusKind::No, code: Some(Code::Cannot), text: Text::new(text.as_str()).unwrap() }),
        ] {
            let mut out = Vec::new();
            response.encode(&mut out).unwrap();
            let (rest, decoded) = Response::decode(&out, &Config::CLIENT).unwrap();
            prop_assert!(rest.is_empty());
            prop_assert_eq!(decoded, response);
        }
    }

    #[test]
    fn decoders_are_total(input in proptest::collection::vec(any::<u8>(), 0..200)) {
        let _ = Command::decode(&input, &Config::SERVER);
        let _ = Response::decode(&input, &Config::CLIENT);
    }
}

/// No caller-supplied text makes an encoder write more than one line: what would break
/// it (CR, LF, NUL; `]` inside a response code) is refused by the constructors.
#[test]
fn caller_text_cannot_inject_a_line() {
    let injected = "a]\r\n* BYE injected";
    assert!(OtherCode::new(Atom::new("X").unwrap(), Some(injected)).is_err());
    for bad in ["a]b", "a\rb", "a\nb", "a\0b", ""] {
        assert_eq!(
            OtherCode::new(Atom::new("X").unwrap(), Some(bad)),
            Err(ArgumentError::CodeArgument),
            "{bad:?}"
        );
    }
    for bad in ["a\r\n* BYE", "a\nb", "a\0", "[ALERT] x"] {
        assert!(Text::new(bad).is_err(), "{bad:?}");
    }
    assert!(Atom::new("X]").is_err());
    assert!(Tag::new("a\r\n*").is_err());
    // Sanitized text from any message stays on its line.
    let text = Text::sanitized("line\r\n* BYE\0".into());
    assert!(!text.as_str().contains(['\r', '\n', '\0']));
}

proptest! {
    /// Whatever the constructors accept encodes as exactly one line.
    #[test]
    fn accepted_status_responses_are_one_line(
        name in "[A-Z][A-Z-]{0,10}",
        argument in proptest::option::of("\\PC{0,20}|[\\x00-\\x7f]{0,20}"),
        text in "\\PC{0,40}|[\\x00-\\x7f]{0,40}",
        tagged in any::<bool>(),
    ) {
        let Ok(code) = OtherCode::new(Atom::new(name).unwrap(), argument.as_deref()) else {
            return Ok(());
        };
        let Ok(text) = Text::new(text) else { return Ok(()) };
        let status = Response::Status(Status {
            tag: tagged.then(|| Tag::new("a1").unwrap()),
            kind: StatusKind::No,
            code: Some(Code::Other(code)),
            text,
        });
        let mut out = Vec::new();
        status.encode(&mut out).unwrap();
        prop_assert!(out.ends_with(b"\r\n"));
        let body = &out[..out.len() - 2];
        prop_assert!(!body.iter().any(|b| matches!(b, b'\r' | b'\n' | 0)));
        // The code closes where the encoder closed it, and the line reads back.
        let (rest, again) = Response::decode(&out, &Config::CLIENT).unwrap();
        prop_assert!(rest.is_empty());
        prop_assert_eq!(again, status);
    }
}
