//! Verification throughput with 1 thread and with 2 threads on one shared keyring (target:
//! at least 1.8 x).
//!
//! `cargo bench -p batv-core --bench threads [-- ROUNDS]`
//!
//! Each round times a fixed number of `verify_at` calls on one thread, then the same number on
//! each of 2 threads at once (scoped threads borrowing one `Keyring`). Rounds alternate the
//! order so that load from other processes hits both sides alike, and the medians are printed.
//!
//! On a shared machine a second thread may find no free core: wall-clock throughput then says
//! more about the neighbours than about the code. So each worker also reads its own CPU time
//! and run-queue wait from `/proc/thread-self/schedstat` (Linux): throughput per CPU-second
//! shows whether two threads slow each other down (contention), and the wait share shows how
//! much of the round the scheduler kept the threads off a core (disturbance).
//!
//! The last line is machine-readable for `bench/compare`:
//! `RESULT ratio=… ops1=… ops2=… cpu_ratio=… wait1=… wait2=…`

use batv_core::Keyring;
use std::hint::black_box;
use std::time::{Duration, Instant};

const NOW: i64 = 1_795_700_000;
const KEYS: &str = "key 1 hmac-sha256 base64:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n";
/// Calls per thread per round: long enough (tens of ms) to dwarf thread start-up.
const CALLS: u32 = 400_000;

/// This thread's CPU time and run-queue wait so far, in ns (zeros where unavailable).
fn schedstat() -> (u64, u64) {
    let text = std::fs::read_to_string("/proc/thread-self/schedstat").unwrap_or_default();
    let mut f = text
        .split_whitespace()
        .map(|w| w.parse::<u64>().unwrap_or(0));
    (f.next().unwrap_or(0), f.next().unwrap_or(0))
}

struct Worker {
    ok: usize,
    cpu_ns: u64,
    wait_ns: u64,
}

fn work(keys: &Keyring, tagged: &[String]) -> Worker {
    let (cpu0, wait0) = schedstat();
    let mut ok = 0usize;
    for i in 0..CALLS {
        let a = &tagged[i as usize % tagged.len()];
        ok += usize::from(keys.verify_at(black_box(a), black_box(NOW)).is_ok());
    }
    let (cpu1, wait1) = schedstat();
    Worker {
        ok,
        cpu_ns: cpu1 - cpu0,
        wait_ns: wait1 - wait0,
    }
}

struct Round {
    wall: Duration,
    cpu_ns: u64,
    wait_ns: u64,
}

fn timed(keys: &Keyring, tagged: &[String], threads: usize) -> Round {
    let t = Instant::now();
    let workers: Vec<Worker> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..threads)
            .map(|_| s.spawn(|| work(keys, tagged)))
            .collect();
        handles
            .into_iter()
            .map(|h| h.join().expect("worker thread"))
            .collect()
    });
    let wall = t.elapsed();
    let total: usize = workers.iter().map(|w| w.ok).sum();
    assert_eq!(total, threads * CALLS as usize, "every tag verifies");
    Round {
        wall,
        cpu_ns: workers.iter().map(|w| w.cpu_ns).sum(),
        wait_ns: workers.iter().map(|w| w.wait_ns).sum(),
    }
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
        })
        .collect();
    // Warm up caches, the CPU feature check and the thread machinery.
    timed(&keys, &tagged, 1);
    timed(&keys, &tagged, 2);

    let calls = f64::from(CALLS);
    let (mut wall1, mut wall2, mut cpu1, mut cpu2, mut wait1, mut wait2) =
        (vec![], vec![], vec![], vec![], vec![], vec![]);
    for r in 0..rounds {
        // Alternate the order each round.
        let (a, b) = if r % 2 == 0 {
            let a = timed(&keys, &tagged, 1);
            (a, timed(&keys, &tagged, 2))
        } else {
            let b = timed(&keys, &tagged, 2);
            (timed(&keys, &tagged, 1), b)
        };
        wall1.push(calls / a.wall.as_secs_f64());
        wall2.push(2.0 * calls / b.wall.as_secs_f64());
        // Calls per CPU-second (all threads' CPU time together): the same for 1 and 2 threads
        // when they do not slow each other down.
        cpu1.push(calls / (a.cpu_ns.max(1) as f64 / 1e9));
        cpu2.push(2.0 * calls / (b.cpu_ns.max(1) as f64 / 1e9));
        // Run-queue wait as a share of the threads' wall time.
        wait1.push(a.wait_ns as f64 / (a.wall.as_nanos() as f64));
        wait2.push(b.wait_ns as f64 / (2.0 * b.wall.as_nanos() as f64));
    }
    let (m1, m2) = (median(wall1), median(wall2));
    let (c1, c2) = (median(cpu1), median(cpu2));
    let (w1, w2) = (median(wait1), median(wait2));
    println!("verify_at, {rounds} rounds of {CALLS} calls per thread (medians):");
    println!("  1 thread : {m1:>12.0} calls/s   {c1:>12.0} calls per CPU-second   run-queue wait {:>5.1} %", 100.0 * w1);
    println!("  2 threads: {m2:>12.0} calls/s   {:>12.0} calls per CPU-second   run-queue wait {:>5.1} %", c2, 100.0 * w2);
    println!(
        "  throughput ratio 2/1: {:.2}   per-CPU-second ratio: {:.2}",
        m2 / m1,
        c2 / c1
    );
    println!(
        "RESULT ratio={:.3} ops1={m1:.0} ops2={m2:.0} cpu_ratio={:.3} wait1={w1:.3} wait2={w2:.3}",
        m2 / m1,
        c2 / c1
    );
}
