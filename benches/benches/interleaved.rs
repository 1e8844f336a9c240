//! Ratios that survive a noisy, drifting machine: every operation runs for a short slice
//! in each round, the starting operation rotates, ratios to a reference are taken within
//! each round, and the median over rounds is reported.
//!
//! ```text
//! cargo bench -p mailpush-benches --features compare --bench interleaved [-- ROUNDS] [SECTION...]
//! ```

use std::hint::black_box;
use std::time::{Duration, Instant};

use mailpush_benches::apns::{ApnsFixture, apns_ops};
use mailpush_benches::imap::decode_ops as imap_decode_ops;
use mailpush_benches::push::{PushFixture, push_ops};
use mailpush_benches::vapid::{VapidFixture, request_ops, vapid_ops};
use mailpush_benches::xaps::registration_ops;
use mailpush_benches::{Fixture, Op, decrypt_ops, encrypt_ops, p256_ops};

const SLICE: Duration = Duration::from_millis(20);

/// Microseconds per call of `op`, measured over one slice.
fn time_slice(op: &dyn Fn() -> Vec<u8>) -> f64 {
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < SLICE {
        black_box(op());
        calls += 1;
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(calls)
}

/// Microseconds per call of `op` over one slice, each call spending a key that `make`
/// made before the slice began.
fn time_made_ahead<K>(make: impl Fn() -> K, op: impl Fn(K) -> Vec<u8>) -> f64 {
    time_spending(2000, make, op)
}

/// [`time_made_ahead`] with `count` keys made; the slice ends early if it spends them
/// all, the time per call over the calls made.
fn time_spending<K>(count: usize, make: impl Fn() -> K, op: impl Fn(K) -> Vec<u8>) -> f64 {
    let mut made: Vec<K> = (0..count).map(|_| make()).collect();
    let start = Instant::now();
    let mut calls = 0u32;
    while start.elapsed() < SLICE {
        let Some(key) = made.pop() else { break };
        black_box(op(key));
        calls += 1;
    }
    start.elapsed().as_secs_f64() * 1e6 / f64::from(calls.max(1))
}

fn median(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// Whether the section `title` runs: words after `--` that are not numbers select
/// sections by title; none selects every one.
fn selected(title: &str) -> bool {
    let filters: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--") && a.parse::<usize>().is_err())
        .collect();
    filters.is_empty() || filters.iter().any(|f| title.contains(f.as_str()))
}

fn compare(title: &str, ops: &[Op<'_>], rounds: usize) {
    if !selected(title) {
        return;
    }
    let n = ops.len();
    let mut times = vec![Vec::with_capacity(rounds); n];
    for round in 0..rounds {
        for k in 0..n {
            let i = (round + k) % n;
            times[i].push(time_slice(&*ops[i].1));
        }
    }
    println!("\n{title} ({rounds} rounds; ratio = median of per-round ratios)");
    // Ratios are to the first two operations: ours on each provider.
    println!(
        "{:<26} {:>10} {:>12} {:>26} {:>26}",
        "operation",
        "median µs",
        "per s/core",
        format!("÷ {}", ops[0].0),
        format!("÷ {}", ops[1].0)
    );
    let ratios = |i: usize, reference: usize| {
        let mut r: Vec<f64> = (0..rounds)
            .map(|k| times[i][k] / times[reference][k])
            .collect();
        median(&mut r)
    };
    for i in 0..n {
        let us = median(&mut times[i].clone());
        println!(
            "{:<26} {:>10.2} {:>12.0} {:>26.3} {:>26.3}",
            ops[i].0,
            us,
            1e6 / us,
            ratios(i, 0),
            ratios(i, 1)
        );
    }
}

/// Encryption with an ephemeral key made ahead, against the per-message floor of each
/// provider and against that floor with its own key made ahead, in the same rounds; and
/// with a key agreed ahead with the subscription's keys, against the same floor:
/// per round, for each provider, the keys for one slice are made first (not timed),
/// then the slice spends them; the floors run their own slices beside. Ratios are
/// medians of per-round ratios.
fn compare_prepared(f: &Fixture, rounds: usize) {
    let title = "encrypt 3000 B, key made ahead";
    if !selected(title) {
        return;
    }
    let providers = [
        (webpush_crypto::Provider::AwsLcRs, "aws-lc-rs"),
        (webpush_crypto::Provider::RustCrypto, "rustcrypto"),
    ];
    let keys = f.ua.subscription_keys();
    let mut ratios = vec![Vec::with_capacity(rounds); providers.len()];
    let mut prepared_us = vec![Vec::with_capacity(rounds); providers.len()];
    let mut ahead_ratios = vec![Vec::with_capacity(rounds); providers.len()];
    let mut floor_ahead_us = vec![Vec::with_capacity(rounds); providers.len()];
    let mut agreed_ratios = vec![Vec::with_capacity(rounds); providers.len()];
    let mut agreed_us = vec![Vec::with_capacity(rounds); providers.len()];
    for _ in 0..rounds {
        for (i, (provider, _)) in providers.iter().enumerate() {
            let encryptor = webpush_crypto::Encryptor::new().with_provider(*provider);
            let make: fn() -> webpush_crypto::EphemeralKey = match provider {
                webpush_crypto::Provider::AwsLcRs => || {
                    webpush_crypto::EphemeralKey::generate(
                        webpush_crypto::Provider::AwsLcRs,
                        &mut rand_core::OsRng,
                    )
                    .expect("key")
                },
                _ => || {
                    webpush_crypto::EphemeralKey::generate(
                        webpush_crypto::Provider::RustCrypto,
                        &mut rand_core::OsRng,
                    )
                    .expect("key")
                },
            };
            let us = time_made_ahead(make, |key| {
                encryptor
                    .encrypt_prepared(&keys, &f.plaintext, key, &mut rand_core::OsRng)
                    .expect("encryption")
            });
            let (floor, floor_ahead) = match provider {
                webpush_crypto::Provider::AwsLcRs => (
                    time_slice(&|| f.floor_aws_lc_encrypt()),
                    time_made_ahead(mailpush_benches::floor_aws_lc_key, |k| {
                        f.floor_aws_lc_encrypt_with(k)
                    }),
                ),
                _ => (
                    time_slice(&|| f.floor_rustcrypto_encrypt()),
                    time_made_ahead(mailpush_benches::floor_rustcrypto_key, |k| {
                        f.floor_rustcrypto_encrypt_with(k)
                    }),
                ),
            };
            // Agreed ahead with the subscription's keys: HKDF and AES-GCM alone, under
            // 3 µs, so a slice may spend all 6,000 before its end; the time per call is
            // over the calls made.
            let agreed = time_spending(
                6000,
                || {
                    webpush_crypto::Agreement::generate(*provider, &keys, &mut rand_core::OsRng)
                        .expect("agreement")
                },
                |agreement| {
                    encryptor
                        .encrypt_agreed(&f.plaintext, agreement, &mut rand_core::OsRng)
                        .expect("encryption")
                },
            );
            agreed_us[i].push(agreed);
            agreed_ratios[i].push(agreed / floor);
            prepared_us[i].push(us);
            ratios[i].push(us / floor);
            ahead_ratios[i].push(us / floor_ahead);
            floor_ahead_us[i].push(floor_ahead);
        }
    }
    println!("\n{title} ({rounds} rounds; ratio = median of per-round ratios)");
    for (i, (_, name)) in providers.iter().enumerate() {
        println!(
            "ours/{name}, key made ahead: {:>8.2} µs   ÷ floor/{name} {:.3}   ÷ floor/{name} with its key made ahead ({:.2} µs) {:.3}",
            median(&mut prepared_us[i]),
            median(&mut ratios[i]),
            median(&mut floor_ahead_us[i]),
            median(&mut ahead_ratios[i])
        );
    }
    for (i, (_, name)) in providers.iter().enumerate() {
        println!(
            "ours/{name}, key agreed ahead: {:>8.2} µs   ÷ floor/{name} {:.3}",
            median(&mut agreed_us[i]),
            median(&mut agreed_ratios[i]),
        );
    }
}

fn main() {
    // `cargo bench` passes `--bench`; a bare number sets the rounds.
    let rounds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse().ok())
        .unwrap_or(30);
    for len in [100usize, 3000] {
        let f = Fixture::new(len);
        compare(&format!("encrypt {len} B"), &encrypt_ops(&f), rounds);
    }
    let f = Fixture::new(3000);
    compare_prepared(&f, rounds);
    compare("decrypt 3000 B", &decrypt_ops(&f), rounds);
    compare("P-256 multiplications", &p256_ops(&f), rounds);
    let v = VapidFixture::new(100);
    compare("VAPID header per message", &vapid_ops(&v), rounds);
    for len in [100usize, 3000] {
        let v = VapidFixture::new(len);
        compare(
            &format!("whole request, {len} B message"),
            &request_ops(&v),
            rounds,
        );
    }
    compare("IMAP command decode", &imap_decode_ops(), rounds);
    let p = PushFixture::default();
    compare("new-mail push", &push_ops(&p), rounds);
    compare("XAPPLEPUSHSERVICE decode", &registration_ops(), rounds);
    let a = ApnsFixture::default();
    compare("APNs mail push request", &apns_ops(&a), rounds);
}
