//! Who and what a keyring file may be (docs/scheme.md, "Keyring file"): a FIFO, socket or device
//! is refused at once, never waited on; so is a file owned by a user who is neither root nor the
//! process's, and one whose ACL lets a named user use it or a named group write it.
#![cfg(unix)]

use batv_core::{AclGrant, CachedKeyring, Keyring, KeyringCache, KeyringError, KeyringErrorKind as K};
use batv_test_support::{set_mode, TempDir};
use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::mpsc;
use std::time::Duration;

const TEXT: &str = "key 1 hmac-sha256 text:access test secret\n";

/// How long a load may take before the test calls it hung. Not a measure of speed: a load
/// that does not block returns in microseconds, one that blocks never returns at all.
const HUNG: Duration = Duration::from_secs(20);

/// A way to load a keyring file.
type Load = fn(&Path) -> Result<(), KeyringError>;

/// The error of `load(path)`, run on a thread that the test does not wait on for good: the
/// code before the fix blocked in open(2) on a FIFO until a writer came.
fn load_error_without_hanging(path: &Path, load: Load) -> KeyringError {
    let (tx, rx) = mpsc::channel();
    let p = path.to_path_buf();
    std::thread::spawn(move || {
        let _ = tx.send(load(&p));
    });
    match rx.recv_timeout(HUNG) {
        Ok(answer) => answer.expect_err("a FIFO was loaded as a keyring"),
        Err(_) => {
            // Release the blocked open (a writer arrives, then leaves: the reader sees EOF).
            let _ = std::fs::OpenOptions::new().write(true).open(path);
            panic!("loading the FIFO {} blocked for {HUNG:?}", path.display());
        }
    }
}

fn fifo(dir: &TempDir) -> std::path::PathBuf {
    let path = dir.join("batv.keys");
    rustix::fs::mkfifoat(rustix::fs::CWD, &path, rustix::fs::Mode::from_raw_mode(0o600)).expect("mkfifo");
    path
}

#[test]
fn a_fifo_is_not_a_regular_file_and_no_face_waits_on_it() {
    let dir = TempDir::new("fifo");
    let path = fifo(&dir);
    let loaders: [(&str, Load); 3] = [
        ("Keyring::load", |p| Keyring::load(p).map(drop)),
        ("CachedKeyring", |p| CachedKeyring::with_interval(p, Duration::ZERO).get().map(drop)),
        ("KeyringCache", |p| KeyringCache::new().get(p).map(drop)),
    ];
    for (name, load) in loaders {
        let e = load_error_without_hanging(&path, load);
        assert_eq!(e.kind, K::NotAFile, "{name}: {e}");
        assert_eq!(e.to_string(), format!("keyring {}: not a regular file", path.display()), "{name}");
    }
}

#[test]
fn a_socket_and_a_device_are_not_regular_files() {
    let dir = TempDir::new("special");
    let socket = dir.join("batv.keys");
    let _listener = std::os::unix::net::UnixListener::bind(&socket).expect("bind a Unix socket");
    for path in [socket.as_path(), Path::new("/dev/null")] {
        let e = Keyring::load(path).expect_err("a special file was loaded");
        assert_eq!(e.kind, K::NotAFile, "{}: {e}", path.display());
    }
}

#[test]
fn an_owner_other_than_root_or_this_user_is_refused() {
    let dir = TempDir::new("owner");
    let path = dir.write_private("batv.keys", TEXT);
    let euid = rustix::process::geteuid().as_raw();
    assert_eq!(std::fs::metadata(&path).unwrap().uid(), euid);
    Keyring::load(&path).expect("a file of this process's user is accepted");
    if euid != 0 {
        eprintln!("not root: cannot give the file to another user; only the accepted case ran");
        return;
    }
    for (uid, ok) in [(65_534, false), (1, false), (0, true)] {
        std::os::unix::fs::chown(&path, Some(uid), None).unwrap();
        match Keyring::load(&path) {
            Ok(_) => assert!(ok, "a file owned by uid {uid} was accepted"),
            Err(e) => {
                assert!(!ok, "a file owned by uid {uid} was refused: {e}");
                assert_eq!(e.kind, K::ForeignOwner { uid, euid });
                let shown = e.to_string();
                assert!(shown.contains(&format!("owned by uid {uid}")), "{shown}");
                assert!(shown.contains(&format!("chown root {}", path.display())), "{shown}");
                assert!(!shown.contains("access test secret"), "{shown}");
                // The cached loader (Exim, the milter) gives the same error.
                let cached = CachedKeyring::with_interval(&path, Duration::ZERO).get().unwrap_err();
                assert_eq!(cached.kind, e.kind);
            }
        }
    }
}

/// Linux's `system.posix_acl_access` value for these (tag, permission, id) entries.
fn acl(entries: &[(u16, u16, u32)]) -> Vec<u8> {
    let mut v = 2u32.to_le_bytes().to_vec();
    for &(tag, perm, id) in entries {
        v.extend(tag.to_le_bytes());
        v.extend(perm.to_le_bytes());
        v.extend(id.to_le_bytes());
    }
    v
}

const USER_OBJ: u16 = 0x01;
const USER: u16 = 0x02;
const GROUP_OBJ: u16 = 0x04;
const GROUP: u16 = 0x08;
const MASK: u16 = 0x10;
const OTHER: u16 = 0x20;
const UNDEFINED: u32 = u32::MAX;

/// An ACL on a real file, set as setfacl sets it. Mode 0640 before; the kernel then shows the
/// mask in the group bits.
#[cfg(target_os = "linux")]
#[test]
fn acl_grants_on_a_file_are_judged_by_the_one_rule() {
    let dir = TempDir::new("acl");
    let path = dir.write_private("batv.keys", TEXT);
    let cases = [
        ("named user read", vec![(USER, 4, 65_534), (MASK, 4, UNDEFINED)], Some(K::AclGrant(AclGrant::User { uid: 65_534, perm: 4 }))),
        ("named user read, masked out", vec![(USER, 4, 65_534), (MASK, 0, UNDEFINED)], None),
        ("named group read", vec![(GROUP, 4, 65_534), (MASK, 4, UNDEFINED)], None),
        ("named group write", vec![(GROUP, 6, 65_534), (MASK, 6, UNDEFINED)], Some(K::AclGrant(AclGrant::GroupWrite { gid: 65_534 }))),
        ("named group write, mask read", vec![(GROUP, 6, 65_534), (MASK, 4, UNDEFINED)], None),
    ];
    for (name, named, want) in cases {
        let mut entries = vec![(USER_OBJ, 6, UNDEFINED), (GROUP_OBJ, 4, UNDEFINED), (OTHER, 0, UNDEFINED)];
        entries.extend(named);
        entries.sort_by_key(|e| e.0);
        let file = std::fs::File::open(&path).unwrap();
        match rustix::fs::fsetxattr(&file, "system.posix_acl_access", &acl(&entries), rustix::fs::XattrFlags::empty()) {
            Ok(()) => {}
            Err(rustix::io::Errno::OPNOTSUPP) => {
                eprintln!("{}: this file system has no ACLs; the ACL cases did not run", path.display());
                return;
            }
            Err(e) => panic!("{name}: setting the ACL: {e}"),
        }
        match (Keyring::load(&path), want) {
            (Ok(_), None) => {}
            (Err(e), Some(kind)) => {
                assert_eq!(e.kind, kind, "{name}: {e}");
                let shown = e.to_string();
                assert!(shown.contains("65534") && shown.contains("setfacl"), "{name}: {shown}");
                assert!(!shown.contains("access test secret"), "{shown}");
            }
            (got, want) => panic!("{name}: got {:?}, want {want:?}", got.map(drop)),
        }
        let _ = rustix::fs::fremovexattr(&file, "system.posix_acl_access");
        set_mode(&path, 0o640);
    }
}

/// The rule itself, entry by entry: what an entry allows is its permission within the mask.
#[test]
fn acl_entries_are_judged_within_the_mask() {
    use batv_core::internals::judge_acl;
    let base = [(USER_OBJ, 6, UNDEFINED), (GROUP_OBJ, 4, UNDEFINED), (OTHER, 0, UNDEFINED)];
    let with = |named: &[(u16, u16, u32)]| {
        let mut e = base.to_vec();
        e.extend_from_slice(named);
        e.sort_by_key(|e| e.0);
        acl(&e)
    };
    // The owner, the file's group (read, or read and write: the mode check judges that) and
    // others are not named entries.
    assert_eq!(judge_acl(&acl(&base)), Ok(()));
    assert_eq!(judge_acl(&acl(&[(USER_OBJ, 7, UNDEFINED), (GROUP_OBJ, 6, UNDEFINED), (OTHER, 4, UNDEFINED)])), Ok(()));
    for perm in [4, 2, 1, 7] {
        let got = judge_acl(&with(&[(USER, perm, 1000), (MASK, 7, UNDEFINED)]));
        assert_eq!(got, Err(AclGrant::User { uid: 1000, perm: perm as u8 }));
    }
    let cases = [
        // No mask entry: nothing is masked.
        (vec![(USER, 4, 1000)], Err(AclGrant::User { uid: 1000, perm: 4 })),
        (vec![(USER, 6, 1000), (MASK, 4, UNDEFINED)], Err(AclGrant::User { uid: 1000, perm: 4 })),
        (vec![(USER, 4, 1000), (MASK, 0, UNDEFINED)], Ok(())),
        (vec![(GROUP, 4, 100), (MASK, 4, UNDEFINED)], Ok(())),
        (vec![(GROUP, 5, 100), (MASK, 7, UNDEFINED)], Ok(())),
        (vec![(GROUP, 2, 100), (MASK, 6, UNDEFINED)], Err(AclGrant::GroupWrite { gid: 100 })),
        (vec![(GROUP, 6, 100)], Err(AclGrant::GroupWrite { gid: 100 })),
        (vec![(GROUP, 6, 100), (MASK, 4, UNDEFINED)], Ok(())),
        // The first entry that grants is named.
        (vec![(USER, 4, 7), (GROUP, 6, 8), (MASK, 6, UNDEFINED)], Err(AclGrant::User { uid: 7, perm: 4 })),
    ];
    for (named, want) in cases {
        assert_eq!(judge_acl(&with(&named)), want, "{named:?}");
    }
    // Not the Linux form: refused, never read as no grant.
    let good = with(&[(GROUP, 4, 100), (MASK, 4, UNDEFINED)]);
    let mut v1 = good.clone();
    v1[0] = 1;
    for bad in [&[][..], &[2, 0, 0], &v1, &good[..good.len() - 1]] {
        assert_eq!(judge_acl(bad), Err(AclGrant::Unreadable), "{bad:?}");
    }
}
