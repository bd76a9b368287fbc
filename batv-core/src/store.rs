//! Writing the keyring file, relative to its directory opened once from the path resolved once.

use crate::error::{KeyringError, KeyringErrorKind};
use crate::keyfile::{access_acl, ACCESS_ACL};
use crate::keys::Keyring;
use rustix::fs::{AtFlags, FileType, FlockOperation, Gid, Mode, OFlags, Stat, Uid, XattrFlags, CWD};
use rustix::io::Errno;
use std::ffi::{OsStr, OsString};
use std::fmt;
use std::fs::File;
use std::io::{self, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::fs::MetadataExt;
use std::path::{Component, Path, PathBuf};

/// How often [`KeyringLock::acquire`] starts again on a file replaced while it waited.
const LOCK_ATTEMPTS: usize = 1000;

/// Why a keyring file could not be created, locked or replaced. Never holds a secret.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The keyring could not be loaded.
    Load(KeyringError),
    /// [`create`] found something at the path already (a file, or a symlink, even a dangling one).
    Exists(PathBuf),
    /// The path no longer leads to the file that was locked and loaded; nothing was written.
    Replaced(PathBuf),
    /// A step of the write failed.
    Io {
        /// The keyring path.
        path: PathBuf,
        /// What was being done, as in "cannot {doing}".
        doing: &'static str,
        /// The error.
        error: io::Error,
    },
}

impl fmt::Display for StoreError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            StoreError::Load(e) => e.fmt(f),
            StoreError::Exists(p) => write!(f, "keyring {} already exists", p.display()),
            StoreError::Replaced(p) => write!(
                f,
                "keyring {}: the path no longer leads to the file that was locked and read (it was \
                 replaced, or a name on the way was swapped); nothing was written",
                p.display()
            ),
            StoreError::Io { path, doing, error } => {
                write!(f, "keyring {}: cannot {doing}: {error}", path.display())
            }
        }
    }
}

impl std::error::Error for StoreError {}

/// An exclusive `flock` on a keyring file (no lock file beside it), and the keyring loaded from
/// it: concurrent changes take turns, and none loses another's key. Advisory, as flock is.
#[derive(Debug)]
pub struct KeyringLock {
    /// The path as given, for messages.
    shown: PathBuf,
    /// The path resolved once, symlinks and all.
    resolved: PathBuf,
    dir: OwnedFd,
    name: OsString,
    file: File,
    held: Stat,
    keyring: Keyring,
}

impl KeyringLock {
    /// Resolves `path` once (a symlink stays in place), opens its directory, and locks and loads
    /// the file there; a file replaced while this waited for the lock is started again on.
    pub fn acquire(path: impl AsRef<Path>) -> Result<KeyringLock, StoreError> {
        let shown = path.as_ref();
        let resolved = std::fs::canonicalize(shown).map_err(|e| not_loaded(shown, &e))?;
        let not_a_file = |p: &Path| StoreError::Load(KeyringError::new(KeyringErrorKind::NotAFile).in_file(p));
        let (Some(dir), Some(name)) = (resolved.parent(), resolved.file_name()) else { return Err(not_a_file(shown)) };
        let (dir, name) = (open_dir(dir, shown)?, name.to_os_string());
        // Through a symlink, errors (and the chmod that fixes them) name the file itself.
        let named = match std::fs::symlink_metadata(shown) {
            Ok(m) if m.file_type().is_symlink() => resolved.as_path(),
            _ => shown,
        };
        let io = |doing, error| StoreError::Io { path: shown.to_path_buf(), doing, error };
        for _ in 0..LOCK_ATTEMPTS {
            // A device or FIFO is never opened; O_NONBLOCK covers one swapped in after the look.
            let at_name = stat_name(&dir, &name, shown)?;
            if FileType::from_raw_mode(at_name.st_mode) != FileType::RegularFile {
                return Err(not_a_file(named));
            }
            let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
            // Read-write where allowed: NFS emulates flock with POSIX locks, whose exclusive form
            // needs a writable descriptor. Nothing is written through it.
            let fd = rustix::fs::openat(&dir, name.as_os_str(), flags | OFlags::RDWR, Mode::empty())
                .or_else(|_| rustix::fs::openat(&dir, name.as_os_str(), flags | OFlags::RDONLY, Mode::empty()))
                .map_err(|e| open_error(shown, e))?;
            let held = rustix::fs::fstat(&fd).map_err(|e| io("read its status", e.into()))?;
            if FileType::from_raw_mode(held.st_mode) != FileType::RegularFile {
                return Err(not_a_file(named));
            }
            rustix::fs::flock(&fd, FlockOperation::LockExclusive)
                .map_err(|e| io("lock it for the change", e.into()))?;
            // Once the locked file is the one at the name, no other change can replace it.
            if !same_file(&held, &stat_name(&dir, &name, shown)?) {
                continue;
            }
            let mut file = File::from(fd);
            let keyring = Keyring::load_file(named, &mut file).map_err(StoreError::Load)?;
            return Ok(KeyringLock { shown: shown.to_path_buf(), resolved, dir, name, file, held, keyring });
        }
        Err(io("lock it", io::Error::other("it was replaced again and again while waiting for the lock")))
    }

    /// The keyring, as loaded from the locked file.
    pub fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// The path with every symlink resolved: the name [`replace`](Self::replace) writes.
    pub fn resolved_path(&self) -> &Path {
        &self.resolved
    }

    /// Replaces the locked file with `keyring`: a synced temporary file with the old one's
    /// owner, group, ACL and mode (at most 0640), renamed over the name only if the name still
    /// holds the locked file ([`StoreError::Replaced`] otherwise). The lock lasts until drop.
    pub fn replace(&self, keyring: &Keyring) -> Result<(), StoreError> {
        let shown = &self.shown;
        let temp = write_temp(&self.dir, &self.name, keyring, shown, |new| self.keep_attributes(new))?;
        let renamed = (|| {
            match rustix::fs::statat(&self.dir, self.name.as_os_str(), AtFlags::SYMLINK_NOFOLLOW) {
                Ok(now) if same_file(&self.held, &now) => {}
                Ok(_) | Err(Errno::NOENT) => return Err(StoreError::Replaced(shown.clone())),
                Err(e) => return Err(io_error(shown, "look at it again before the rename", e)),
            }
            rustix::fs::renameat(&self.dir, &temp, &self.dir, self.name.as_os_str())
                .map_err(|e| io_error(shown, "rename the new file into place", e))
        })();
        if renamed.is_err() {
            let _ = rustix::fs::unlinkat(&self.dir, &temp, AtFlags::empty());
        }
        renamed?;
        sync_dir(&self.dir);
        Ok(())
    }

    /// The old file's owner, group, ACL and mode (at most 0640) on the new one. The ACL goes
    /// first: chmod then sets its mask from the group bits, as on the old file.
    fn keep_attributes(&self, new: BorrowedFd<'_>) -> io::Result<()> {
        let old = self.file.metadata()?;
        let now = rustix::fs::fstat(new)?;
        if (now.st_uid, now.st_gid) != (old.uid(), old.gid()) {
            rustix::fs::fchown(new, Some(Uid::from_raw(old.uid())), Some(Gid::from_raw(old.gid())))?;
        }
        if let Some(acl) = access_acl(self.file.as_fd())? {
            rustix::fs::fsetxattr(new, ACCESS_ACL, &acl, XattrFlags::empty())?;
        }
        rustix::fs::fchmod(new, Mode::from_raw_mode(old.mode() & 0o640))?;
        Ok(())
    }
}

/// Writes a new keyring file at `path`, mode 0600, as a synced temporary file linked to the name:
/// never half-written, and never replacing anything ([`StoreError::Exists`]).
pub fn create(path: impl AsRef<Path>, keyring: &Keyring) -> Result<(), StoreError> {
    let shown = path.as_ref();
    let parent = match shown.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let name = shown.file_name().ok_or_else(|| StoreError::Io {
        path: shown.to_path_buf(),
        doing: "create it",
        error: io::Error::new(io::ErrorKind::InvalidInput, "the path does not end in a file name"),
    })?;
    let dir_path = std::fs::canonicalize(parent)
        .map_err(|error| StoreError::Io { path: shown.to_path_buf(), doing: "open its directory", error })?;
    let dir = open_dir(&dir_path, shown)?;
    let temp = write_temp(&dir, name, keyring, shown, |_| Ok(()))?;
    let linked = match rustix::fs::linkat(&dir, &temp, &dir, name, AtFlags::empty()) {
        // A file system without hard links: a rename that refuses to replace does the same.
        Err(Errno::PERM | Errno::OPNOTSUPP | Errno::MLINK) => rustix::fs::renameat_with(
            &dir,
            &temp,
            &dir,
            name,
            rustix::fs::RenameFlags::NOREPLACE,
        ),
        other => other,
    };
    let _ = rustix::fs::unlinkat(&dir, &temp, AtFlags::empty());
    match linked {
        Ok(()) => {
            sync_dir(&dir);
            Ok(())
        }
        Err(Errno::EXIST) => Err(StoreError::Exists(shown.to_path_buf())),
        Err(e) => Err(io_error(shown, "link the new file into place", e)),
    }
}

/// A new mode-0600 file beside `name` holding the keyring text, given its attributes by
/// `finish`, and synced; its name, or an error with the file removed.
fn write_temp(
    dir: &OwnedFd,
    name: &OsStr,
    keyring: &Keyring,
    shown: &Path,
    finish: impl FnOnce(BorrowedFd<'_>) -> io::Result<()>,
) -> Result<OsString, StoreError> {
    let flags = OFlags::WRONLY | OFlags::CREATE | OFlags::EXCL | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let mut tries = 0;
    let (temp, fd) = loop {
        let temp = temp_name(name);
        match rustix::fs::openat(dir, &temp, flags, Mode::from_raw_mode(0o600)) {
            Ok(fd) => break (temp, fd),
            // A stale file of a crashed run, or one planted: another name.
            Err(Errno::EXIST) if tries < 10 => tries += 1,
            Err(e) => return Err(io_error(shown, "create a temporary file in its directory", e)),
        }
    };
    let mut file = File::from(fd);
    let written = file
        .write_all(keyring.to_file_text().as_bytes())
        .map_err(|e| (e, "write the new file"))
        .and_then(|()| finish(file.as_fd()).map_err(|e| (e, "give the new file the old one's owner, ACL and mode")))
        .and_then(|()| file.sync_all().map_err(|e| (e, "sync the new file")));
    drop(file);
    match written {
        Ok(()) => Ok(temp),
        Err((error, doing)) => {
            let _ = rustix::fs::unlinkat(dir, &temp, AtFlags::empty());
            Err(StoreError::Io { path: shown.to_path_buf(), doing, error })
        }
    }
}

/// `.NAME.batv-new.PID.RANDOM`: hidden, and never the name of another run's file.
fn temp_name(name: &OsStr) -> OsString {
    let mut random = [0u8; 6];
    let _ = getrandom::fill(&mut random);
    let mut temp = OsString::from(".");
    temp.push(name);
    temp.push(format!(".batv-new.{}.{}", std::process::id(), base16ct::lower::encode_string(&random)));
    temp
}

/// Opens a resolved directory one name at a time; a symlink on the way was swapped in since.
fn open_dir(dir: &Path, shown: &Path) -> Result<OwnedFd, StoreError> {
    let flags = OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let open = |at: BorrowedFd<'_>, name: &OsStr| {
        // Read access lets the directory be synced; search access is enough for the rest.
        rustix::fs::openat(at, name, flags | OFlags::RDONLY, Mode::empty()).or_else(|e| match e {
            Errno::ACCESS => rustix::fs::openat(at, name, flags | OFlags::PATH, Mode::empty()),
            e => Err(e),
        })
    };
    let mut fd = open(CWD, OsStr::new("/")).map_err(|e| io_error(shown, "open its directory", e))?;
    for part in dir.components() {
        match part {
            Component::RootDir => {}
            Component::Normal(name) => {
                fd = open(fd.as_fd(), name).map_err(|e| match e {
                    Errno::LOOP | Errno::NOTDIR => StoreError::Replaced(shown.to_path_buf()),
                    e => io_error(shown, "open its directory", e),
                })?;
            }
            // canonicalize gives none of these.
            _ => return Err(StoreError::Replaced(shown.to_path_buf())),
        }
    }
    Ok(fd)
}

/// What is at `name` in `dir` now, without following a symlink.
fn stat_name(dir: &OwnedFd, name: &OsStr, shown: &Path) -> Result<Stat, StoreError> {
    rustix::fs::statat(dir, name, AtFlags::SYMLINK_NOFOLLOW).map_err(|e| open_error(shown, e))
}

/// An error opening the keyring: a symlink where the resolved file was is a swap.
fn open_error(shown: &Path, e: Errno) -> StoreError {
    match e {
        Errno::LOOP => StoreError::Replaced(shown.to_path_buf()),
        e => not_loaded(shown, &e.into()),
    }
}

fn not_loaded(shown: &Path, e: &io::Error) -> StoreError {
    StoreError::Load(KeyringError::new(KeyringErrorKind::Io(e.kind())).in_file(shown))
}

fn io_error(shown: &Path, doing: &'static str, e: Errno) -> StoreError {
    StoreError::Io { path: shown.to_path_buf(), doing, error: e.into() }
}

fn same_file(a: &Stat, b: &Stat) -> bool {
    (a.st_dev, a.st_ino) == (b.st_dev, b.st_ino)
}

/// Makes a rename or link durable; a directory that cannot be synced is not an error.
fn sync_dir(dir: &OwnedFd) {
    let _ = rustix::fs::fsync(dir);
}
