//! Concurrency stress: 8 threads sign and verify with one keyring, got from the cached
//! auto-reloading loader (`CachedKeyring`, what the Exim functions and the milter use), while another
//! thread keeps replacing the keyring file, alternating two keyrings with different keys.
//!
//! Every keyring a thread gets must be wholly one of the two: its signature equals what that
//! keyring signs, and every verification answer is what that keyring says (the other
//! keyring's tag is `unknown-key`, a forged tag `bad-signature`). Nothing else may happen: no
//! error, no mixed or partial keyring, no panic.
//!
//! The workers run until the file has been replaced `BATV_STRESS_REPLACEMENTS` times (default
//! 400, one every half millisecond or so) and each has done at least `BATV_STRESS_OPS`
//! operations (default 4000). The figures (threads x operations, replacements, reloads seen)
//! are printed; run with `cargo test -p batv-core --test stress -- --nocapture` to see them.

use batv_core::{CachedKeyring, Keyring, Outcome};
use batv_test_support::TempDir;
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

const NOW: i64 = 1_795_700_000;
const THREADS: usize = 8;
const ADDRESS: &str = "stress.user@example.com";

const RING_A: &str = "lifetime-days 7\nkey 1 hmac-sha256 text:stress keyring A, key one\n";
const RING_B: &str =
    "lifetime-days 7\nsign-key 2\nkey 2 hmac-sha256 text:stress keyring B, key two\nkey 3 hmac-sha1 text:stress B three\n";

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Which {
    A,
    B,
}

struct Expected {
    signed_a: String,
    signed_b: String,
    forged: String,
}

impl Expected {
    fn new() -> Expected {
        let a = Keyring::parse(RING_A).unwrap();
        let b = Keyring::parse(RING_B).unwrap();
        let signed_a = a.sign_at(ADDRESS, NOW).unwrap();
        let signed_b = b.sign_at(ADDRESS, NOW).unwrap();
        // Key 1's tag with one MAC digit changed: forged under A, unknown key under B.
        let mut forged = signed_a.clone().into_bytes();
        forged[14] = if forged[14] == b'0' { b'1' } else { b'0' };
        let forged = String::from_utf8(forged).unwrap();
        assert_ne!(signed_a, signed_b);
        assert_eq!(a.status_at(&forged, NOW), Outcome::BadSignature);
        Expected { signed_a, signed_b, forged }
    }

    /// Which keyring `ring` is, judged by every answer it gives; panics if it is neither.
    fn identify(&self, ring: &Keyring, op: usize) -> Which {
        let signed = ring.sign_at(ADDRESS, NOW).unwrap();
        let which = if signed == self.signed_a {
            Which::A
        } else if signed == self.signed_b {
            Which::B
        } else {
            panic!("a keyring that is neither A nor B signed {signed}");
        };
        let want = match which {
            Which::A => [Outcome::Valid, Outcome::UnknownKey, Outcome::BadSignature],
            Which::B => [Outcome::UnknownKey, Outcome::Valid, Outcome::UnknownKey],
        };
        // Vary the order, so that no verification is always the first after a reload.
        let tags = [&self.signed_a, &self.signed_b, &self.forged];
        for i in 0..3 {
            let k = (i + op) % 3;
            assert_eq!(ring.status_at(tags[k], NOW), want[k], "keyring {which:?}, tag {k}");
        }
        if which == Which::A {
            assert_eq!(ring.verify_at(&self.signed_a, NOW).unwrap().to_string(), ADDRESS);
        } else {
            assert_eq!(ring.verify_at(&self.signed_b, NOW).unwrap().to_string(), ADDRESS);
        }
        which
    }
}

fn private_file(path: &Path, text: &str) {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

struct Figures {
    operations: usize,
    replacements: usize,
    reloads_seen: usize,
    saw: [usize; 2],
    errors: usize,
    first_error: Option<String>,
    elapsed: Duration,
}

fn env_or(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// Runs the workers against `cache` while `replace(i)` swaps the file; returns the figures.
/// `errors_allowed`: whether a keyring error (the caller would tempfail, 451) may be seen.
fn run(cache: Arc<CachedKeyring>, replace: impl Fn(usize) + Send + 'static, errors_allowed: bool) -> Figures {
    let min_ops = env_or("BATV_STRESS_OPS", 4000);
    let target_replacements = env_or("BATV_STRESS_REPLACEMENTS", 400);
    let expected = Arc::new(Expected::new());
    let stop = Arc::new(AtomicBool::new(false));
    let workers_done = Arc::new(AtomicUsize::new(0));
    let replacements = Arc::new(AtomicUsize::new(0));
    let start = Arc::new(Barrier::new(THREADS + 1));
    let t0 = Instant::now();

    let replacer = {
        let (stop, replacements, start, done) =
            (stop.clone(), replacements.clone(), start.clone(), workers_done.clone());
        std::thread::spawn(move || {
            start.wait();
            let mut i = 0;
            // Keep replacing until the target count, and until every worker did its minimum.
            while i < target_replacements || done.load(Ordering::SeqCst) < THREADS {
                i += 1;
                replace(i);
                replacements.fetch_add(1, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(500));
            }
            stop.store(true, Ordering::SeqCst);
        })
    };
    let workers: Vec<_> = (0..THREADS)
        .map(|t| {
            let (cache, expected, start, stop, done) =
                (cache.clone(), expected.clone(), start.clone(), stop.clone(), workers_done.clone());
            std::thread::spawn(move || {
                let (mut saw, mut errors, mut reloads) = ([0usize; 2], 0usize, 0usize);
                let mut first_error = None;
                let mut last: Option<Arc<Keyring>> = None;
                start.wait();
                let mut op = 0;
                while !stop.load(Ordering::SeqCst) {
                    op += 1;
                    if op == min_ops {
                        done.fetch_add(1, Ordering::SeqCst);
                    }
                    match cache.get() {
                        Ok(ring) => {
                            if last.as_ref().is_none_or(|l| !Arc::ptr_eq(l, &ring)) {
                                reloads += 1;
                            }
                            saw[expected.identify(&ring, op + t) as usize] += 1;
                            last = Some(ring);
                        }
                        Err(e) => {
                            assert!(errors_allowed, "thread {t} op {op}: {e}");
                            errors += 1;
                            first_error.get_or_insert(e.to_string());
                        }
                    }
                }
                if op < min_ops {
                    done.fetch_add(1, Ordering::SeqCst);
                }
                (saw, errors, reloads, op, first_error)
            })
        })
        .collect();
    let mut f = Figures {
        operations: 0,
        replacements: 0,
        reloads_seen: 0,
        saw: [0; 2],
        errors: 0,
        first_error: None,
        elapsed: Duration::ZERO,
    };
    let mut panicked = None;
    for w in workers {
        match w.join() {
            Ok((saw, errors, reloads, ops, first_error)) => {
                f.saw[0] += saw[0];
                f.saw[1] += saw[1];
                f.errors += errors;
                f.reloads_seen += reloads;
                f.operations += ops;
                f.first_error = f.first_error.take().or(first_error);
            }
            Err(p) => {
                // Let the replacer finish: it waits for every worker's minimum.
                workers_done.fetch_add(THREADS, Ordering::SeqCst);
                panicked = Some(p);
            }
        }
    }
    replacer.join().unwrap();
    if let Some(p) = panicked {
        std::panic::resume_unwind(p);
    }
    f.replacements = replacements.load(Ordering::Relaxed);
    f.elapsed = t0.elapsed();
    f
}

#[test]
fn eight_threads_while_the_keyring_file_is_replaced_by_rename() {
    // The way every tool should replace a keyring (and `batv keygen --rotate` does): write a
    // private temporary file beside it, then rename it over the old one.
    let d = TempDir::new("stress-rename");
    let path = d.join("batv.keys");
    private_file(&path, RING_A);
    let cache = Arc::new(CachedKeyring::with_interval(&path, Duration::ZERO));
    let (p, tmp) = (path.clone(), d.join("batv.keys.tmp"));
    let f = run(
        cache,
        move |i| {
            private_file(&tmp, if i % 2 == 0 { RING_A } else { RING_B });
            std::fs::rename(&tmp, &p).unwrap();
        },
        false,
    );
    println!(
        "stress (rename): {THREADS} threads, {} operations (a keyring from the loader, then 1 sign + 4 \
         verify) while the file was replaced {} times; {} reloads seen; keyring A {} times, B {} \
         times; 0 wrong answers; {:.2} s",
        f.operations,
        f.replacements,
        f.reloads_seen,
        f.saw[0],
        f.saw[1],
        f.elapsed.as_secs_f64()
    );
    assert_eq!(f.errors, 0);
    // The test means something only if both keyrings were seen, and reloads really happened.
    assert!(f.saw[0] > 0 && f.saw[1] > 0, "both keyrings seen: {:?}", f.saw);
    assert!(f.reloads_seen > THREADS * 2, "reloads seen: {}", f.reloads_seen);
    assert!(f.replacements > 10, "replacements: {}", f.replacements);
}

#[test]
fn eight_threads_while_the_keyring_file_is_rewritten_in_place() {
    // An administrator's `cat new > batv.keys` truncates and rewrites the file the loader reads.
    // A reader may then see an empty file: that is a keyring error, and the mail server
    // tempfails (451) for that moment, which is safe. It must never see a wrong keyring.
    let d = TempDir::new("stress-in-place");
    let path = d.join("batv.keys");
    private_file(&path, RING_A);
    let cache = Arc::new(CachedKeyring::with_interval(&path, Duration::ZERO));
    let p = path.clone();
    let f = run(cache, move |i| private_file(&p, if i % 2 == 0 { RING_A } else { RING_B }), true);
    println!(
        "stress (in place): {THREADS} threads, {} operations while the file was rewritten {} times; \
         keyring A {} times, B {} times, a keyring error (tempfail) {} times (first: {}); 0 wrong \
         answers; {:.2} s",
        f.operations,
        f.replacements,
        f.saw[0],
        f.saw[1],
        f.errors,
        f.first_error.as_deref().unwrap_or("none"),
        f.elapsed.as_secs_f64()
    );
    assert!(f.saw[0] > 0 && f.saw[1] > 0, "both keyrings seen: {:?}", f.saw);
}

#[test]
fn one_keyring_shared_by_eight_threads_gives_the_answers_of_one() {
    // No loader: one Keyring behind an Arc, signing into caller buffers and verifying, the
    // way the C library shares one batv_keyring between threads.
    let ring = Arc::new(Keyring::parse(RING_B).unwrap());
    let expected = Arc::new(Expected::new());
    let ops = env_or("BATV_STRESS_OPS", 4000);
    let handles: Vec<_> = (0..THREADS)
        .map(|t| {
            let (ring, expected) = (ring.clone(), expected.clone());
            std::thread::spawn(move || {
                let mut buf = [0u8; batv_core::SIGNED_MAX];
                for op in 0..ops {
                    assert_eq!(expected.identify(&ring, op + t), Which::B);
                    let addr = format!("u{t}.{op}@example.com");
                    let n = match ring.sign_into(&addr, NOW + op as i64, &mut buf).unwrap() {
                        batv_core::Signed::Written(n) => n,
                        batv_core::Signed::Unchanged => panic!("unchanged"),
                    };
                    let signed = std::str::from_utf8(&buf[..n]).unwrap();
                    assert_eq!(ring.verify_at(signed, NOW + op as i64).unwrap().to_string(), addr);
                }
            })
        })
        .collect();
    for h in handles {
        h.join().unwrap();
    }
    println!(
        "stress (shared keyring): {THREADS} threads x {ops} operations (each 2 signs and 5 \
         verifications), all right"
    );
}
