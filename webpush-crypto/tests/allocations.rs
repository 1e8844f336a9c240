//! Heap allocations per message, counted by a global allocator. Encryption allocates the
//! body once, at its exact size; decryption allocates the plaintext buffer once; the
//! aws-lc-rs provider adds two for parsing the peer's point.
//!
//! Only Rust-side allocations are visible here: aws-lc's C code allocates with `malloc`.

use rand_chacha::ChaCha20Rng;
use rand_chacha::rand_core::SeedableRng;
use webpush_crypto::{Encryptor, Provider, UaKeys, decrypt_with};

#[global_allocator]
static ALLOC: dhat::Alloc = dhat::Alloc;

fn count<T>(f: impl FnOnce() -> T) -> (T, u64) {
    let before = dhat::HeapStats::get().total_blocks;
    let out = f();
    (out, dhat::HeapStats::get().total_blocks - before)
}

/// The body. aws-lc-rs also allocates twice per ECDH, to parse the peer's point.
fn max_encrypt(provider: Provider) -> u64 {
    match provider {
        Provider::RustCrypto => 1,
        _ => 3,
    }
}

/// The plaintext buffer, plus aws-lc-rs's two for the point.
fn max_decrypt(provider: Provider) -> u64 {
    max_encrypt(provider)
}

// One test function: dhat allows one profiler per process.
#[test]
fn at_most_three_allocations_per_message() {
    let _profiler = dhat::Profiler::builder().testing().build();
    let mut rng = ChaCha20Rng::seed_from_u64(7);
    let ua = UaKeys::generate(&mut rng).unwrap();
    let keys = ua.subscription_keys();
    for &provider in Provider::all() {
        let enc = Encryptor::new().with_provider(provider);
        for len in [0usize, 100, 3000, 3993] {
            let plaintext = vec![0x61u8; len];
            let (body, allocs) = count(|| enc.encrypt(&keys, &plaintext, &mut rng).unwrap());
            assert!(
                allocs <= max_encrypt(provider),
                "{provider:?} encrypt {len}: {allocs}"
            );
            assert_eq!(
                body.capacity(),
                body.len(),
                "the body is allocated at its exact size"
            );
            let (out, allocs) = count(|| decrypt_with(provider, &ua, &body).unwrap());
            assert!(
                allocs <= max_decrypt(provider),
                "{provider:?} decrypt {len}: {allocs}"
            );
            assert_eq!(out, plaintext);
        }
    }
}
