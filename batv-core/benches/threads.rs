//! Verification throughput with 1 thread and with 2 threads on one shared keyring (issue 6:
//! target at least 1.8 x).
//!
//! `cargo bench -p batv-core --bench threads [-- ROUNDS]`
//!
//! Each round times a fixed number of `verify_at` calls on one thread, then the same number on
//! each of 2 threads at once (scoped threads borrowing one `Keyring`). Rounds alternate so that
//! load from other processes hits both sides alike; the medians of the rounds are printed, and
//! the last line is machine-readable for `bench/compare`:
//!
//! `RESULT threads=1 ops_per_s=… threads=2 ops_per_s=… ratio=…`

use batv_core::Keyring;
use std::hint::black_box;
use std::time::{Duration, Instant};

const NOW: i64 = 1_795_700_000;
const KEYS: &str = "key 1 hmac-sha256 base64:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n";
/// Calls per thread per round: long enough (tens of ms) to dwarf thread start-up.
const CALLS: u32 = 400_000;

fn work(keys: &Keyring, tagged: &[String]) -> usize {
    let mut ok = 0usize;
    for i in 0..CALLS {
        let a = &tagged[i as usize % tagged.len()];
        ok += usize::from(keys.verify_at(black_box(a), black_box(NOW)).is_ok());
    }
    ok
}

fn timed(keys: &Keyring, tagged: &[String], threads: usize) -> Duration {
    let t = Instant::now();
    let total: usize = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| work(keys, tagged)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .sum()
    });
    let d = t.elapsed();
    assert_eq!(total, threads * CALLS as usize, "every tag verifies");
    d
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    // `cargo bench` passes `--bench`; the first number among the arguments is the round count.
    let rounds = std::env::args()
        .skip(1)
        .find_map(|a| a.parse::<usize>().ok())
        .unwrap_or(15);
    let keys = Keyring::parse(KEYS).expect("bench keyring parses");
    let tagged: Vec<String> = (0..64)
        .map(|i| {
            keys.sign_at(&format!("user{i:02}@example.com"), NOW)
                .expect("signs")
                .into_owned()
        })
        .collect();
    // Warm up caches, the CPU feature check and the thread machinery.
    timed(&keys, &tagged, 1);
    timed(&keys, &tagged, 2);

    let (mut one, mut two) = (Vec::new(), Vec::new());
    for r in 0..rounds {
        // Alternate the order each round.
        let (a, b) = if r % 2 == 0 {
            let a = timed(&keys, &tagged, 1);
            (a, timed(&keys, &tagged, 2))
        } else {
            let b = timed(&keys, &tagged, 2);
            (timed(&keys, &tagged, 1), b)
        };
        one.push(f64::from(CALLS) / a.as_secs_f64());
        two.push(2.0 * f64::from(CALLS) / b.as_secs_f64());
    }
    let (m1, m2) = (median(one), median(two));
    println!("verify_at, {rounds} rounds of {CALLS} calls per thread (median ops/s):");
    println!("  1 thread : {m1:>14.0}");
    println!("  2 threads: {m2:>14.0}");
    println!("  ratio    : {:.2}", m2 / m1);
    println!(
        "RESULT threads=1 ops_per_s={m1:.0} threads=2 ops_per_s={m2:.0} ratio={:.3}",
        m2 / m1
    );
}
