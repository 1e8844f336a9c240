//! APNs certificates (PEM or DER) from arbitrary bytes: never panic; a topic that is
//! read is a valid topic.
#![no_main]

use apns_proto::{CertificateInfo, Topic};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|bytes: &[u8]| {
    if let Ok(info) = CertificateInfo::from_pem_or_der(bytes) {
        assert_eq!(
            Topic::try_from(info.topic.as_str()).as_ref(),
            Ok(&info.topic)
        );
    }
});
