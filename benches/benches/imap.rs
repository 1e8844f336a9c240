//! IMAP WEBPUSH grammar: decode and encode every command and response, beside
//! `imap-codec` decoding a standard command of similar length (feature `compare`).
//!
//! ```text
//! cargo bench -p mailpush-benches --features compare --bench imap
//! ```

use std::hint::black_box;
use std::time::Duration;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use imap_webpush_proto::{Command, Config, Response};
use mailpush_benches::imap::{COMMANDS, RESPONSES, decode_ops};

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
    let mut group = c.benchmark_group("imap/vs-imap-codec");
    for (name, op) in decode_ops() {
        group.bench_function(name, |b| b.iter(|| black_box(op())));
    }
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default()
        .sample_size(30)
        .warm_up_time(Duration::from_secs(1))
        .measurement_time(Duration::from_secs(2));
    targets = grammar
}
criterion_main!(benches);
