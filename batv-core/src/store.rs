//! Writing the keyring file (docs/scheme.md, "Keyring file"): a new keyring appears whole or not
//! at all, and a change replaces only the file that was locked and loaded.
//!
//! Both work relative to the file's directory, opened once from the path resolved once: a
//! symlink or directory swapped by another user afterwards changes nothing that is written.

use crate::error::{KeyringError, KeyringErrorKind};
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

/// How often [`KeyringLock::acquire`] starts again because the file was replaced while it
/// waited; only a file replaced without end (by something that takes no lock) exhausts it.
const LOCK_ATTEMPTS: usize = 1000;

/// The extended attribute that holds a file's POSIX access ACL.
const ACCESS_ACL: &str = "system.posix_acl_access";

/// Why a keyring file could not be created, locked or replaced. Never holds a secret.
#[derive(Debug)]
#[non_exhaustive]
pub enum StoreError {
    /// The keyring could not be loaded: it is missing, not a regular file, open to other users
    /// or malformed.
    Load(KeyringError),
    /// [`create`] found something at the path already (a file, or a symlink, even a dangling one).
    Exists(PathBuf),
    /// The path no longer leads to the file that was locked and loaded (another program
    /// replaced it, or swapped a name on the way for a symlink); nothing was written.
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

/// An exclusive lock on a keyring file, and the keyring loaded from the locked file. A change
/// (`batv keygen --rotate`) holds it from its read to its [`replace`](KeyringLock::replace), so
/// that concurrent changes take turns and none loses another's key.
///
/// The lock is `flock` on the keyring itself, not on a file beside it, so that no extra file
/// appears in /etc. It is advisory: editors and scripts that take no lock are not held off.
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
    /// Resolves `path` once (a symlink is followed, and stays in place), opens its directory,
    /// and locks and loads the file there. A process that waited for the lock while another
    /// replaced the file starts again on the file now at the name.
    pub fn acquire(path: impl AsRef<Path>) -> Result<KeyringLock, StoreError> {
        let shown = path.as_ref();
        let resolved = std::fs::canonicalize(shown).map_err(|e| not_loaded(shown, &e))?;
        let (dir, name) = open_parent(&resolved, shown)?;
        // Through a symlink, what is wrong with the file (and the chmod that fixes it) names
        // the file itself: a chmod of the link would follow wherever it points by then.
        let named = match std::fs::symlink_metadata(shown) {
            Ok(m) if m.file_type().is_symlink() => resolved.as_path(),
            _ => shown,
        };
        let io = |doing, error| StoreError::Io { path: shown.to_path_buf(), doing, error };
        for _ in 0..LOCK_ATTEMPTS {
            // The type is looked at before the open, so that a device or FIFO is never opened;
            // O_NONBLOCK covers one swapped in between.
            let at_name = stat_name(&dir, &name, shown)?;
            if FileType::from_raw_mode(at_name.st_mode) != FileType::RegularFile {
                return Err(StoreError::Load(KeyringError::new(KeyringErrorKind::NotAFile).in_file(named)));
            }
            let flags = OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::NOCTTY | OFlags::CLOEXEC;
            // Read-write where allowed: NFS emulates flock with POSIX locks, whose exclusive form
            // needs a writable descriptor. Nothing is written through it.
            let fd = rustix::fs::openat(&dir, name.as_os_str(), flags | OFlags::RDWR, Mode::empty())
                .or_else(|_| rustix::fs::openat(&dir, name.as_os_str(), flags | OFlags::RDONLY, Mode::empty()))
                .map_err(|e| open_error(shown, e))?;
            let held = rustix::fs::fstat(&fd).map_err(|e| io("read its status", e.into()))?;
            if FileType::from_raw_mode(held.st_mode) != FileType::RegularFile {
                return Err(StoreError::Load(KeyringError::new(KeyringErrorKind::NotAFile).in_file(named)));
            }
            rustix::fs::flock(&fd, FlockOperation::LockExclusive)
                .map_err(|e| io("lock it for the change", e.into()))?;
            // Once the file locked is the one at the name, no other change can replace it until
            // this lock is released.
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

    /// The file's path with every symlink resolved: the name that [`replace`](Self::replace)
    /// writes.
    pub fn resolved_path(&self) -> &Path {
        &self.resolved
    }

    /// Replaces the locked file with `keyring`: a temporary file in the same directory (mode
    /// 0600, then the old file's owner, group, ACL and permissions masked to at most 0640),
    /// synced, then renamed over the name, so that a reader sees the old file or the new one,
    /// never half of one. Just before the rename the name must still hold the locked file;
    /// otherwise nothing is written and [`StoreError::Replaced`] says so. The lock is held until
    /// this guard is dropped.
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

    /// Gives the new file the old one's owner and group (an MTA's group may read the keyring),
    /// its access ACL, and its permissions masked to at most 0640 as the loader requires. The
    /// ACL goes first: chmod then sets the ACL's mask from the group bits, as it did on the old file.
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

/// Writes a new keyring file at `path` with mode 0600: a temporary file in the directory,
/// written and synced, then linked to the name, so that the file never exists half-written
/// (a reader that finds it finds all of it). Fails with [`StoreError::Exists`] rather than
/// replace anything: then another process made it first, and its keyring is the one to load.
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

/// A temporary file beside `name` in `dir`, created exclusively with mode 0600, holding the
/// keyring text, given its attributes by `finish`, and synced. Returns its name; removes it on
/// any failure.
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

/// The directory of an absolute resolved path, and the file's name in it.
fn open_parent(resolved: &Path, shown: &Path) -> Result<(OwnedFd, OsString), StoreError> {
    let (Some(dir), Some(name)) = (resolved.parent(), resolved.file_name()) else {
        return Err(StoreError::Load(KeyringError::new(KeyringErrorKind::NotAFile).in_file(shown)));
    };
    Ok((open_dir(dir, shown)?, name.to_os_string()))
}

/// Opens a resolved directory one name at a time, refusing to follow a symlink on the way: the
/// path was resolved once, so a symlink found now was swapped in since.
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

/// An error opening the keyring: a symlink where the resolved file was is a swap; the rest are
/// the loader's errors (missing, permission denied).
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

/// The file's POSIX access ACL, if it has one; a file system without extended attributes has none.
fn access_acl(file: BorrowedFd<'_>) -> io::Result<Option<Vec<u8>>> {
    for _ in 0..10 {
        let size = match rustix::fs::fgetxattr_query(file, ACCESS_ACL) {
            Ok(n) => n,
            Err(Errno::NODATA | Errno::OPNOTSUPP) => return Ok(None),
            Err(e) => return Err(e.into()),
        };
        let mut value = vec![0u8; size.max(1)];
        match rustix::fs::fgetxattr(file, ACCESS_ACL, &mut value[..]) {
            Ok(n) => {
                value.truncate(n);
                return Ok(Some(value));
            }
            Err(Errno::NODATA) => return Ok(None),
            // It grew between the two calls: ask again.
            Err(Errno::RANGE) => continue,
            Err(e) => return Err(e.into()),
        }
    }
    Err(io::Error::other("its ACL kept changing while it was read"))
}

/// Makes a rename or link durable; a directory that cannot be synced is not an error.
fn sync_dir(dir: &OwnedFd) {
    let _ = rustix::fs::fsync(dir);
}
