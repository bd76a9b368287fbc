//! The core's hot paths against the limit of two SHA-256 compressions, in one criterion run.
//!
//! `cargo bench -p batv-core --bench core` (add `-- --warm-up-time 1 --measurement-time 3` for a
//! quicker run). `bench/compare` reads the medians from `target/criterion/` and writes the
//! ratios to `BENCHMARKS.md`.
//!
//! - `limit/two_compressions`: the SHA-256 of 64 octets, exactly two block compressions: what an
//!   HMAC of a short message costs at least once the key's inner and outer states are prepared.
//! - `sign`, `verify_valid`, `verify_untagged`, `check_bounce` (a bounce to a tagged recipient,
//!   the MX's accept path) and `check_joe_job` (a bounce to an untagged recipient, the reject
//!   path), each for a short address and a 200-octet one, with an `hmac-sha256` key.
//! - `sha1/…`: the same for an `hmac-sha1` key (Exim-compatible), short address only.

use batv_core::{Keyring, Policy, Signed, SIGNED_MAX};
use criterion::{criterion_group, criterion_main, Criterion};
use std::hint::black_box;

/// 2026-11-26 12:53 UTC.
const NOW: i64 = 1_795_700_000;
const SHORT: &str = "user01@example.com";

const SHA256_KEYS: &str = "key 1 hmac-sha256 base64:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n";
const SHA1_KEYS: &str = "key 0 hmac-sha1 text:secret shared with exim\n";

/// A 200-octet address: a long local part at example.com.
fn long_address() -> String {
    let domain = "@example.com";
    let a = format!("{}{domain}", "x".repeat(200 - domain.len()));
    assert_eq!(a.len(), 200);
    a
}

fn limit(c: &mut Criterion) {
    use sha2::Digest as _;
    let block = [0x36u8; 64];
    c.bench_function("limit/two_compressions", |b| b.iter(|| sha2::Sha256::digest(black_box(&block))));
}

fn scheme(c: &mut Criterion, prefix: &str, keys: &str, long: bool) {
    let keys = Keyring::parse(keys).expect("bench keyring parses");
    let policy = Policy::default();
    let long_addr = long_address();
    let mut sizes = vec![("short", SHORT)];
    if long {
        sizes.push(("200", long_addr.as_str()));
    }
    for (size, addr) in sizes {
        let tagged = keys
            .sign_at(addr, NOW)
            .expect("bench address signs")
            ;
        assert!(keys.verify_at(&tagged, NOW).is_ok());
        let mut buf = [0u8; SIGNED_MAX];

        c.bench_function(&format!("{prefix}sign/{size}"), |b| {
            b.iter(
                || match keys.sign_into(black_box(addr), black_box(NOW), &mut buf) {
                    Ok(Signed::Written(n)) => n,
                    other => panic!("sign failed: {other:?}"),
                },
            )
        });
        c.bench_function(&format!("{prefix}verify_valid/{size}"), |b| {
            b.iter(|| {
                keys.verify_at(black_box(&tagged), black_box(NOW))
                    .map(|o| o.len())
            })
        });
        c.bench_function(&format!("{prefix}verify_untagged/{size}"), |b| {
            b.iter(|| {
                keys.verify_at(black_box(addr), black_box(NOW))
                    .map(|o| o.len())
            })
        });
        c.bench_function(&format!("{prefix}check_bounce/{size}"), |b| {
            b.iter(|| policy.check(&keys, black_box(""), black_box(&tagged), black_box(NOW)))
        });
        c.bench_function(&format!("{prefix}check_joe_job/{size}"), |b| {
            b.iter(|| policy.check(&keys, black_box(""), black_box(addr), black_box(NOW)))
        });
    }
}

fn sha256(c: &mut Criterion) {
    scheme(c, "", SHA256_KEYS, true);
}

fn sha1(c: &mut Criterion) {
    scheme(c, "sha1/", SHA1_KEYS, false);
}

criterion_group!(benches, limit, sha256, sha1);
criterion_main!(benches);
