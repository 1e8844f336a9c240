//! IMAP WEBPUSH: decode and encode every command and response, beside `imap-codec`
//! decoding a standard command of similar length (feature `compare`); build and
//! encrypt a new-mail push, and fan one event out to 1,000 subscriptions.
//!
//! ```text
//! cargo bench -p mailpush-benches --features compare --bench imap
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imap_webpush_proto::{Command, Config, Response};
use mailpush_benches::bench_group;
use mailpush_benches::imap::{COMMANDS, RESPONSES, decode_ops};
use mailpush_benches::push::{PushFixture, push_ops};
use webpush_crypto::Provider;

fn grammar(c: &mut Criterion) {
    let mut group = c.benchmark_group("imap/command");
    for (name, line) in COMMANDS {
        group.throughput(Throughput::Bytes(line.len() as u64));
        group.bench_function(format!("decode {name}"), |b| {
            b.iter(|| black_box(Command::decode(black_box(line), &Config::SERVER).is_ok()))
        });
        let (_, command) = Command::decode(line, &Config::SERVER).expect("decode");
        let mut out = Vec::with_capacity(256);
        group.bench_function(format!("encode {name}"), |b| {
            b.iter(|| {
                out.clear();
                command.encode(&mut out).expect("encode");
                black_box(out.len())
            })
        });
    }
    group.finish();
    let mut group = c.benchmark_group("imap/response");
    for (name, line) in RESPONSES {
        group.throughput(Throughput::Bytes(line.len() as u64));
        group.bench_function(format!("decode {name}"), |b| {
            b.iter(|| black_box(Response::decode(black_box(line), &Config::CLIENT).is_ok()))
        });
        let (_, response) = Response::decode(line, &Config::CLIENT).expect("decode");
        let mut out = Vec::with_capacity(256);
        group.bench_function(format!("encode {name}"), |b| {
            b.iter(|| {
                out.clear();
                response.encode(&mut out).expect("encode");
                black_box(out.len())
            })
        });
    }
    group.finish();
    bench_group(c, "imap/vs-imap-codec", &decode_ops());
}

fn push(c: &mut Criterion) {
    let fixture = PushFixture::default();
    bench_group(c, "push/new-mail", &push_ops(&fixture));
    let mut group = c.benchmark_group("push/fan-out");
    group.sample_size(10);
    group.throughput(Throughput::Elements(1000));
    for provider in [Provider::AwsLcRs, Provider::RustCrypto] {
        group.bench_function(format!("1000 subscriptions/{}", provider.name()), |b| {
            b.iter(|| black_box(fixture.fan_out(provider, 1000)))
        });
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = grammar, push
}
criterion_main!(benches);
