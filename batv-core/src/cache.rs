//! Keyring files that long-running mail processes load once and reload when they change.
//!
//! An MTA calls into BATV for every recipient of every message; it must not read and parse the
//! keyring each time, and it must notice a new keyring (a rotation) without a restart.
//! [`CachedKeyring`] keeps one parsed keyring for one path and looks at the file at most once
//! per [`CHECK_INTERVAL`]: a `stat`, and a reload only when the file changed.
//!
//! Decisions a mail administrator should know:
//!
//! - A file that is removed, unreadable, insecure or broken is an **error**, also when a good
//!   keyring was loaded before. The cache does not keep serving the old keys: after a rotation
//!   or a removal that would sign with a key the administrator took away, and it would hide the
//!   mistake. The caller turns the error into a temporary failure (Exim: DEFER, SMTP 451), so
//!   mail waits and nothing is rejected or lost. The error is cached for the same interval, so
//!   a missing file is not looked up on every call either.
//! - A change is detected by device, inode, size, modification time and change time
//!   (nanoseconds). A file changed less than [`RACY_SECONDS`] before it was loaded is read
//!   again at the next check, because a second change within the same clock tick could leave
//!   all of those equal.
//! - Every answer comes from one whole keyring: readers get an `Arc<Keyring>` that a reload
//!   replaces, never changes.
//!
//! ```
//! use batv_core::cache::CachedKeyring;
//! # let dir = std::env::temp_dir().join(format!("batv-cache-doc-{}", std::process::id()));
//! # std::fs::create_dir_all(&dir).unwrap();
//! # let path = dir.join("batv.keys");
//! # std::fs::write(&path, "key 1 hmac-sha1 text:secret\n").unwrap();
//! # #[cfg(unix)] { use std::os::unix::fs::PermissionsExt;
//! #   std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).unwrap(); }
//! let keys = CachedKeyring::new(&path);
//! let ring = keys.get().unwrap(); // loads the file
//! let again = keys.get().unwrap(); // within a second: no disk access at all
//! assert!(std::sync::Arc::ptr_eq(&ring, &again));
//! # std::fs::remove_dir_all(&dir).unwrap();
//! ```

use crate::keyring::{Keyring, KeyringError};
use std::fs::Metadata;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant, SystemTime};

/// How often the file is looked at, at most.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A file whose change time is this close to the time it was loaded is read again at the next
/// check, whatever its stamp says.
pub const RACY_SECONDS: u64 = 2;

/// Reads of a file that keeps changing while it is read, before the cache reports an error.
pub const READ_TRIES: u32 = 3;

/// Most paths one [`KeyringCache`] keeps; further paths are loaded on every call, uncached.
pub const MAX_CACHED_PATHS: usize = 64;

/// A monotonic clock for the check interval, replaceable in tests.
pub trait Clock: Send + Sync {
    /// Time elapsed since a fixed origin of this clock's choosing; never goes backwards.
    fn elapsed(&self) -> Duration;
}

/// The real monotonic clock ([`Instant`]).
#[derive(Debug)]
pub struct MonotonicClock {
    origin: Instant,
}

impl MonotonicClock {
    /// A clock whose origin is now.
    pub fn new() -> MonotonicClock {
        MonotonicClock { origin: Instant::now() }
    }
}

impl Default for MonotonicClock {
    fn default() -> MonotonicClock {
        MonotonicClock::new()
    }
}

impl Clock for MonotonicClock {
    fn elapsed(&self) -> Duration {
        self.origin.elapsed()
    }
}

/// A clock that moves only when told to: for tests of the check interval.
#[derive(Debug, Default)]
pub struct ManualClock {
    nanos: std::sync::atomic::AtomicU64,
}

impl ManualClock {
    /// A clock at zero.
    pub fn new() -> ManualClock {
        ManualClock::default()
    }

    /// Moves the clock forward.
    pub fn advance(&self, by: Duration) {
        let by = u64::try_from(by.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_add(by, std::sync::atomic::Ordering::SeqCst);
    }
}

impl Clock for ManualClock {
    fn elapsed(&self) -> Duration {
        Duration::from_nanos(self.nanos.load(std::sync::atomic::Ordering::SeqCst))
    }
}

/// What identifies one version of the file without reading it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: (i64, i64),
    ctime: (i64, i64),
}

impl FileStamp {
    /// Whether the same file still has the same contents as far as its stamp tells: length and
    /// modification time. (The change time also moves when the file is only renamed away or
    /// unlinked, which leaves what was read intact.)
    fn same_content(&self, other: &FileStamp) -> bool {
        (self.dev, self.ino, self.len, self.mtime) == (other.dev, other.ino, other.len, other.mtime)
    }

    #[cfg(unix)]
    fn of(meta: &Metadata) -> FileStamp {
        use std::os::unix::fs::MetadataExt;
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    #[cfg(not(unix))]
    fn of(meta: &Metadata) -> FileStamp {
        let secs = |t: std::io::Result<SystemTime>| {
            t.ok()
                .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
                .map_or((0, 0), |d| (d.as_secs() as i64, i64::from(d.subsec_nanos())))
        };
        FileStamp { dev: 0, ino: 0, len: meta.len(), mtime: secs(meta.modified()), ctime: secs(meta.created()) }
    }

    /// Whether the file changed so recently that another change in the same clock tick could
    /// go unseen.
    fn is_racy(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        let changed = self.ctime.0.max(self.mtime.0);
        changed.saturating_add(RACY_SECONDS as i64) >= now
    }
}

/// The current answer and what it was made from.
struct State {
    answer: Result<Arc<Keyring>, KeyringError>,
    /// The stamp the keyring was loaded from; `None` forces a reload at the next check (after
    /// an error, or when the file was changing while it was read).
    stamp: Option<FileStamp>,
    checked_at: Duration,
}

/// One keyring file, parsed once and reloaded when it changes. `Send + Sync`: share it.
pub struct CachedKeyring {
    path: PathBuf,
    clock: Arc<dyn Clock>,
    state: RwLock<Option<State>>,
    /// Held by the one thread that looks at the file; the others keep answering meanwhile.
    refresh: Mutex<()>,
}

impl std::fmt::Debug for CachedKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedKeyring").field("path", &self.path).finish_non_exhaustive()
    }
}

impl CachedKeyring {
    /// A cache for the keyring file at `path`; nothing is read until [`CachedKeyring::get`].
    pub fn new(path: impl Into<PathBuf>) -> CachedKeyring {
        CachedKeyring::with_clock(path, Arc::new(MonotonicClock::new()))
    }

    /// As [`CachedKeyring::new`], with the clock that times the check interval.
    pub fn with_clock(path: impl Into<PathBuf>, clock: Arc<dyn Clock>) -> CachedKeyring {
        CachedKeyring { path: path.into(), clock, state: RwLock::new(None), refresh: Mutex::new(()) }
    }

    /// The file this cache loads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyring as the file has it now (looked at no more than once per
    /// [`CHECK_INTERVAL`]), or the error that makes it unusable.
    pub fn get(&self) -> Result<Arc<Keyring>, KeyringError> {
        let now = self.clock.elapsed();
        if let Some(answer) = self.fresh_answer(now) {
            return answer;
        }
        // Only one thread looks at the file. While it does, the others answer from what is
        // loaded (at most one interval old); before the first load they wait for it.
        let _guard = match self.refresh.try_lock() {
            Ok(g) => g,
            Err(std::sync::TryLockError::WouldBlock) => {
                if let Some(answer) = self.current_answer() {
                    return answer;
                }
                self.refresh.lock().unwrap_or_else(PoisonError::into_inner)
            }
            Err(std::sync::TryLockError::Poisoned(p)) => p.into_inner(),
        };
        // Another thread may have refreshed while this one waited.
        let now = self.clock.elapsed();
        if let Some(answer) = self.fresh_answer(now) {
            return answer;
        }
        let previous = self.read_state(|s| s.and_then(|s| s.stamp.map(|st| (st, s.answer.clone()))));
        let state = self.look_at_file(now, previous);
        let answer = state.answer.clone();
        *self.state.write().unwrap_or_else(PoisonError::into_inner) = Some(state);
        answer
    }

    fn read_state<T>(&self, f: impl FnOnce(Option<&State>) -> T) -> T {
        let guard = self.state.read().unwrap_or_else(PoisonError::into_inner);
        f(guard.as_ref())
    }

    /// The cached answer if the file was looked at less than an interval ago.
    fn fresh_answer(&self, now: Duration) -> Option<Result<Arc<Keyring>, KeyringError>> {
        self.read_state(|s| {
            s.filter(|s| now.saturating_sub(s.checked_at) < CHECK_INTERVAL)
                .map(|s| s.answer.clone())
        })
    }

    fn current_answer(&self) -> Option<Result<Arc<Keyring>, KeyringError>> {
        self.read_state(|s| s.map(|s| s.answer.clone()))
    }

    /// Stats the file and reloads it unless it is the version already loaded.
    fn look_at_file(
        &self,
        now: Duration,
        previous: Option<(FileStamp, Result<Arc<Keyring>, KeyringError>)>,
    ) -> State {
        // A file rewritten in place can be read half-written, and a half-written `text:` secret
        // is still a valid, wrong key. An answer read while the file moved is never served: read
        // again, and if the file will not hold still, report an error (the MTA tempfails).
        let mut tries = 0;
        let (answer, stamp) = loop {
            let before = std::fs::metadata(&self.path).map(|m| FileStamp::of(&m));
            if let (Ok(stamp), Some((loaded, Ok(ring)))) = (&before, &previous) {
                if stamp == loaded {
                    return State { answer: Ok(Arc::clone(ring)), stamp: Some(*stamp), checked_at: now };
                }
            }
            // The open file is what was read, so it is what must have held still: the path may
            // meanwhile name a new file (replaced by rename, as it should be), which is no reason
            // to doubt this read, and the next check sees the new file by its stamp.
            let (answer, after, held_still) = match std::fs::File::open(&self.path) {
                Ok(mut file) => {
                    let opened = file.metadata().map(|m| FileStamp::of(&m));
                    let answer = Keyring::load_file(&self.path, &mut file).map(Arc::new);
                    let after = file.metadata().map(|m| FileStamp::of(&m));
                    let held = matches!((&opened, &after), (Ok(o), Ok(a)) if a.same_content(o));
                    (answer, after, held)
                }
                // Keyring::load reports a missing or unreadable file, with the path.
                Err(_) => (Keyring::load(&self.path).map(Arc::new), std::fs::metadata(&self.path).map(|m| FileStamp::of(&m)), true),
            };
            tries += 1;
            if held_still || answer.is_err() || tries == READ_TRIES {
                let answer = match answer {
                    Ok(_) if !held_still => Err(KeyringError {
                        path: Some(self.path.clone()),
                        line: None,
                        kind: crate::keyring::KeyringErrorKind::ChangedWhileRead,
                    }),
                    other => other,
                };
                // Trust the stamp only when the file held still while it was read and is not so
                // new that another change in the same tick could hide behind it.
                let stamp = match (&answer, after) {
                    (Ok(_), Ok(a)) if held_still && !a.is_racy() => Some(a),
                    _ => None,
                };
                break (answer, stamp);
            }
        };
        State { answer, stamp, checked_at: now }
    }
}

/// Cached keyrings by path, for callers that are handed a path on every call (Exim's
/// `${dlfunc}`). `Send + Sync`.
pub struct KeyringCache {
    clock: Arc<dyn Clock>,
    /// Looked up by the path's octets, most recently added last: a server names one or two
    /// keyrings, so a short scan with `memcmp` beats hashing the path's components (with the
    /// hashing, the lookup cost about as much as signing, per `${dlfunc}` call; issue 6). Two
    /// spellings of one file (`/etc//batv.keys`) are two entries, which is harmless.
    paths: Mutex<Vec<(PathBuf, Arc<CachedKeyring>)>>,
}

impl std::fmt::Debug for KeyringCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KeyringCache").finish_non_exhaustive()
    }
}

impl Default for KeyringCache {
    fn default() -> KeyringCache {
        KeyringCache::new()
    }
}

impl KeyringCache {
    /// An empty cache with the real clock.
    pub fn new() -> KeyringCache {
        KeyringCache::with_clock(Arc::new(MonotonicClock::new()))
    }

    /// An empty cache whose entries time their checks with `clock`.
    pub fn with_clock(clock: Arc<dyn Clock>) -> KeyringCache {
        KeyringCache { clock, paths: Mutex::new(Vec::new()) }
    }

    /// The keyring at `path`, loaded once and reloaded when the file changes. Beyond
    /// [`MAX_CACHED_PATHS`] different paths, further paths are loaded on every call.
    pub fn get(&self, path: &Path) -> Result<Arc<Keyring>, KeyringError> {
        let entry = {
            let mut paths = self.paths.lock().unwrap_or_else(PoisonError::into_inner);
            match paths.iter().find(|(p, _)| p.as_os_str() == path.as_os_str()) {
                Some((_, e)) => Some(Arc::clone(e)),
                None if paths.len() < MAX_CACHED_PATHS => {
                    let e = Arc::new(CachedKeyring::with_clock(path, Arc::clone(&self.clock)));
                    paths.push((path.to_path_buf(), Arc::clone(&e)));
                    Some(e)
                }
                None => None,
            }
        };
        match entry {
            Some(e) => e.get(),
            None => Keyring::load(path).map(Arc::new),
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    struct Dir(PathBuf);
    impl Drop for Dir {
        fn drop(&mut self) {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }

    fn temp_dir(name: &str) -> Dir {
        let d = std::env::temp_dir().join(format!("batv-cache-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&d);
        std::fs::create_dir_all(&d).unwrap();
        Dir(d)
    }

    /// Replaces the file the way an administrator's script should: write aside, rename over.
    fn install(path: &Path, text: &str) {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text).unwrap();
        std::fs::set_permissions(&tmp, std::fs::Permissions::from_mode(0o600)).unwrap();
        std::fs::rename(&tmp, path).unwrap();
    }

    const ONE: &str = "key 1 hmac-sha1 text:first secret\n";
    const TWO: &str = "key 2 hmac-sha1 text:second secret\n";
    const NOW: i64 = 1_795_700_000;

    fn sign_key(ring: &Keyring) -> u8 {
        ring.signing_key().number()
    }

    #[test]
    fn loads_once_within_the_interval() {
        let dir = temp_dir("once");
        let path = dir.0.join("batv.keys");
        install(&path, ONE);
        let clock = Arc::new(ManualClock::new());
        let cache = CachedKeyring::with_clock(&path, clock.clone());
        let a = cache.get().unwrap();
        // Replaced and even removed: within the interval the disk is not looked at.
        install(&path, TWO);
        let b = cache.get().unwrap();
        assert!(Arc::ptr_eq(&a, &b));
        std::fs::remove_file(&path).unwrap();
        clock.advance(Duration::from_millis(999));
        assert_eq!(sign_key(&cache.get().unwrap()), 1);
        // One second on, the removal is seen, and it is an error, not the old keyring.
        clock.advance(Duration::from_millis(1));
        let err = cache.get().unwrap_err();
        assert_eq!(err.kind, crate::KeyringErrorKind::Io(std::io::ErrorKind::NotFound));
        assert_eq!(err.path.as_deref(), Some(path.as_path()));
        // The error is cached for the interval too.
        install(&path, TWO);
        assert!(cache.get().is_err());
        clock.advance(CHECK_INTERVAL);
        assert_eq!(sign_key(&cache.get().unwrap()), 2);
    }

    #[test]
    fn reloads_a_changed_file_and_keeps_an_unchanged_one() {
        let dir = temp_dir("reload");
        let path = dir.0.join("batv.keys");
        install(&path, ONE);
        // Make the file old, so that its stamp is trusted (not racy).
        let old = SystemTime::now() - Duration::from_secs(60);
        std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
        // ctime cannot be set back; wait out the racy window instead of trusting a stale one.
        std::thread::sleep(Duration::from_secs(RACY_SECONDS + 1));
        let clock = Arc::new(ManualClock::new());
        let cache = CachedKeyring::with_clock(&path, clock.clone());
        let a = cache.get().unwrap();
        clock.advance(CHECK_INTERVAL);
        let b = cache.get().unwrap();
        assert!(Arc::ptr_eq(&a, &b), "an unchanged file is not parsed again");
        // Same size, same inode, rewritten in place: the change time still moves.
        std::fs::write(&path, ONE.replace("first", "fir5t")).unwrap();
        clock.advance(CHECK_INTERVAL);
        let c = cache.get().unwrap();
        assert!(!Arc::ptr_eq(&b, &c), "a rewritten file is loaded again");
        assert_ne!(c.sign_at("u@example.com", NOW).unwrap(), b.sign_at("u@example.com", NOW).unwrap());
    }

    #[test]
    fn a_broken_new_file_is_an_error_not_the_old_keys() {
        let dir = temp_dir("broken");
        let path = dir.0.join("batv.keys");
        install(&path, ONE);
        let clock = Arc::new(ManualClock::new());
        let cache = CachedKeyring::with_clock(&path, clock.clone());
        assert!(cache.get().is_ok());
        install(&path, "key 1 hmac-md5 text:x\n");
        clock.advance(CHECK_INTERVAL);
        let err = cache.get().unwrap_err();
        assert_eq!(err.line, Some(1));
        assert!(!err.to_string().contains("text:x"));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
        install(&path, ONE);
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o604)).unwrap();
        clock.advance(CHECK_INTERVAL);
        let err = cache.get().unwrap_err();
        assert!(matches!(err.kind, crate::KeyringErrorKind::InsecurePermissions { .. }));
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o640)).unwrap();
        clock.advance(CHECK_INTERVAL);
        assert_eq!(sign_key(&cache.get().unwrap()), 1);
    }

    #[test]
    fn paths_are_cached_separately() {
        let dir = temp_dir("paths");
        let (p1, p2) = (dir.0.join("one.keys"), dir.0.join("two.keys"));
        install(&p1, ONE);
        install(&p2, TWO);
        let cache = KeyringCache::with_clock(Arc::new(ManualClock::new()));
        assert_eq!(sign_key(&cache.get(&p1).unwrap()), 1);
        assert_eq!(sign_key(&cache.get(&p2).unwrap()), 2);
        assert!(Arc::ptr_eq(&cache.get(&p1).unwrap(), &cache.get(&p1).unwrap()));
        assert!(cache.get(&dir.0.join("missing.keys")).is_err());
    }

    #[test]
    fn threads_see_whole_keyrings_while_the_file_is_replaced() {
        let dir = temp_dir("threads");
        let path = dir.0.join("batv.keys");
        install(&path, ONE);
        let clock = Arc::new(ManualClock::new());
        let cache = Arc::new(CachedKeyring::with_clock(&path, clock.clone()));
        // Each keyring signs with its own key number; a mixed keyring would not verify its own
        // tag.
        let stop = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let readers: Vec<_> = (0..4)
            .map(|_| {
                let (cache, stop) = (Arc::clone(&cache), Arc::clone(&stop));
                std::thread::spawn(move || {
                    let mut seen = [0usize; 3];
                    while !stop.load(std::sync::atomic::Ordering::Relaxed) {
                        let ring = cache.get().unwrap();
                        let tag = ring.sign_at("u@example.com", NOW).unwrap();
                        assert!(ring.verify_at(&tag, NOW).is_ok());
                        seen[usize::from(sign_key(&ring))] += 1;
                    }
                    seen
                })
            })
            .collect();
        for i in 0..200 {
            install(&path, if i % 2 == 0 { TWO } else { ONE });
            clock.advance(CHECK_INTERVAL);
            std::thread::sleep(Duration::from_millis(1));
        }
        stop.store(true, std::sync::atomic::Ordering::Relaxed);
        let mut total = [0usize; 3];
        for r in readers {
            let seen = r.join().unwrap();
            for k in 0..3 {
                total[k] += seen[k];
            }
        }
        assert!(total[1] > 0 && total[2] > 0, "both keyrings were served: {total:?}");
    }
}
