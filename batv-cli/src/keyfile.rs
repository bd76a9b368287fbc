//! The keyring file on disk: loading it, creating it (mode 0600, never over an existing file),
//! and rewriting it atomically for a key rotation.

use crate::{say, Fatal};
use batv_core::{Key, Keyring, KeyringError, KeyringErrorKind, Scheme};
use std::fs::{self, File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};

fn is_missing(e: &KeyringError) -> bool {
    matches!(e.kind, KeyringErrorKind::Io(io::ErrorKind::NotFound))
}

/// Loads the keyring, or explains why not (the message names the file and line, never a key).
pub fn load(path: &Path) -> Result<Keyring, Fatal> {
    Keyring::load(path).map_err(|e| {
        if is_missing(&e) {
            Fatal::Message(format!(
                "{e}; create one with `batv keygen` (or name yours with --keys FILE or $BATV_KEYS)"
            ))
        } else {
            Fatal::Message(e.to_string())
        }
    })
}

/// Loads the keyring, creating a new one when there is none (the embedded default of `sign`).
pub fn load_or_create(path: &Path) -> Result<Keyring, Fatal> {
    match Keyring::load(path) {
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
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => load(path),
        Err(e) => Err(Fatal::Message(format!(
            "no keyring at {} and cannot create one there: {e}",
            path.display()
        ))),
    }
}

/// `batv keygen`: a new keyring with one key of `scheme`, refusing to touch an existing file.
pub fn keygen_new(path: &Path, scheme: Scheme) -> Result<(), Fatal> {
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

/// `batv keygen --rotate`: adds the next key number, makes it the sign key, and replaces the
/// file atomically, keeping its owner, group and (at most 0640) permissions.
pub fn keygen_rotate(path: &Path) -> Result<(), Fatal> {
    let old = Keyring::load(path).map_err(|e| {
        if is_missing(&e) {
            Fatal::Message(format!(
                "{e}; there is nothing to rotate: create it with `batv keygen`"
            ))
        } else {
            Fatal::Message(e.to_string())
        }
    })?;
    let replaced = old.rotation_replaces();
    let new = old.rotated().map_err(|e| Fatal::Message(e.to_string()))?;
    replace(path, &new)
        .map_err(|e| Fatal::Message(format!("cannot rewrite keyring {}: {e}", path.display())))?;

    let key = new.signing_key();
    let others: Vec<String> = new
        .keys()
        .filter(|k| k.number() != key.number())
        .map(|k| k.number().to_string())
        .collect();
    say(format_args!(
        "added key {} ({}) to {}; it signs from now on",
        key.number(),
        key.scheme(),
        path.display()
    ));
    if let Some(n) = replaced {
        say(format_args!(
            "the new key {n} replaced the old key {n}: tags signed with the old key {n} no \
             longer verify"
        ));
    }
    if !others.is_empty() {
        say(format_args!(
            "key(s) {} still verify; remove an old key line only after {} days (lifetime + skew)",
            others.join(", "),
            u32::from(new.lifetime_days()) + u32::from(new.skew_days())
        ));
    }
    Ok(())
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
