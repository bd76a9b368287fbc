//! What the batv test suites share: scratch directories, the repository's test vectors
//! (`tests/vectors/`), noon UTC on a date, and a counter of heap allocations.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};

/// A scratch directory, removed with everything in it when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory under the system's temporary directory; `name` appears in its
    /// name, so a failed run's leftovers say which test made them.
    pub fn new(name: &str) -> TempDir {
        static SERIAL: AtomicU64 = AtomicU64::new(0);
        let n = SERIAL.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("batv-test-{name}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("create a scratch directory");
        TempDir(dir)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `name` in the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` in the directory with mode 0600, as a keyring must be.
    pub fn write_private(&self, name: &str, text: &str) -> PathBuf {
        let path = self.join(name);
        write_private(&path, text);
        path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Writes `text` to `path` and gives it mode 0600.
pub fn write_private(path: &Path, text: &str) {
    std::fs::write(path, text).expect("write a private file");
    set_mode(path, 0o600);
}

/// Sets a file's permission bits.
pub fn set_mode(path: &Path, mode: u32) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }
    #[cfg(not(unix))]
    let _ = (path, mode);
}

/// The repository's test vectors: `tests/vectors/` at the top of the checkout.
pub fn vectors_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/vectors")
}

/// The rows of a tab-separated vector file, without comments and blank lines. A missing or
/// empty file fails the test: vectors are never skipped.
pub fn vector_rows(name: &str) -> Vec<Vec<String>> {
    let path = vectors_dir().join(name);
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let rows: Vec<Vec<String>> = text
        .lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .map(|l| l.split('\t').map(str::to_string).collect())
        .collect();
    assert!(!rows.is_empty(), "{} has no rows", path.display());
    rows
}

/// Unix seconds at 12:00 UTC on a `YYYY-MM-DD` date (days from the civil date, Howard
/// Hinnant's method).
pub fn noon_utc(date: &str) -> i64 {
    let p: Vec<i64> = date.split('-').map(|s| s.parse().expect("YYYY-MM-DD")).collect();
    let (y, m, d) = (p[0] - i64::from(p[1] <= 2), p[1], p[2]);
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * (m + if m > 2 { -3 } else { 9 }) + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    (era * 146_097 + doe - 719_468) * 86_400 + 43_200
}

thread_local! {
    // `const`: no lazy set-up, so reading it never allocates.
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

/// A global allocator that counts the allocations of each thread. A test crate installs it
/// with `#[global_allocator] static A: batv_test_support::Counting = batv_test_support::Counting;`
/// and measures with [`allocations_in`].
pub struct Counting;

fn count() {
    // During thread teardown the counter may be gone; nothing to count then.
    let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
}

// SAFETY: every method forwards to the system allocator unchanged; counting has no effect on
// the memory handed out.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

/// Heap allocations that `f` makes on this thread (with [`Counting`] installed), and its
/// result.
pub fn allocations_in<R>(f: impl FnOnce() -> R) -> (u64, R) {
    let before = ALLOCATIONS.with(Cell::get);
    let r = f();
    (ALLOCATIONS.with(Cell::get) - before, r)
}

/// One operation of [`interleaved`]: a name and a call whose result is kept from the optimiser.
pub type Op<'a> = (&'a str, Box<dyn FnMut() -> usize + 'a>);

/// Times every operation against the first (the limit), interleaved so that a noisy, shared
/// machine disturbs both sides of each ratio alike: each of `rounds` rounds times a batch of
/// `batch` calls of every operation back to back, in a rotating order, and each batch is
/// divided by the limit's batch of the same round. Prints a table and, last, one line per
/// operation for scripts: `RESULT op=<name> median_ns=<ns> ratio=<median of op/limit>`.
pub fn interleaved(ops: &mut [Op<'_>], rounds: usize, batch: u32) {
    fn median(mut v: Vec<f64>) -> f64 {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    }
    let n = ops.len();
    let mut times: Vec<Vec<f64>> = vec![Vec::with_capacity(rounds); n];
    let mut sink = 0usize;
    // One warm-up round, not recorded.
    for r in 0..=rounds {
        for j in 0..n {
            let i = (j + r) % n;
            let f = &mut ops[i].1;
            let t = std::time::Instant::now();
            for _ in 0..batch {
                sink = sink.wrapping_add(f());
            }
            if r > 0 {
                times[i].push(t.elapsed().as_nanos() as f64 / f64::from(batch));
            }
        }
    }
    std::hint::black_box(sink);
    let limit = times[0].clone();
    println!("{rounds} interleaved rounds of {batch} calls per operation");
    println!("{:<28} {:>10} {:>8}", "operation", "median ns", "x limit");
    let mut results = Vec::new();
    for (i, (name, _)) in ops.iter().enumerate() {
        let ratio = median(times[i].iter().zip(&limit).map(|(t, l)| t / l).collect());
        let med = median(times[i].clone());
        println!("{name:<28} {med:>10.1} {ratio:>8.3}");
        results.push(format!("RESULT op={name} median_ns={med:.2} ratio={ratio:.4}"));
    }
    for r in results {
        println!("{r}");
    }
}

/// The limit every ratio is measured against: the SHA-256 of one 64-octet block, which
/// compresses exactly two blocks (the message and its padding), what an HMAC of a short
/// message costs at least once its key is prepared.
pub fn two_compressions() -> usize {
    use sha2::Digest as _;
    usize::from(sha2::Sha256::digest(std::hint::black_box([0x36u8; 64]))[0])
}

#[cfg(test)]
mod tests {
    #[test]
    fn noon_utc_knows_the_calendar() {
        assert_eq!(super::noon_utc("1970-01-01"), 43_200);
        assert_eq!(super::noon_utc("2026-11-26"), 1_795_700_000 - 1_795_700_000 % 86_400 + 43_200);
        assert_eq!(super::noon_utc("2000-03-01") - super::noon_utc("2000-02-28"), 2 * 86_400);
        assert_eq!(super::noon_utc("1969-12-31"), -43_200);
    }
}
