//! XAPPLEPUSHSERVICE: parsing a v2 and a v1 registration (beside imap-codec with
//! feature `compare`), and the debouncer with 100,000
//! registrations under a burst of 10,000 events.
//!
//! ```text
//! cargo bench -p mailpush-benches --bench xaps
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use mailpush_benches::bench_group;
use mailpush_benches::xaps::registration_ops;
use xaps_proto::Debouncer;

fn registration(c: &mut Criterion) {
    bench_group(c, "xaps/registration decode", &registration_ops());
}

fn debouncer(c: &mut Criterion) {
    const REGISTRATIONS: u32 = 100_000;
    const BURST: u32 = 10_000;
    let mut group = c.benchmark_group("xaps/debouncer");
    group.throughput(Throughput::Elements(u64::from(BURST)));
    group.bench_function("burst of 10,000 events over 100,000 registrations", |b| {
        // Every registration has a push pending; the burst reschedules, pushes new mail
        // and polls, as a daemon would.
        let t0 = Instant::now();
        let mut d = Debouncer::new(Duration::from_secs(30)).unwrap();
        for key in 0..REGISTRATIONS {
            d.on_event(key, false, t0);
        }
        let mut now = t0;
        let mut next = 0u32;
        b.iter(|| {
            for i in 0..BURST {
                now += Duration::from_micros(1);
                next = (next.wrapping_mul(1_103_515_245).wrapping_add(12_345)) % REGISTRATIONS;
                black_box(d.on_event(next, i % 10 == 0, now));
            }
            black_box(d.poll(now).len())
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(3));
    targets = registration, debouncer
}
criterion_main!(benches);
