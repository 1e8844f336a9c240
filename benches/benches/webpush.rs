//! Web Push encryption and decryption, VAPID headers and whole requests, ours beside
//! each provider's primitive floor and other Rust crates (feature `compare`), in one
//! criterion run.
//!
//! ```text
//! cargo bench -p mailpush-benches --features compare --bench webpush
//! ```

use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};
use mailpush_benches::vapid::{VapidFixture, request_ops, vapid_ops};
use mailpush_benches::{Fixture, bench_group, decrypt_ops, encrypt_ops};

fn encryption(c: &mut Criterion) {
    for len in [100usize, 3000] {
        let fixture = Fixture::new(len);
        bench_group(c, &format!("encrypt/{len}B"), &encrypt_ops(&fixture));
    }
    let fixture = Fixture::new(3000);
    bench_group(c, "decrypt/3000B", &decrypt_ops(&fixture));
}

fn vapid(c: &mut Criterion) {
    let fixture = VapidFixture::new(100);
    bench_group(c, "vapid-header", &vapid_ops(&fixture));
    for len in [100usize, 3000] {
        let fixture = VapidFixture::new(len);
        bench_group(c, &format!("request/{len}B"), &request_ops(&fixture));
    }
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = encryption, vapid
}
criterion_main!(benches);
