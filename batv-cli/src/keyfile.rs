//! The keyring file on disk: loading it, creating it (mode 0600, never over an existing file),
//! and rewriting it atomically for a key rotation.

use crate::{say, Fatal};
use batv_core::store::{self, KeyringLock, StoreError};
use batv_core::{Key, Keyring, KeyringError, KeyringErrorKind, Scheme};
use std::io;
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
    match store::create(path, &keyring) {
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
        // Another process created it between our look and our create: use theirs, which was
        // written whole before it appeared.
        Err(StoreError::Exists(_)) => load(keys),
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
    match store::create(path, &keyring) {
        Ok(()) => {
            say(format_args!(
                "created keyring {} (mode 0600) with key 1 ({scheme}), which signs",
                path.display()
            ));
            Ok(())
        }
        Err(StoreError::Exists(_)) => Err(Fatal::Message(format!(
            "keyring {} already exists; leaving it alone. To add a new signing key, run \
             `batv keygen --rotate`",
            path.display()
        ))),
        Err(e) => Err(Fatal::Message(e.to_string())),
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
    let lock = KeyringLock::acquire(path).map_err(|e| match e {
        StoreError::Load(e) => not_loaded(e),
        e => Fatal::Message(e.to_string()),
    })?;
    let old = lock.keyring();
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
    lock.replace(&new).map_err(|e| match e {
        StoreError::Replaced(_) => Fatal::Message(e.to_string()),
        e => Fatal::Message(format!("{e}; the keyring was not changed")),
    })?;
    report(old, &new, change, path, now);
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
