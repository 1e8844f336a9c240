//! xapsd `/register` and `/notify` bodies from arbitrary bytes: never panic; an
//! accepted body is written and read back to the same value.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaps_proto::daemon::{Notify, Register};

fuzz_target!(|body: &[u8]| {
    if let Ok(register) = Register::from_json(body) {
        let again = Register::from_json(register.to_json().expect("serializes").as_bytes())
            .map(|r| r.mailboxes);
        assert_eq!(again.ok(), Some(register.mailboxes));
    }
    if let Ok(notify) = Notify::from_json(body) {
        assert_eq!(
            Notify::from_json(notify.to_json().expect("serializes").as_bytes()).ok(),
            Some(notify)
        );
    }
});
