//! Web Push encryption and decryption, VAPID headers and whole requests, ours beside
//! each provider's primitive floor and other Rust crates (feature `compare`), in one
//! criterion run.
//!
//! ```text
//! cargo bench -p mailpush-benches --features compare --bench webpush
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailpush_benches::vapid::{VapidFixture, request_ops, vapid_ops};
use mailpush_benches::{Fixture, decrypt_ops, encrypt_ops};

fn encryption(c: &mut Criterion) {
    for len in [100usize, 3000] {
        let fixture = Fixture::new(len);
        let mut group = c.benchmark_group(format!("encrypt/{len}B"));
        group.throughput(Throughput::Elements(1));
        for (name, op) in encrypt_ops(&fixture) {
            group.bench_function(name, |b| b.iter(|| black_box(op())));
        }
        group.finish();
    }
    let fixture = Fixture::new(3000);
    let mut group = c.benchmark_group("decrypt/3000B");
    group.throughput(Throughput::Elements(1));
    for (name, op) in decrypt_ops(&fixture) {
        group.bench_function(name, |b| b.iter(|| black_box(op())));
    }
    group.finish();
}

fn vapid(c: &mut Criterion) {
    let fixture = VapidFixture::new(100);
    let mut group = c.benchmark_group("vapid-header");
    group.throughput(Throughput::Elements(1));
    for (name, op) in vapid_ops(&fixture) {
        group.bench_function(name, |b| b.iter(|| black_box(op())));
    }
    group.finish();
    for len in [100usize, 3000] {
        let fixture = VapidFixture::new(len);
        let mut group = c.benchmark_group(format!("request/{len}B"));
        group.throughput(Throughput::Elements(1));
        for (name, op) in request_ops(&fixture) {
            group.bench_function(name, |b| b.iter(|| black_box(op())));
        }
        group.finish();
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
