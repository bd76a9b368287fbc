//! The keyring file on disk: loading it, creating it (mode 0600, never over an existing file),
//! and rewriting it atomically for a key rotation.

use crate::{say, Fatal};
use batv_core::{Key, Keyring, KeyringError, KeyringErrorKind, Scheme};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

/// Where the keyring path came from: only the default may be created by `sign` unasked.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    /// `--keys FILE`.
    Option,
    /// `$BATV_KEYS`.
    Environment,
    /// Neither: `./batv.keys`.
    Default,
}

/// The keyring file a command uses, and who named it.
#[derive(Debug)]
pub struct KeyringPath {
    pub path: PathBuf,
    pub origin: Origin,
}

/// The default keyring, relative to the working directory.
pub const DEFAULT_PATH: &str = "./batv.keys";

impl KeyringPath {
    /// `--keys FILE`, else `$BATV_KEYS` unless it is empty, else `./batv.keys`.
    pub fn resolve(option: Option<PathBuf>) -> Result<KeyringPath, Fatal> {
        match option {
            Some(p) if p.as_os_str().is_empty() => {
                Err(Fatal::Message("--keys names an empty path".into()))
            }
            Some(path) => Ok(KeyringPath {
                path,
                origin: Origin::Option,
            }),
            None => Ok(
                match std::env::var_os("BATV_KEYS").filter(|v| !v.is_empty()) {
                    Some(v) => KeyringPath {
                        path: v.into(),
                        origin: Origin::Environment,
                    },
                    None => KeyringPath {
                        path: DEFAULT_PATH.into(),
                        origin: Origin::Default,
                    },
                },
            ),
        }
    }

    /// The command that creates this keyring, ready to paste into a shell.
    fn keygen_command(&self) -> String {
        match self.origin {
            Origin::Default => "batv keygen".into(),
            Origin::Option | Origin::Environment => {
                format!(
                    "batv keygen --keys {}",
                    shell_word(&self.path.display().to_string())
                )
            }
        }
    }

    /// Who named the file, for a message about a missing one.
    fn named_by(&self) -> &'static str {
        match self.origin {
            Origin::Option => " (named by --keys)",
            Origin::Environment => " (named by $BATV_KEYS)",
            Origin::Default => "",
        }
    }

    /// The one-line message for a keyring that does not exist: the path, who named it, and
    /// the command that creates it. `also` is said between the two.
    fn missing(&self, e: &KeyringError, also: &str) -> Fatal {
        let mut m = format!(
            "{e}{}{also}; create it with: {}",
            self.named_by(),
            self.keygen_command()
        );
        if self.origin == Origin::Default {
            m.push_str(" (or name yours with --keys FILE or $BATV_KEYS)");
        }
        Fatal::Message(m)
    }
}

/// `word` quoted for a POSIX shell when it needs quoting.
fn shell_word(word: &str) -> String {
    let plain = |c: char| c.is_ascii_alphanumeric() || "/._-+,:@%=".contains(c);
    if !word.is_empty() && word.chars().all(plain) {
        word.to_owned()
    } else {
        format!("'{}'", word.replace('\'', "'\\''"))
    }
}

fn is_missing(e: &KeyringError) -> bool {
    matches!(e.kind, KeyringErrorKind::Io(io::ErrorKind::NotFound))
}

/// Loads the keyring, or explains why not (the message names the file and line, never a key).
pub fn load(keys: &KeyringPath) -> Result<Keyring, Fatal> {
    Keyring::load(&keys.path).map_err(|e| {
        if is_missing(&e) {
            keys.missing(&e, "")
        } else {
            Fatal::Message(e.to_string())
        }
    })
}

/// The keyring for `sign`: loaded, or created when it is the default `./batv.keys` and does not
/// exist yet (a new installation needs no set-up). A keyring named by `--keys` or `$BATV_KEYS`
/// is never created here: a mistyped path on a signing host would sign with a fresh key that
/// no verifier has, and every bounce to those senders would be rejected.
pub fn load_or_create(keys: &KeyringPath) -> Result<Keyring, Fatal> {
    let path = keys.path.as_path();
    match Keyring::load(path) {
        Err(e) if is_missing(&e) && keys.origin != Origin::Default => {
            return Err(keys.missing(&e, ", and sign creates only ./batv.keys by itself"));
        }
        Err(e) if is_missing(&e) => {}
        other => return other.map_err(|e| Fatal::Message(e.to_string())),
    }
    let keyring = Keyring::generate().map_err(|e| Fatal::Message(e.to_string()))?;
    match create(path, &keyring) {
        Ok(()) => {
            let key = keyring.signing_key();
            say(format_args!(
                "created a new keyring {} (mode 0600, key {} {}): tags verify only with this \
                 file, so keep it private and back it up",
                path.display(),
                key.number(),
                key.scheme()
            ));
            Ok(keyring)
        }
        // Another process created it between our look and our create: use theirs.
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load(keys),
        Err(e) => Err(Fatal::Message(format!(
            "no keyring at {} and cannot create one there: {e}",
            path.display()
        ))),
    }
}

/// `batv keygen`: a new keyring with one key of `scheme`, refusing to touch an existing file.
pub fn keygen_new(keys: &KeyringPath, scheme: Scheme) -> Result<(), Fatal> {
    let path = keys.path.as_path();
    let key = Key::generate(1, scheme).map_err(|e| Fatal::Message(format!("keyring: {e}")))?;
    let keyring = Keyring::with_key(key);
    match create(path, &keyring) {
        Ok(()) => {
            say(format_args!(
                "created keyring {} (mode 0600) with key 1 ({scheme}), which signs",
                path.display()
            ));
            Ok(())
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Err(Fatal::Message(format!(
            "keyring {} already exists; leaving it alone. To add a new signing key, run \
             `batv keygen --rotate`",
            path.display()
        ))),
        Err(e) => Err(Fatal::Message(format!(
            "cannot create keyring {}: {e}",
            path.display()
        ))),
    }
}

/// A change `batv keygen` makes to an existing keyring.
#[derive(Clone, Copy, Debug)]
pub enum Change {
    /// `--rotate`: a new key under a free number, which signs from now on (one host).
    Rotate(Option<Scheme>),
    /// `--add`: a new key under a free number, which verifies but does not sign yet.
    Add(Option<Scheme>),
    /// `--promote N`: key N signs from now on.
    Promote(u8),
    /// `--prune`: remove the keys whose tags can no longer verify.
    Prune,
}

/// `batv keygen --rotate|--add|--promote|--prune`: changes the keyring as the core says and
/// replaces the file atomically, keeping its owner, group and (at most 0640) permissions.
/// Concurrent changes take turns, so each one starts from the file the previous one wrote.
pub fn keygen_change(keys: &KeyringPath, change: Change, now: i64) -> Result<(), Fatal> {
    let path = keys.path.as_path();
    let not_loaded = |e: KeyringError| {
        if is_missing(&e) {
            keys.missing(&e, "; there is nothing to change")
        } else {
            Fatal::Message(e.to_string())
        }
    };
    // Held until the new file has been renamed into place (dropped at the end of this function).
    // When the file cannot even be opened, the loader says why in its own words.
    let _lock = lock_keyring(path).map_err(|e| match Keyring::load(path) {
        Err(e) => not_loaded(e),
        Ok(_) => Fatal::Message(format!("cannot lock keyring {} for the change: {e}", path.display())),
    })?;
    let old = Keyring::load(path).map_err(&not_loaded)?;
    let scheme = |s: Option<Scheme>| s.unwrap_or(old.signing_key().scheme());
    let new = match change {
        Change::Rotate(s) => old.rotated_with(scheme(s), now),
        Change::Add(s) => old.added(scheme(s), now),
        Change::Promote(n) => old.promoted(n, now),
        Change::Prune => Ok(old.pruned(now)),
    }
    .map_err(|e| Fatal::Message(format!("keyring {}: {}; the keyring was not changed", path.display(), e.kind)))?;
    let gone: Vec<u8> = old.keys().map(|k| k.number()).filter(|&n| new.key(n).is_none()).collect();
    if matches!(change, Change::Prune) && gone.is_empty() {
        say(format_args!("no key of {} is old enough to prune; nothing changed", path.display()));
        return Ok(());
    }
    replace(path, &new)
        .map_err(|e| Fatal::Message(format!("cannot rewrite keyring {}: {e}", path.display())))?;
    report(&old, &new, change, path, now);
    Ok(())
}

/// Standard error says what changed and what to do next.
fn report(old: &Keyring, new: &Keyring, change: Change, path: &Path, now: i64) {
    let signer = new.signing_key();
    let window = u32::from(new.lifetime_days()) + u32::from(new.skew_days());
    match change {
        Change::Rotate(_) | Change::Add(_) => {
            // The number the change took; it succeeded, so there was one.
            let Ok(n) = old.new_key_number(now) else { return };
            let role = if matches!(change, Change::Rotate(_)) {
                "it signs from now on".to_string()
            } else {
                format!("it verifies, and signs once promoted: batv keygen --promote {n}, on every host once all have it")
            };
            let scheme = new.key(n).map(|k| k.scheme()).unwrap_or(signer.scheme());
            say(format_args!("added key {n} ({scheme}) to {}; {role}", path.display()));
            if old.key(n).is_some() {
                say(format_args!(
                    "every other key number was taken: the new key {n} replaced the old key {n}, which stopped signing more than {window} days ago, so none of its tags could verify any more"
                ));
            }
        }
        Change::Promote(n) if n == old.signing_key().number() => {
            say(format_args!("key {n} already signs in {}; nothing else changed", path.display()));
        }
        Change::Promote(n) => say(format_args!(
            "key {n} signs from now on in {}; key {} still verifies, and may be pruned after {window} days",
            path.display(),
            old.signing_key().number()
        )),
        Change::Prune => {
            for k in old.keys().filter(|k| new.key(k.number()).is_none()) {
                say(format_args!("removed key {} from {}: none of its tags can verify any more", k.number(), path.display()));
            }
        }
    }
    if matches!(change, Change::Rotate(_)) {
        let others: Vec<String> =
            new.keys().filter(|k| k.number() != signer.number()).map(|k| k.number().to_string()).collect();
        if !others.is_empty() {
            say(format_args!(
                "key(s) {} still verify; batv keygen --prune removes them after {window} days (lifetime + skew)",
                others.join(", ")
            ));
        }
    }
}

/// How often [`lock_keyring`] starts again because the file was replaced while it waited;
/// only a file replaced without end (by something that takes no lock) exhausts it.
const LOCK_ATTEMPTS: usize = 1000;

/// An exclusive lock on the keyring file that is at `path` now, held until the returned file
/// is closed; `batv keygen --rotate` holds it from its read to its rename.
///
/// The lock is on the keyring itself, not on a lock file beside it, so that no extra file
/// appears in /etc. That takes one check: a rotation replaces the file by rename, so a process
/// that waited for the lock may get it on the old file, which is no longer the keyring and
/// guards nothing. It then starts again on the file now at the path. Once the file it locked
/// is still the one at the path, no other rotation can replace it until this lock is released.
/// Editors and scripts that take no lock are not held off (advisory lock).
fn lock_keyring(path: &Path) -> io::Result<File> {
    for _ in 0..LOCK_ATTEMPTS {
        // Read-write where allowed: NFS emulates flock with POSIX locks, whose exclusive form
        // needs a writable descriptor. Nothing is written through it.
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .open(path)
            .or_else(|_| File::open(path))?;
        file.lock()?;
        if is_same_file(&file, &fs::metadata(path)?)? {
            return Ok(file);
        }
    }
    Err(io::Error::other(
        "it was replaced again and again while waiting for the lock",
    ))
}

#[cfg(unix)]
fn is_same_file(file: &File, at_path: &fs::Metadata) -> io::Result<bool> {
    use std::os::unix::fs::MetadataExt;
    let held = file.metadata()?;
    Ok((held.dev(), held.ino()) == (at_path.dev(), at_path.ino()))
}

// Without inode numbers there is no check: off Unix (not a target of this command), concurrent
// rotations are not guarded against one renaming a new file over another's locked one.
#[cfg(not(unix))]
fn is_same_file(_file: &File, _at_path: &fs::Metadata) -> io::Result<bool> {
    Ok(true)
}

/// Writes a new keyring file with mode 0600; fails with `AlreadyExists` rather than replace
/// anything. A partly written file is removed.
fn create(path: &Path, keyring: &Keyring) -> io::Result<()> {
    let mut file = new_private_file(path)?;
    let written = file
        .write_all(keyring.to_file_text().as_bytes())
        .and_then(|()| file.sync_all());
    if let Err(e) = written {
        drop(file);
        let _ = fs::remove_file(path);
        return Err(e);
    }
    Ok(())
}

#[cfg(unix)]
fn new_private_file(path: &Path) -> io::Result<File> {
    use std::os::unix::fs::OpenOptionsExt;
    OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
}

#[cfg(not(unix))]
fn new_private_file(path: &Path) -> io::Result<File> {
    OpenOptions::new().write(true).create_new(true).open(path)
}

/// Replaces the keyring file: a private temporary file in the same directory, then `rename`,
/// so a reader (an MTA) sees the old file or the new one, never half of one.
fn replace(path: &Path, keyring: &Keyring) -> io::Result<()> {
    // Rename over the real file, not over a symlink that points to it.
    let target = fs::canonicalize(path)?;
    let old_meta = fs::metadata(&target)?;
    let dir = target
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."));
    let name = target
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let temp = dir.join(format!(".{name}.batv-new.{}", std::process::id()));

    let result = (|| {
        let mut file = new_private_file(&temp)?;
        file.write_all(keyring.to_file_text().as_bytes())?;
        keep_owner_and_mode(&file, &old_meta)?;
        file.sync_all()?;
        drop(file);
        fs::rename(&temp, &target)?;
        // Make the rename itself durable; a directory that cannot be synced is not an error.
        if let Ok(d) = File::open(&dir) {
            let _ = d.sync_all();
        }
        Ok(())
    })();
    if result.is_err() {
        let _ = fs::remove_file(&temp);
    }
    result
}

/// Gives the new file the old one's owner and group (an MTA's group may read the keyring) and
/// its permissions, masked to at most 0640 as the loader requires.
#[cfg(unix)]
fn keep_owner_and_mode(file: &File, old: &fs::Metadata) -> io::Result<()> {
    use std::os::unix::fs::{MetadataExt, PermissionsExt};
    let now = file.metadata()?;
    if (now.uid(), now.gid()) != (old.uid(), old.gid()) {
        std::os::unix::fs::fchown(file, Some(old.uid()), Some(old.gid()))?;
    }
    file.set_permissions(fs::Permissions::from_mode(old.mode() & 0o640))
}

#[cfg(not(unix))]
fn keep_owner_and_mode(_file: &File, _old: &fs::Metadata) -> io::Result<()> {
    Ok(())
}
