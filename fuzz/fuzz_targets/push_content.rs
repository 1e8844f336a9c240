//! Push-content parsing of arbitrary plaintexts: never panics; the mailbox groups read
//! are rebuilt within a generous budget and read back to the same groups.
#![no_main]

use imap_webpush_proto::content::{ContentBuilder, PushItem, parse_push};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|plaintext: &[u8]| {
    let groups: Vec<_> = parse_push(plaintext)
        .into_iter()
        .filter_map(|item| match item {
            PushItem::Mailbox(group) => Some(group),
            _ => None,
        })
        .collect();
    if groups.is_empty() {
        return;
    }
    let pushes = ContentBuilder::new(1 << 20).build(&groups);
    let again: Vec<_> = pushes
        .iter()
        .flat_map(|p| parse_push(p))
        .filter_map(|item| match item {
            PushItem::Mailbox(group) => Some(group.events.len()),
            _ => None,
        })
        .collect();
    let events: Vec<_> = groups.iter().map(|g| g.events.len()).collect();
    // Consecutive groups of one mailbox may merge; the events all survive.
    assert_eq!(again.iter().sum::<usize>(), events.iter().sum::<usize>());
});
