//! The keyring file's writer (batv_core::store): created whole and never over anything, and
//! replaced only where the locked file is, whatever happens to the path in between.
#![cfg(unix)]

use batv_core::store::{self, KeyringLock, StoreError};
use batv_core::{Key, Keyring, KeyringErrorKind, Scheme};
use batv_test_support::TempDir;
use std::fs;
use std::os::unix::fs::{symlink, MetadataExt};

const ONE: &str = "key 1 hmac-sha256 text:the store test's first key\n";

fn names(dir: &TempDir) -> Vec<String> {
    let mut v: Vec<String> =
        fs::read_dir(dir.path()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
    v.sort();
    v
}

fn another() -> Keyring {
    Keyring::with_key(Key::new(7, Scheme::HmacSha256, b"another keyring's secret bytes!!").unwrap())
}

#[test]
fn create_writes_a_private_file_and_never_replaces_anything() {
    let dir = TempDir::new("store-create");
    let path = dir.join("batv.keys");
    let ring = Keyring::generate().unwrap();
    store::create(&path, &ring).unwrap();
    assert_eq!(fs::metadata(&path).unwrap().mode() & 0o7777, 0o600);
    let text = fs::read_to_string(&path).unwrap();
    assert_eq!(Keyring::load(&path).unwrap().signing_key().number(), ring.signing_key().number());

    assert!(matches!(store::create(&path, &another()), Err(StoreError::Exists(_))));
    assert_eq!(fs::read_to_string(&path).unwrap(), text, "create replaced a keyring");

    // A dangling symlink is something too: nothing is created where it points.
    let link = dir.join("link.keys");
    symlink(dir.join("nowhere"), &link).unwrap();
    assert!(matches!(store::create(&link, &another()), Err(StoreError::Exists(_))));
    assert!(!dir.join("nowhere").exists());
    assert_eq!(names(&dir), ["batv.keys", "link.keys"], "a temporary file was left");
}

#[test]
fn a_replace_through_a_symlink_writes_its_target_and_keeps_the_link() {
    let dir = TempDir::new("store-link");
    let target = dir.write_private("real.keys", ONE);
    let link = dir.join("link.keys");
    symlink("real.keys", &link).unwrap();
    let lock = KeyringLock::acquire(&link).unwrap();
    assert_eq!(lock.keyring().signing_key().number(), 1);
    assert_eq!(lock.resolved_path(), fs::canonicalize(&target).unwrap());
    lock.replace(&another()).unwrap();
    drop(lock);
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    assert_eq!(Keyring::load(&target).unwrap().signing_key().number(), 7);
    assert_eq!(names(&dir), ["link.keys", "real.keys"]);
}

/// The link is swapped for one to another file after the keyring was locked and loaded: the
/// replace still writes the keyring it loaded, and the other file is not touched.
#[test]
fn a_symlink_swapped_after_the_load_changes_nothing_that_is_written() {
    let dir = TempDir::new("store-swap");
    let keys = dir.write_private("batv.keys", ONE);
    let victim = dir.join("victim");
    fs::write(&victim, "root:x:0:0:root:/root:/bin/bash\n").unwrap();
    let link = dir.join("link.keys");
    symlink(&keys, &link).unwrap();
    let lock = KeyringLock::acquire(&link).unwrap();
    fs::remove_file(&link).unwrap();
    symlink(&victim, &link).unwrap();
    lock.replace(&another()).unwrap();
    assert_eq!(fs::read_to_string(&victim).unwrap(), "root:x:0:0:root:/root:/bin/bash\n");
    assert_eq!(Keyring::load(&keys).unwrap().signing_key().number(), 7);
}

/// Another program renames a file over the name between the load and the replace: the replace
/// refuses, leaves that file as it is, and removes its temporary file.
#[test]
fn a_file_replaced_after_the_load_is_not_overwritten() {
    let dir = TempDir::new("store-replaced");
    let keys = dir.write_private("batv.keys", ONE);
    let lock = KeyringLock::acquire(&keys).unwrap();
    let theirs = dir.write_private("theirs", "key 3 hmac-sha1 text:written by another program\n");
    fs::rename(&theirs, &keys).unwrap();
    let e = lock.replace(&another()).unwrap_err();
    assert!(matches!(e, StoreError::Replaced(_)), "{e}");
    assert!(e.to_string().contains("nothing was written"), "{e}");
    assert!(fs::read_to_string(&keys).unwrap().contains("written by another program"));
    assert_eq!(names(&dir), ["batv.keys"]);

    // A symlink put in its place is refused the same way, and not followed.
    drop(lock);
    let lock = KeyringLock::acquire(&keys).unwrap();
    let elsewhere = dir.write_private("elsewhere", ONE);
    fs::remove_file(&keys).unwrap();
    symlink(&elsewhere, &keys).unwrap();
    assert!(matches!(lock.replace(&another()), Err(StoreError::Replaced(_))));
    assert_eq!(fs::read_to_string(&elsewhere).unwrap(), ONE);
}

#[test]
fn a_missing_file_or_one_that_is_not_a_regular_file_is_a_load_error() {
    let dir = TempDir::new("store-odd");
    match KeyringLock::acquire(dir.join("absent")) {
        Err(StoreError::Load(e)) => assert_eq!(e.kind, KeyringErrorKind::Io(std::io::ErrorKind::NotFound)),
        other => panic!("{other:?}"),
    }
    match KeyringLock::acquire(dir.path()) {
        Err(StoreError::Load(e)) => assert_eq!(e.kind, KeyringErrorKind::NotAFile),
        other => panic!("{other:?}"),
    }
    // A FIFO is never opened, so nothing waits for a writer.
    let fifo = dir.join("fifo");
    assert!(std::process::Command::new("mkfifo").arg(&fifo).status().unwrap().success());
    match KeyringLock::acquire(&fifo) {
        Err(StoreError::Load(e)) => assert_eq!(e.kind, KeyringErrorKind::NotAFile),
        other => panic!("{other:?}"),
    }
}

/// The lock is exclusive: a second acquire waits until the first guard is dropped, then loads
/// the file the first one wrote.
#[test]
fn a_second_lock_waits_and_then_reads_what_the_first_wrote() {
    let dir = TempDir::new("store-wait");
    let keys = dir.write_private("batv.keys", ONE);
    let first = KeyringLock::acquire(&keys).unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    let waiter = {
        let keys = keys.clone();
        std::thread::spawn(move || {
            let second = KeyringLock::acquire(&keys).unwrap();
            tx.send(second.keyring().signing_key().number()).unwrap();
        })
    };
    first.replace(&another()).unwrap();
    drop(first);
    assert_eq!(rx.recv().unwrap(), 7);
    waiter.join().unwrap();
}
