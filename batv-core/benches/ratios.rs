//! The core's target ratios, measured interleaved so that a noisy, shared machine disturbs both
//! sides of each ratio alike.
//!
//! `cargo bench -p batv-core --bench ratios [-- ROUNDS]`
//!
//! Every round times one batch of each operation back to back (in a rotating order); each batch
//! is divided by the `limit` batch of the same round, and the median of those per-round ratios
//! is the figure. `limit` is two SHA-256 compressions: the SHA-256 of a 64-octet message, which
//! compresses exactly two blocks (the message and the padding), through the public `Digest`
//! API. The last lines are machine-readable for `bench/compare`:
//! `RESULT op=<name> median_ns=<ns> ratio=<median of per-round op/limit>`

use batv_core::{Keyring, Policy, Signed, SIGNED_MAX};
use hmac::Mac as _;
use sha2::Digest as _;
use std::hint::black_box;
use std::time::Instant;

const NOW: i64 = 1_795_700_000;
const SHA256_KEYS: &str = "key 1 hmac-sha256 base64:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n";
const SHA1_KEYS: &str = "key 0 hmac-sha1 text:secret shared with exim\n";
/// Calls per batch: a batch lasts tens to hundreds of microseconds.
const BATCH: u32 = 1000;

type Op<'a> = Box<dyn FnMut() -> usize + 'a>;

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

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
    let block = [0x36u8; 64];
    let keyed = <hmac::Hmac<sha2::Sha256> as hmac::KeyInit>::new_from_slice(b"a 32-octet key for the benchmark").expect("any key length");
    let mut buf = [0u8; SIGNED_MAX];
    let mut buf1 = [0u8; SIGNED_MAX];
    let mut buf2 = [0u8; SIGNED_MAX];

    let signed = |r: Result<Signed, batv_core::SignError>| match r {
        Ok(Signed::Written(n)) => n,
        other => panic!("sign failed: {other:?}"),
    };
    let mut ops: Vec<(&str, Op)> = vec![
        (
            "limit/two_compressions",
            Box::new(|| usize::from(sha2::Sha256::digest(black_box(&block))[0])),
        ),
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

    let n = ops.len();
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); n];
    let mut sink = 0usize;
    // One warm-up round, not recorded.
    for r in 0..=rounds {
        for j in 0..n {
            let i = (j + r) % n;
            let f = &mut ops[i].1;
            let t = Instant::now();
            for _ in 0..BATCH {
                sink = sink.wrapping_add(f());
            }
            let ns = t.elapsed().as_nanos() as f64 / f64::from(BATCH);
            if r > 0 {
                times[i].push(ns);
            }
        }
    }
    black_box(sink);
    let limit = times[0].clone();
    println!("{rounds} interleaved rounds of {BATCH} calls per operation");
    println!("{:<28} {:>10} {:>8}", "operation", "median ns", "x limit");
    let mut results = Vec::new();
    for (i, (name, _)) in ops.iter().enumerate() {
        let ratio = median(times[i].iter().zip(&limit).map(|(t, l)| t / l).collect());
        let med = median(times[i].clone());
        println!("{name:<28} {med:>10.1} {ratio:>8.3}");
        results.push(format!(
            "RESULT op={name} median_ns={med:.2} ratio={ratio:.4}"
        ));
    }
    for r in results {
        println!("{r}");
    }
}
