//! Push content: the slide pushes byte for byte, the budget is never exceeded, and
//! what fits is read back to the same events.

use std::borrow::Cow;
use std::num::NonZeroU32;

use imap_syntax::{Mailbox, SeqNumber, Sequence, SequenceSet};
use imap_webpush_proto::AckToken;
use imap_webpush_proto::content::{
    Address, ContentBuilder, Envelope, Event, Flag, LeftOut, MailboxEvents, PushItem, ack_push,
    parse_push,
};
use proptest::prelude::*;
use slide::{SLIDE_PUSH, new_mail as slide_event};

#[path = "support/slide.rs"]
mod slide;

fn b(text: &str) -> Option<Cow<'static, [u8]>> {
    Some(Cow::Owned(text.as_bytes().to_vec()))
}

#[test]
fn slide_pushes_byte_for_byte() {
    let pushes = ContentBuilder::new(3993).build(&[slide_event()]);
    assert_eq!(pushes, [SLIDE_PUSH.to_vec()]);
    assert_eq!(parse_push(SLIDE_PUSH), [PushItem::Mailbox(slide_event())]);

    let token = AckToken::new("585078c5-fb8b-4ed0-8e77-474ab08f0a30").unwrap();
    let ack = ack_push(&token);
    assert_eq!(
        ack,
        b"* ACKWEBPUSH 585078c5-fb8b-4ed0-8e77-474ab08f0a30\r\n"
    );
    assert_eq!(parse_push(&ack), [PushItem::Ack(token)]);
}

#[test]
fn eight_bit_text_goes_in_a_literal() {
    let mut event = slide_event();
    let Event::NewMessage { envelope, .. } = &mut event.events[0] else {
        unreachable!()
    };
    envelope.subject = b("Grüße aus Köln");
    let push = &ContentBuilder::new(3993).build(std::slice::from_ref(&event))[0];
    let subject = "{17}\r\nGrüße aus Köln".as_bytes();
    assert!(push.windows(subject.len()).any(|w| w == subject));
    assert_eq!(parse_push(push), [PushItem::Mailbox(event)]);
}

fn flags(list: &[&str]) -> Vec<Flag<'static>> {
    list.iter()
        .map(|f| Flag::new(f.to_string()).unwrap())
        .collect()
}

/// The uids of the new messages a push shows, and whether each carries its envelope.
fn shown(pushes: &[Vec<u8>]) -> Vec<(u32, bool)> {
    pushes
        .iter()
        .flat_map(|p| parse_push(p))
        .flat_map(|item| match item {
            PushItem::Mailbox(g) => g.events,
            _ => vec![],
        })
        .filter_map(|e| match e {
            Event::NewMessage { uid, .. } => Some((uid.get(), true)),
            Event::FlagsChanged { uid, .. } => Some((uid.get(), false)),
            _ => None,
        })
        .collect()
}

#[test]
fn keeps_as_much_as_fits() {
    let big = |uid: u32| Event::NewMessage {
        uid: NonZeroU32::new(uid).unwrap(),
        envelope: Box::new(Envelope {
            subject: b(&"s".repeat(1500)),
            ..Envelope::default()
        }),
        flags: Some(flags(&["\\Recent"])),
    };
    let group = MailboxEvents {
        mailbox: Mailbox::Inbox,
        events: vec![big(1), big(2), big(3), Event::Exists(3)],
    };
    // Three 1.5 KB subjects in 3993 octets: two envelopes go out, the third message
    // goes with its flags, and the EXISTS after it still fits.
    let content = ContentBuilder::new(3993).build_content(std::slice::from_ref(&group));
    assert_eq!(content.pushes.len(), 1);
    assert!(content.pushes[0].len() <= 3993);
    assert_eq!(shown(&content.pushes), [(1, true), (2, true), (3, false)]);
    assert!(content.pushes[0].ends_with(b"* 3 UIDFETCH (FLAGS (\\Recent))\r\n* 3 EXISTS\r\n"));
    assert_eq!(content.left_out, [LeftOut::Envelope { group: 0, event: 2 }]);
    // With room for three pushes, nothing is lost.
    let content = ContentBuilder::new(3993)
        .max_pushes(3)
        .build_content(std::slice::from_ref(&group));
    assert_eq!(content.pushes.len(), 2);
    assert_eq!(shown(&content.pushes), [(1, true), (2, true), (3, true)]);
    assert!(content.left_out.is_empty());
    // A tiny budget leaves the generic event: the SELECT line alone.
    let content = ContentBuilder::new(20).build_content(std::slice::from_ref(&group));
    assert_eq!(content.pushes, [b"* SELECT INBOX\r\n".to_vec()]);
    assert_eq!(content.left_out.len(), 4);
}

/// What the outside review found: when one message more than fits arrived, the whole
/// push became `* SELECT INBOX`. Now only that message loses detail.
#[test]
fn one_message_too_many_loses_only_its_own_envelope() {
    let message = |uid: u32, flags: Option<Vec<Flag<'static>>>| Event::NewMessage {
        uid: NonZeroU32::new(uid).unwrap(),
        envelope: Box::new(Envelope {
            date: b("Tue, 01 Dec 2026 20:39:06 +0000"),
            subject: b("Quarterly report"),
            from: vec![Address {
                name: b("Bob"),
                mailbox: b("bob"),
                host: b("example.org"),
                ..Address::default()
            }],
            ..Envelope::default()
        }),
        flags,
    };
    for with_flags in [None, Some(flags(&["\\Recent"]))] {
        let group = |n: u32| MailboxEvents {
            mailbox: Mailbox::Inbox,
            events: (1..=n)
                .map(|uid| message(uid, with_flags.clone()))
                .collect(),
        };
        let builder = ContentBuilder::new(3993);
        let most = (1..100)
            .take_while(|&n| builder.build_content(&[group(n)]).left_out.is_empty())
            .last()
            .unwrap();
        assert!(most > 20, "{most} messages with envelopes fit");
        let fits = builder.build_content(&[group(most)]);
        let one_more = builder.build_content(&[group(most + 1)]);
        let (before, after) = (shown(&fits.pushes), shown(&one_more.pushes));
        assert_eq!(
            after[..before.len()],
            before[..],
            "the first {most} keep their envelopes"
        );
        assert!(one_more.pushes[0].len() <= 3993);
        let last = usize::try_from(most).unwrap();
        match with_flags {
            // No smaller form: reported, and a SELECT line alone after the others
            // says to synchronize.
            None => {
                assert_eq!(
                    one_more.left_out,
                    [LeftOut::Event {
                        group: 0,
                        event: last
                    }]
                );
                let items: Vec<_> = one_more.pushes.iter().flat_map(|p| parse_push(p)).collect();
                assert!(
                    matches!(items.last(), Some(PushItem::Mailbox(g)) if g.events.is_empty()),
                    "{items:?}"
                );
                assert!(
                    fits.pushes
                        .iter()
                        .flat_map(|p| parse_push(p))
                        .all(|item| matches!(item, PushItem::Mailbox(g) if !g.events.is_empty()))
                );
            }
            // Its flags go out if they still fit; either way only it is reported.
            Some(_) => assert!(matches!(
                one_more.left_out[..],
                [LeftOut::Envelope { group: 0, event } | LeftOut::Event { group: 0, event }]
                    if event == last
            )),
        }
    }
}

#[test]
fn unknown_lines_are_kept_and_do_not_end_the_group() {
    let push = b"* SELECT INBOX\r\n* 4 EXISTS\r\n* FUTURE (x)\r\n* VANISHED 1:3,5\r\nnot even a response\r\n";
    let items = parse_push(push);
    let set = SequenceSet::new(vec![
        Sequence::Range(
            SeqNumber::Value(NonZeroU32::new(1).unwrap()),
            SeqNumber::Value(NonZeroU32::new(3).unwrap()),
        ),
        Sequence::Single(SeqNumber::Value(NonZeroU32::new(5).unwrap())),
    ])
    .unwrap();
    assert_eq!(
        items,
        [
            PushItem::Mailbox(MailboxEvents {
                mailbox: Mailbox::Inbox,
                events: vec![Event::Exists(4)]
            }),
            PushItem::Unknown(Cow::Borrowed(b"* FUTURE (x)")),
            PushItem::Mailbox(MailboxEvents {
                mailbox: Mailbox::Inbox,
                events: vec![Event::Vanished(set)]
            }),
            PushItem::Unknown(Cow::Borrowed(b"not even a response")),
        ]
    );
    assert_eq!(
        parse_push(b"* 3 EXISTS"),
        [PushItem::Unknown(Cow::Borrowed(b"* 3 EXISTS"))]
    );
}

fn text() -> impl Strategy<Value = Option<Cow<'static, [u8]>>> {
    proptest::option::of(prop_oneof![
        "[ -~]{0,60}".prop_map(|s| Cow::Owned(s.into_bytes())),
        "\\PC{0,30}".prop_map(|s| Cow::Owned(s.into_bytes())),
    ])
}

fn address() -> impl Strategy<Value = Address<'static>> {
    (text(), text(), text(), text()).prop_map(|(name, adl, mailbox, host)| Address {
        name,
        adl,
        mailbox,
        host,
    })
}

fn event() -> impl Strategy<Value = Event<'static>> {
    let flag = prop_oneof![
        Just("\\Seen"),
        Just("\\Flagged"),
        Just("$Junk"),
        Just("work")
    ];
    let flags = proptest::collection::vec(flag.prop_map(|f| Flag::new(f).unwrap()), 0..4);
    prop_oneof![
        (
            1u32..,
            text(),
            proptest::collection::vec(address(), 0..3),
            proptest::option::of(flags.clone())
        )
            .prop_map(|(uid, subject, from, flags)| Event::NewMessage {
                uid: NonZeroU32::new(uid).unwrap(),
                envelope: Box::new(Envelope {
                    subject,
                    from,
                    ..Envelope::default()
                }),
                flags,
            }),
        (1u32.., flags).prop_map(|(uid, flags)| Event::FlagsChanged {
            uid: NonZeroU32::new(uid).unwrap(),
            flags
        }),
        any::<u32>().prop_map(Event::Exists),
    ]
}

fn groups() -> impl Strategy<Value = Vec<MailboxEvents<'static>>> {
    let mailbox = prop_oneof![
        Just(Mailbox::Inbox),
        "[ -~]{1,30}".prop_map(|s| Mailbox::from_bytes(s.into_bytes())),
    ];
    proptest::collection::vec(
        (mailbox, proptest::collection::vec(event(), 0..6))
            .prop_map(|(mailbox, events)| MailboxEvents { mailbox, events }),
        1..5,
    )
}

proptest! {
    #[test]
    fn never_over_budget_and_what_fits_reads_back(groups in groups(), budget in 60usize..5000, max in 1usize..4) {
        let pushes = ContentBuilder::new(budget).max_pushes(max).build(&groups);
        let mut seen = Vec::new();
        for push in &pushes {
            prop_assert!(push.len() <= budget, "{} > {budget}", push.len());
            prop_assert!(push.ends_with(b"\r\n"));
            for item in parse_push(push) {
                match item {
                    PushItem::Mailbox(g) => seen.push(g.into_owned_for_test()),
                    other => prop_assert!(false, "unexpected {other:?}"),
                }
            }
        }
        // Every mailbox is announced, in order (consecutive duplicates merged).
        let mut announced: Vec<Vec<u8>> = seen.iter().map(|g| g.mailbox.as_bytes().to_vec()).collect();
        announced.dedup();
        let mut expected: Vec<Vec<u8>> = groups.iter().map(|g| g.mailbox.as_bytes().to_vec()).collect();
        expected.dedup();
        prop_assert_eq!(announced, expected);
        // With a generous budget everything is sent, exactly.
        if budget >= 4000 && max >= 3 {
            let all: Vec<Event> = seen.iter().flat_map(|g| g.events.clone()).collect();
            let sent: Vec<Event> = groups.iter().flat_map(|g| g.events.clone()).collect();
            prop_assert_eq!(all, sent);
        }
        // The report is honest: every event not reported as left out is in a push.
        let content = ContentBuilder::new(budget).max_pushes(max).build_content(&groups);
        let dropped = content.left_out.iter().filter(|l| matches!(l, LeftOut::Event { .. })).count();
        let total: usize = groups.iter().map(|g| g.events.len()).sum();
        prop_assert_eq!(seen.iter().map(|g| g.events.len()).sum::<usize>(), total - dropped);
    }

    /// One more event never makes the push say less about the events already there.
    #[test]
    fn one_more_event_never_says_less(groups in groups(), extra in event(), new_group in any::<bool>(), budget in 60usize..5000, max in 1usize..4) {
        let builder = ContentBuilder::new(budget).max_pushes(max);
        let mut more = groups.clone();
        match more.last_mut() {
            Some(last) if !new_group => last.events.push(extra),
            _ => more.push(MailboxEvents { mailbox: Mailbox::Inbox, events: vec![extra] }),
        }
        let level = |content: &imap_webpush_proto::content::Content, group: usize, event: usize| {
            match content.left_out.iter().find(|l| matches!(l,
                LeftOut::Envelope { group: g, event: e } | LeftOut::Event { group: g, event: e }
                    if *g == group && *e == event)) {
                None => 2,
                Some(LeftOut::Envelope { .. }) => 1,
                Some(_) => 0,
            }
        };
        let before = builder.build_content(&groups);
        let after = builder.build_content(&more);
        for (g, group) in groups.iter().enumerate() {
            for e in 0..group.events.len() {
                prop_assert!(level(&after, g, e) >= level(&before, g, e), "group {g} event {e}");
            }
        }
    }
}

/// Test helper: an owned copy of a parsed group.
trait IntoOwnedForTest {
    fn into_owned_for_test(self) -> MailboxEvents<'static>;
}

impl IntoOwnedForTest for MailboxEvents<'_> {
    fn into_owned_for_test(self) -> MailboxEvents<'static> {
        let own = |c: Option<Cow<'_, [u8]>>| c.map(|c| Cow::Owned(c.into_owned()));
        let addrs = |v: Vec<Address<'_>>| -> Vec<Address<'static>> {
            v.into_iter()
                .map(|a| Address {
                    name: own(a.name),
                    adl: own(a.adl),
                    mailbox: own(a.mailbox),
                    host: own(a.host),
                })
                .collect()
        };
        let flags = |v: Vec<Flag<'_>>| -> Vec<Flag<'static>> {
            v.iter()
                .map(|f| Flag::new(f.as_str().to_owned()).unwrap())
                .collect()
        };
        MailboxEvents {
            mailbox: self.mailbox.into_owned(),
            events: self
                .events
                .into_iter()
                .map(|e| match e {
                    Event::NewMessage {
                        uid,
                        envelope,
                        flags: f,
                    } => Event::NewMessage {
                        uid,
                        envelope: Box::new(Envelope {
                            date: own(envelope.date),
                            subject: own(envelope.subject),
                            from: addrs(envelope.from),
                            sender: addrs(envelope.sender),
                            reply_to: addrs(envelope.reply_to),
                            to: addrs(envelope.to),
                            cc: addrs(envelope.cc),
                            bcc: addrs(envelope.bcc),
                            in_reply_to: own(envelope.in_reply_to),
                            message_id: own(envelope.message_id),
                        }),
                        flags: f.map(flags),
                    },
                    Event::FlagsChanged { uid, flags: f } => Event::FlagsChanged {
                        uid,
                        flags: flags(f),
                    },
                    Event::Vanished(set) => Event::Vanished(set),
                    Event::Exists(n) => Event::Exists(n),
                    other => panic!("{other:?}"),
                })
                .collect(),
        }
    }
}

/// An unknown line is skipped as IMAP frames it: a CRLF inside its literal does not
/// end it, so the literal's contents are not read as lines of their own.
#[test]
fn unknown_lines_end_where_imap_says() {
    let push = b"* SELECT INBOX\r\n* FUTURE {16}\r\n* 99 EXISTS\r\nxx\r\n* 7 EXISTS\r\n";
    let items = parse_push(push);
    assert_eq!(
        items,
        [
            PushItem::Mailbox(MailboxEvents {
                mailbox: Mailbox::Inbox,
                events: vec![]
            }),
            PushItem::Unknown(Cow::Borrowed(&b"* FUTURE {16}\r\n* 99 EXISTS\r\nxx"[..])),
            PushItem::Mailbox(MailboxEvents {
                mailbox: Mailbox::Inbox,
                events: vec![Event::Exists(7)]
            }),
        ]
    );
}

/// ACKWEBPUSH carries an astring whose characters are the token's: `]` is one of
/// them, and a quoted form reads too.
#[test]
fn ack_tokens_read_with_their_own_grammar() {
    for (line, token) in [
        (&b"* ACKWEBPUSH ab]cd\r\n"[..], "ab]cd"),
        (b"* ACKWEBPUSH \"ab]cd\"\r\n", "ab]cd"),
        (b"* ACKWEBPUSH {5}\r\nab]cd\r\n", "ab]cd"),
    ] {
        assert_eq!(
            parse_push(line),
            [PushItem::Ack(AckToken::new(token).unwrap())],
            "{:?}",
            String::from_utf8_lossy(line)
        );
    }
    // What the token's rule refuses stays an unknown line.
    assert!(matches!(
        &parse_push(b"* ACKWEBPUSH \"a b\"\r\n")[..],
        [PushItem::Unknown(_)]
    ));
}

/// One address as a sender writes it: an optional display name (quoted when it needs
/// to be, with its quotes and backslashes escaped), a local part and a domain.
fn written_address() -> impl Strategy<Value = (Option<String>, String, String)> {
    (
        proptest::option::of("[A-Za-z0-9 ,.;:<>()@\"\\\\äé]{1,20}"),
        "[a-z0-9!#$%&'*+/=?^_`{|}~-]{1,12}",
        "[a-z0-9-]{1,12}(\\.[a-z]{2,6}){0,2}",
    )
}

proptest! {
    /// A list of addresses written as RFC 5322 writes them reads back to the same
    /// names, local parts and domains.
    #[test]
    fn address_lists_read_back(list in proptest::collection::vec(written_address(), 1..5)) {
        let text: Vec<String> = list
            .iter()
            .map(|(name, local, domain)| match name {
                Some(name) => {
                    let escaped = name.replace('\\', "\\\\").replace('"', "\\\"");
                    format!("\"{escaped}\" <{local}@{domain}>")
                }
                None => format!("{local}@{domain}"),
            })
            .collect();
        let text = text.join(", ");
        let read = Address::parse_list(&text);
        prop_assert_eq!(read.len(), list.len(), "{}", text);
        for (address, (name, local, domain)) in read.iter().zip(&list) {
            prop_assert_eq!(address.name.as_deref(), name.as_deref().map(str::as_bytes));
            prop_assert_eq!(address.mailbox.as_deref(), Some(local.as_bytes()));
            prop_assert_eq!(address.host.as_deref(), Some(domain.as_bytes()));
        }
    }

    /// Any text: reading it as an address list never panics, and every address has a
    /// mailbox and a host unless it marks a group's start or end.
    #[test]
    fn any_text_reads_as_an_address_list(text in "\\PC{0,200}") {
        for address in Address::parse_list(&text) {
            let group_marker = address.host.is_none();
            prop_assert!(group_marker || address.mailbox.is_some());
        }
    }
}
