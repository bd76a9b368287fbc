//! Keyring files that long-running processes load once and reload when they change.

use crate::error::{KeyringError, KeyringErrorKind};
use crate::keys::Keyring;
use std::fs::Metadata;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, SystemTime};

/// How often the file is looked at, at most (whole seconds of the wall clock).
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// A file changed this recently is read again at the next check: a second change within the
/// same clock tick could leave its stamp unchanged.
const RACY_SECONDS: i64 = 2;

/// Reads of a file that keeps changing while it is read, before that is an error.
const READ_TRIES: u32 = 3;

/// Most paths one [`KeyringCache`] keeps; further paths are loaded on every call.
const MAX_CACHED_PATHS: usize = 64;

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
    fn of(meta: &Metadata) -> FileStamp {
        FileStamp {
            dev: meta.dev(),
            ino: meta.ino(),
            len: meta.len(),
            mtime: (meta.mtime(), meta.mtime_nsec()),
            ctime: (meta.ctime(), meta.ctime_nsec()),
        }
    }

    /// Same file, length and modification time (a rename moves the change time, not the content).
    fn same_content(&self, other: &FileStamp) -> bool {
        (self.dev, self.ino, self.len, self.mtime) == (other.dev, other.ino, other.len, other.mtime)
    }

    fn is_racy(&self) -> bool {
        let now = SystemTime::now()
            .duration_since(SystemTime::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
        self.ctime.0.max(self.mtime.0).saturating_add(RACY_SECONDS) >= now
    }
}

/// The current answer and what it was made from.
struct State {
    answer: Result<Arc<Keyring>, KeyringError>,
    /// The stamp of the file the keyring came from; `None` forces a reload at the next check.
    stamp: Option<FileStamp>,
    /// Unix seconds of the last look at the file.
    checked_at: i64,
}

/// One keyring file, parsed once and reloaded when it changes. `Send + Sync`: share it.
///
/// The file is looked at (a `stat`) at most once per [`CHECK_INTERVAL`], and read again only
/// when it changed. A file that goes missing, unreadable, insecure or broken is an error from
/// then on, never the old keys, which would hide the mistake: the caller tempfails (451).
pub struct CachedKeyring {
    path: PathBuf,
    /// Whole seconds between looks at the file.
    interval: i64,
    state: Mutex<Option<State>>,
}

impl std::fmt::Debug for CachedKeyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("CachedKeyring").field("path", &self.path).finish_non_exhaustive()
    }
}

impl CachedKeyring {
    /// A cache for the keyring file at `path`; nothing is read until [`CachedKeyring::get`].
    pub fn new(path: impl Into<PathBuf>) -> CachedKeyring {
        CachedKeyring::with_interval(path, CHECK_INTERVAL)
    }

    /// As [`CachedKeyring::new`], looking at the file at most once per `interval`
    /// (`Duration::ZERO`: on every call, for tests).
    #[doc(hidden)]
    pub fn with_interval(path: impl Into<PathBuf>, interval: Duration) -> CachedKeyring {
        let interval = i64::try_from(interval.as_secs()).unwrap_or(i64::MAX);
        CachedKeyring { path: path.into(), interval, state: Mutex::new(None) }
    }

    /// The file this cache loads.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The keyring as the file has it now, or the error that makes it unusable.
    pub fn get(&self) -> Result<Arc<Keyring>, KeyringError> {
        self.get_at(crate::unix_now())
    }

    /// [`CachedKeyring::get`] with the clock the caller read (Unix seconds) to sign or verify.
    pub fn get_at(&self, now: i64) -> Result<Arc<Keyring>, KeyringError> {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        // A clock that went back is a reason to look, not to wait until it comes forward.
        let fresh = |s: &&State| (0..self.interval).contains(&now.saturating_sub(s.checked_at));
        if let Some(s) = state.as_ref().filter(fresh) {
            return s.answer.clone();
        }
        let loaded = state.as_ref().and_then(|s| Some((s.stamp?, Arc::clone(s.answer.as_ref().ok()?))));
        let fresh = self.look_at_file(loaded, now);
        let answer = fresh.answer.clone();
        *state = Some(fresh);
        answer
    }

    /// Stats the file and reloads it unless it is the version already loaded.
    fn look_at_file(&self, loaded: Option<(FileStamp, Arc<Keyring>)>, now: i64) -> State {
        // A read during which the file moved is never served: half a `text:` secret is still
        // a valid, wrong key.
        let mut tries = 0;
        loop {
            let stamp = std::fs::metadata(&self.path).map(|m| FileStamp::of(&m));
            if let (Ok(stamp), Some((was, ring))) = (&stamp, &loaded) {
                if stamp == was {
                    return State { answer: Ok(Arc::clone(ring)), stamp: Some(*stamp), checked_at: now };
                }
            }
            // Judged by the open file; a file renamed over the path meanwhile is the next check's.
            let (answer, after, held_still) = match crate::keyfile::open(&self.path) {
                Ok(mut file) => {
                    let opened = file.metadata().map(|m| FileStamp::of(&m));
                    let answer = Keyring::load_file(&self.path, &mut file).map(Arc::new);
                    let after = file.metadata().map(|m| FileStamp::of(&m));
                    let held = matches!((&opened, &after), (Ok(o), Ok(a)) if a.same_content(o));
                    (answer, after.ok(), held)
                }
                Err(kind) => (Err(KeyringError::new(kind).in_file(&self.path)), None, true),
            };
            tries += 1;
            if held_still || answer.is_err() || tries == READ_TRIES {
                let answer = match answer {
                    Ok(_) if !held_still => Err(KeyringError::new(KeyringErrorKind::ChangedWhileRead).in_file(&self.path)),
                    other => other,
                };
                let stamp = after.filter(|a| answer.is_ok() && held_still && !a.is_racy());
                return State { answer, stamp, checked_at: now };
            }
        }
    }
}

/// Cached keyrings by path, for callers handed the path on every call (Exim's `${dlfunc}`).
#[derive(Debug, Default)]
pub struct KeyringCache {
    paths: Mutex<Vec<CachedKeyring>>,
}

impl KeyringCache {
    /// An empty cache.
    pub fn new() -> KeyringCache {
        KeyringCache::default()
    }

    /// The keyring at `path`, cached as [`CachedKeyring`] caches it (the first 64 paths).
    pub fn get(&self, path: &Path) -> Result<Arc<Keyring>, KeyringError> {
        self.get_at(path, crate::unix_now())
    }

    /// [`KeyringCache::get`] with the clock the caller read (Unix seconds).
    pub fn get_at(&self, path: &Path, now: i64) -> Result<Arc<Keyring>, KeyringError> {
        // One lock for all: a process names one or two keyrings.
        let mut paths = self.paths.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(e) = paths.iter().find(|e| e.path.as_os_str() == path.as_os_str()) {
            return e.get_at(now);
        }
        if paths.len() < MAX_CACHED_PATHS {
            let e = CachedKeyring::new(path);
            let answer = e.get_at(now);
            paths.push(e);
            return answer;
        }
        drop(paths);
        Keyring::load(path).map(Arc::new)
    }
}
