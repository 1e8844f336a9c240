//! xapsd's JSON database from arbitrary bytes: never panic; what is imported exports
//! and imports again to the same registrations.
#![no_main]

use libfuzzer_sys::fuzz_target;
use xaps_proto::registry::Registry;

fuzz_target!(|input: &[u8]| {
    if let Ok((registry, _)) = Registry::from_xapsd_json(input) {
        let json = registry.to_xapsd_json().expect("serializes");
        let (again, rejected) = Registry::from_xapsd_json(json.as_bytes()).expect("export reads");
        assert!(rejected.is_empty());
        assert!(registry.iter().eq(again.iter()));
    }
});
