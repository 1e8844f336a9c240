//! The small RFC 8030 / RFC 8292 value parsers (endpoint, origin, subject, topic,
//! urgency, Retry-After) on arbitrary text: never panic; accepted values re-parse to
//! themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use webpush_crypto::{Endpoint, Origin, RetryAfter, Subject, Topic, Urgency};

fuzz_target!(|text: &str| {
    if let Ok(endpoint) = Endpoint::new(text) {
        assert_eq!(
            Origin::new(endpoint.origin().as_str()).ok().as_ref(),
            Some(endpoint.origin())
        );
    }
    if let Ok(origin) = Origin::new(text) {
        assert_eq!(Origin::new(origin.as_str()).ok(), Some(origin));
    }
    if let Ok(subject) = Subject::new(text) {
        assert_eq!(subject.as_str(), text);
    }
    if let Ok(topic) = Topic::new(text) {
        assert!(topic.as_str().len() <= 32);
    }
    if let Ok(urgency) = text.parse::<Urgency>() {
        assert_eq!(urgency.as_str().parse::<Urgency>().ok(), Some(urgency));
    }
    let _ = RetryAfter::parse(text);
});
