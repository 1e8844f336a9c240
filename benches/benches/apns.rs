//! APNs: iOS Mail's push request with a cached provider token, our fast path and our
//! general path beside a hand-written `http::Request::builder` floor.
//!
//! ```text
//! cargo bench -p mailpush-benches --bench apns
//! ```

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mailpush_benches::apns::{ApnsFixture, apns_ops};
use mailpush_benches::bench_group;

fn request(c: &mut Criterion) {
    let fixture = ApnsFixture::default();
    bench_group(c, "apns/mail push request", &apns_ops(&fixture));
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = request
}
criterion_main!(benches);
