//! The cached keyring of long-running processes: no disk access within the interval, a reload
//! when the file changes, and an error, never the old keys, when the file goes bad.
#![cfg(unix)]

use batv_core::{CachedKeyring, Keyring, KeyringCache, KeyringErrorKind};
use batv_test_support::{set_mode, TempDir};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

const ONE: &str = "key 1 hmac-sha1 text:first secret\n";
const TWO: &str = "key 2 hmac-sha1 text:second secret\n";

/// Replaces the file as an administrator's script should: write aside, rename over.
fn install(path: &Path, text: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, text).unwrap();
    set_mode(&tmp, 0o600);
    std::fs::rename(&tmp, path).unwrap();
}

fn sign_key(ring: &Keyring) -> u8 {
    ring.signing_key().number()
}

#[test]
fn within_the_interval_the_disk_is_not_looked_at() {
    let dir = TempDir::new("cache-once");
    let path = dir.join("batv.keys");
    install(&path, ONE);
    let cache = CachedKeyring::with_interval(&path, Duration::from_secs(3600));
    let a = cache.get().unwrap();
    install(&path, TWO);
    std::fs::remove_file(&path).unwrap();
    assert!(Arc::ptr_eq(&a, &cache.get().unwrap()));
}

#[test]
fn a_removed_or_broken_file_is_an_error_not_the_old_keys() {
    let dir = TempDir::new("cache-broken");
    let path = dir.join("batv.keys");
    install(&path, ONE);
    let cache = CachedKeyring::with_interval(&path, Duration::ZERO);
    assert_eq!(sign_key(&cache.get().unwrap()), 1);
    std::fs::remove_file(&path).unwrap();
    let err = cache.get().unwrap_err();
    assert_eq!(err.kind, KeyringErrorKind::Io(std::io::ErrorKind::NotFound));
    assert_eq!(err.path.as_deref(), Some(path.as_path()));
    install(&path, "key 1 hmac-md5 text:x\n");
    assert_eq!(cache.get().unwrap_err().line, Some(1));
    install(&path, TWO);
    set_mode(&path, 0o604);
    assert!(matches!(cache.get().unwrap_err().kind, KeyringErrorKind::InsecurePermissions { .. }));
    set_mode(&path, 0o640);
    assert_eq!(sign_key(&cache.get().unwrap()), 2);
}

#[test]
fn an_unchanged_old_file_is_not_parsed_again_and_a_rewritten_one_is() {
    let dir = TempDir::new("cache-reload");
    let path = dir.join("batv.keys");
    install(&path, ONE);
    let old = SystemTime::now() - Duration::from_secs(60);
    std::fs::File::options().write(true).open(&path).unwrap().set_modified(old).unwrap();
    // The change time cannot be set back: wait until the cache trusts the file's stamp (a file
    // changed in the last two seconds is read again at every check).
    std::thread::sleep(Duration::from_secs(3));
    let cache = CachedKeyring::with_interval(&path, Duration::ZERO);
    let a = cache.get().unwrap();
    assert!(Arc::ptr_eq(&a, &cache.get().unwrap()), "an unchanged file is not parsed again");
    // Same size and inode, rewritten in place: the stamp still moves.
    std::fs::write(&path, ONE.replace("first", "fir5t")).unwrap();
    let b = cache.get().unwrap();
    assert!(!Arc::ptr_eq(&a, &b));
    assert_ne!(a.sign_at("u@example.com", 0).unwrap(), b.sign_at("u@example.com", 0).unwrap());
}

#[test]
fn paths_are_cached_separately() {
    let dir = TempDir::new("cache-paths");
    let (p1, p2) = (dir.join("one.keys"), dir.join("two.keys"));
    install(&p1, ONE);
    install(&p2, TWO);
    let cache = KeyringCache::new();
    assert_eq!(sign_key(&cache.get(&p1).unwrap()), 1);
    assert_eq!(sign_key(&cache.get(&p2).unwrap()), 2);
    assert!(Arc::ptr_eq(&cache.get(&p1).unwrap(), &cache.get(&p1).unwrap()));
    assert!(cache.get(&dir.join("missing.keys")).is_err());
}
