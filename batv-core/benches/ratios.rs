//! The core's target ratios against two SHA-256 compressions, measured interleaved
//! (`batv_test_support::interleaved`, which also gives the output format `bench/compare` reads).
//!
//! `cargo bench -p batv-core --bench ratios [-- ROUNDS]`

use batv_core::{Keyring, Policy, Signed, SIGNED_MAX};
use batv_test_support::{interleaved, two_compressions, Op};
use hmac::Mac as _;
use std::hint::black_box;

const NOW: i64 = 1_795_700_000;
const SHA256_KEYS: &str = "key 1 hmac-sha256 base64:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n";
const SHA1_KEYS: &str = "key 0 hmac-sha1 text:secret shared with exim\n";
/// Calls per batch: a batch lasts tens to hundreds of microseconds.
const BATCH: u32 = 1000;

fn main() {
    let rounds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(600);
    let k256 = Keyring::parse(SHA256_KEYS).expect("keyring parses");
    let k1 = Keyring::parse(SHA1_KEYS).expect("keyring parses");
    let policy = Policy::default();
    let short = "user01@example.com";
    let long = format!("{}@example.com", "x".repeat(188));
    let t_short = k256.sign_at(short, NOW).expect("signs");
    let t_long = k256.sign_at(&long, NOW).expect("signs");
    let t1_short = k1.sign_at(short, NOW).expect("signs");
    let keyed = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(b"a 32-octet key for the benchmark").expect("any key length");
    let mut buf = [0u8; SIGNED_MAX];
    let mut buf1 = [0u8; SIGNED_MAX];
    let mut buf2 = [0u8; SIGNED_MAX];

    let signed = |r: Result<Signed, batv_core::SignError>| match r {
        Ok(Signed::Written(n)) => n,
        other => panic!("sign failed: {other:?}"),
    };
    let mut ops: Vec<Op> = vec![
        ("limit/two_compressions", Box::new(two_compressions)),
        (
            // The crate alone, used as the core uses it: what batv adds is the rest.
            "hmac_crate/short",
            Box::new(|| {
                let mut m = keyed.clone();
                m.update(b"1790");
                m.update(black_box(short.as_bytes()));
                usize::from(m.finalize().into_bytes()[0])
            }),
        ),
        (
            "sign/short",
            Box::new(|| signed(k256.sign_into(black_box(short), NOW, &mut buf))),
        ),
        (
            "verify_valid/short",
            Box::new(|| k256.verify_at(black_box(&t_short), NOW).map_or(0, |o| o.len())),
        ),
        (
            "verify_untagged/short",
            Box::new(|| k256.verify_at(black_box(short), NOW).map_or(1, |o| o.len())),
        ),
        (
            "sign/200",
            Box::new(|| signed(k256.sign_into(black_box(&long), NOW, &mut buf1))),
        ),
        (
            "verify_valid/200",
            Box::new(|| k256.verify_at(black_box(&t_long), NOW).map_or(0, |o| o.len())),
        ),
        (
            "check_bounce/short",
            Box::new(|| usize::from(policy.check(&k256, "", black_box(&t_short), NOW).accepted)),
        ),
        (
            "sha1/sign/short",
            Box::new(|| signed(k1.sign_into(black_box(short), NOW, &mut buf2))),
        ),
        (
            "sha1/verify_valid/short",
            Box::new(|| k1.verify_at(black_box(&t1_short), NOW).map_or(0, |o| o.len())),
        ),
    ];

    interleaved(&mut ops, rounds, BATCH);
}
