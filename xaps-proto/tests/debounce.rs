//! Debouncer timelines: bursts, new mail during a delay, independent devices.

use std::time::{Duration, Instant};

use proptest::prelude::*;
use xaps_proto::{Debouncer, is_message_new};

fn s(n: u64) -> Duration {
    Duration::from_secs(n)
}

#[test]
fn a_burst_gives_one_push_30_s_after_the_last_event() {
    let t0 = Instant::now();
    let mut d = Debouncer::default();
    for i in 0..50 {
        assert_eq!(d.on_event("phone", false, t0 + s(i)), None);
    }
    assert_eq!(d.next_deadline(), Some(t0 + s(49 + 30)));
    assert!(d.poll(t0 + s(78)).is_empty());
    assert_eq!(d.poll(t0 + s(79)), ["phone"]);
    assert!(d.poll(t0 + s(1000)).is_empty(), "once");
    assert_eq!(d.next_deadline(), None);
}

#[test]
fn new_mail_pushes_at_once_and_cancels_the_pending_push() {
    let t0 = Instant::now();
    let mut d = Debouncer::default();
    d.on_event("phone", false, t0);
    assert_eq!(d.on_event("phone", true, t0 + s(5)), Some("phone"));
    assert!(d.is_empty());
    assert!(
        d.poll(t0 + s(60)).is_empty(),
        "the delayed push was folded into the new one"
    );
}

#[test]
fn devices_are_independent() {
    let t0 = Instant::now();
    let mut d = Debouncer::default();
    d.on_event("phone", false, t0);
    d.on_event("tablet", false, t0 + s(10));
    assert_eq!(d.on_event("phone", true, t0 + s(11)), Some("phone"));
    assert_eq!(d.poll(t0 + s(40)), ["tablet"]);
    d.on_event("phone", false, t0 + s(50));
    d.cancel(&"phone");
    assert!(d.poll(t0 + s(100)).is_empty());
}

#[test]
fn event_names() {
    assert!(is_message_new(&["FlagsSet", "MessageNew"]));
    assert!(!is_message_new(&["MessageRead", "messagenew"]));
    assert!(!is_message_new::<&str>(&[]));
}

proptest! {
    /// Against a model: each key is due exactly `delay` after its last non-new event,
    /// unless new mail came after it; memory stays bounded.
    #[test]
    fn matches_the_model(events in proptest::collection::vec((0u8..5, any::<bool>(), 0u64..20), 1..300)) {
        let t0 = Instant::now();
        let mut d = Debouncer::new(s(30)).unwrap();
        let mut model: std::collections::HashMap<u8, Instant> = Default::default();
        let mut now = t0;
        for (key, new, gap) in events {
            now += s(gap);
            let mut due = d.poll(now);
            due.sort();
            let mut expected: Vec<u8> = model.iter().filter(|(_, t)| **t <= now).map(|(k, _)| *k).collect();
            expected.sort();
            model.retain(|_, t| *t > now);
            prop_assert_eq!(due, expected);
            let out = d.on_event(key, new, now);
            if new {
                prop_assert_eq!(out, Some(key));
                model.remove(&key);
            } else {
                prop_assert_eq!(out, None);
                model.insert(key, now + s(30));
            }
            prop_assert_eq!(d.len(), model.len());
            prop_assert_eq!(d.next_deadline(), model.values().min().copied());
        }
    }
}
