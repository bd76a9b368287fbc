//! How the keyring file is written, attacked for real: a symlink swapped while `keygen --rotate`
//! runs, many `sign` runs racing to create the first keyring, and the ACL of a rotated file.

mod common;

use common::{key_lines, Scratch};
use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;

/// A rotation through a symlink that another user flips, as fast as it can, between the
/// keyring and a file of root's (0644, like /etc/passwd). The rotation must write the keyring
/// or refuse with a message; the other file must never change. A rotation that resolved the
/// link again after loading the keyring renamed its new file over whatever the link named then.
#[test]
fn a_rotation_through_a_swapped_symlink_never_writes_another_file() {
    const TRIES: usize = 100;
    let s = Scratch::new("swap");
    // A long key widens the window between the load and the write.
    let big = "x".repeat(64 * 1024);
    let first = format!("key 0 hmac-sha256 text:the key before the swap {big}\n");
    let keyring = s.dir.join("batv.keys");
    let elsewhere = s.dir.join("etc");
    fs::create_dir(&elsewhere).unwrap();
    let victim = elsewhere.join("passwd");
    let victim_text = b"root:x:0:0:root:/root:/bin/bash\n".repeat(8);
    let put_victim = || {
        fs::write(&victim, &victim_text).unwrap();
        fs::set_permissions(&victim, fs::Permissions::from_mode(0o644)).unwrap();
    };
    put_victim();
    let link = s.dir.join("link.keys");
    std::os::unix::fs::symlink(&keyring, &link).unwrap();

    // The swapper: a prepared symlink renamed over the link, to the victim and back.
    let stop = Arc::new(AtomicBool::new(false));
    let flips = Arc::new(AtomicU64::new(0));
    let swapper = {
        let (stop, flips) = (stop.clone(), flips.clone());
        let (dir, keyring, victim, link) = (s.dir.clone(), keyring.clone(), victim.clone(), link.clone());
        std::thread::spawn(move || {
            let temp = dir.join("link.new");
            while !stop.load(Ordering::Relaxed) {
                for target in [&victim, &keyring] {
                    let _ = fs::remove_file(&temp);
                    std::os::unix::fs::symlink(target, &temp).unwrap();
                    fs::rename(&temp, &link).unwrap();
                }
                flips.fetch_add(1, Ordering::Relaxed);
            }
        })
    };

    let (mut overwrote, mut rotated, mut refused) = (0, 0, 0);
    let link_arg = link.to_str().unwrap();
    for _ in 0..TRIES {
        // Each try starts from the one-key keyring, replaced by rename (the link is not touched).
        let fresh = s.write_keyring("fresh.keys", &first, 0o600);
        fs::rename(&fresh, &keyring).unwrap();
        let run = s.run(&["--keys", link_arg, "keygen", "--rotate"], b"");
        if fs::read(&victim).unwrap() != victim_text {
            overwrote += 1;
            put_victim();
            continue;
        }
        let text = s.read(&keyring);
        match run.code {
            0 => {
                rotated += 1;
                let keys = key_lines(&text);
                assert_eq!(keys.len(), 2, "a rotation that succeeded did not write the keyring: {}", run.stderr);
                assert!(text.contains("text:the key before the swap"));
            }
            _ => {
                refused += 1;
                assert_eq!(run.code, 2, "{}", run.stderr);
                assert!(run.stderr.starts_with("batv: ") && run.stderr.contains("keyring"), "{}", run.stderr);
                assert_eq!(text, first, "a refused rotation changed the keyring");
            }
        }
    }
    stop.store(true, Ordering::Relaxed);
    swapper.join().unwrap();
    eprintln!(
        "symlink swap: {overwrote} of {TRIES} tries overwrote the victim; {rotated} rotated the keyring, \
         {refused} refused; {} flips",
        flips.load(Ordering::Relaxed)
    );
    assert_eq!(overwrote, 0, "{overwrote} of {TRIES} tries overwrote the victim");
    assert_eq!(fs::metadata(&victim).unwrap().permissions().mode() & 0o7777, 0o644);
    assert!(rotated > 0, "no rotation succeeded");
    assert!(fs::symlink_metadata(&link).unwrap().file_type().is_symlink());
    // No temporary file is left in either directory.
    for dir in [&s.dir, &elsewhere] {
        let mut names: Vec<String> =
            fs::read_dir(dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.retain(|n| n.contains("batv-new"));
        assert!(names.is_empty(), "left behind: {names:?}");
    }
}

/// Four `batv sign` started at once in an empty directory, 100 times over: the first creates
/// ./batv.keys, and the others must read that keyring whole, never a file not yet written.
/// All 400 exit 0, and every tag of a round verifies with the one keyring the round made.
#[test]
fn signs_racing_to_create_the_first_keyring_all_use_it() {
    const ROUNDS: usize = 100;
    const AT_ONCE: usize = 4;
    let mut failed = Vec::new();
    for round in 0..ROUNDS {
        let s = Scratch::new("first-use");
        let mut children: Vec<_> = (0..AT_ONCE).map(|_| s.spawn(&["sign"])).collect();
        for child in &mut children {
            use std::io::Write;
            // A run that failed before reading its input closed the pipe: that is counted below.
            let _ = child.stdin.take().unwrap().write_all(b"user@example.com\n");
        }
        let mut tags = Vec::new();
        for child in children {
            let out = child.wait_with_output().unwrap();
            let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!stderr.contains("panicked"), "{stderr}");
            match out.status.code() {
                Some(0) => tags.push(String::from_utf8(out.stdout).unwrap()),
                code => failed.push(format!("round {round}: exit {code:?}: {}", stderr.trim_end())),
            }
        }
        if tags.is_empty() {
            continue;
        }
        let run = s.run(&["verify"], tags.concat().as_bytes());
        assert_eq!(
            run.expect_code(0).lines(),
            vec!["user@example.com"; tags.len()],
            "round {round}: a tag does not verify with the keyring that was left"
        );
        assert_eq!(fs::metadata(s.keys()).unwrap().permissions().mode() & 0o7777, 0o600);
        let names: Vec<String> =
            fs::read_dir(&s.dir).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        assert_eq!(names, ["batv.keys"], "round {round}: a temporary file was left behind");
    }
    eprintln!(
        "first use: {} of {} sign runs failed{}",
        failed.len(),
        ROUNDS * AT_ONCE,
        failed.first().map(|f| format!(", e.g. {f}")).unwrap_or_default()
    );
    assert!(failed.is_empty(), "{} of {} runs failed: {failed:#?}", failed.len(), ROUNDS * AT_ONCE);
}

/// `getfacl` of a file, numeric, without the header (which names the file).
fn acl_of(path: &Path) -> String {
    let out = Command::new("getfacl")
        .args(["-n", "--omit-header", "--absolute-names"])
        .arg(path)
        .output()
        .expect("getfacl (the Debian package acl; tests/run installs it)");
    assert!(out.status.success(), "getfacl: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8(out.stdout).unwrap()
}

/// A keyring that an extra group reads through a POSIX ACL (`setfacl -m g:GID:r`) keeps that
/// ACL across `keygen --rotate`, and its owner, group and mode too: a rotation that dropped it
/// would lock that group's MTA out of the keys.
#[test]
fn a_rotation_keeps_the_acl_owner_group_and_mode() {
    let s = Scratch::new("acl");
    let keys = s.write_keyring("batv.keys", "key 1 hmac-sha256 text:a key an ACL shares\n", 0o640);
    let root = effective_uid() == 0;
    if root {
        // A group that is not root's, as an MTA's would be.
        std::os::unix::fs::chown(&keys, None, Some(65534)).unwrap();
    }
    let set = Command::new("setfacl")
        .args(["-m", "g:4242:r"])
        .arg(&keys)
        .output()
        .expect("setfacl (the Debian package acl; tests/run installs it)");
    assert!(set.status.success(), "setfacl: {}", String::from_utf8_lossy(&set.stderr));
    let acl = acl_of(&keys);
    assert!(acl.contains("group:4242:r--"), "{acl}");
    let before = fs::metadata(&keys).unwrap();

    let run = s.run(&["keygen", "--rotate"], b"");
    run.expect_code(0);
    let after = fs::metadata(&keys).unwrap();
    assert_ne!(before.ino(), after.ino(), "the rotation did not replace the file");
    assert_eq!(key_lines(&s.read(&keys)).len(), 2);
    assert_eq!(acl_of(&keys), acl, "the ACL changed");
    assert_eq!((after.uid(), after.gid()), (before.uid(), before.gid()));
    assert_eq!(after.mode() & 0o7777, 0o640);
    if root {
        assert_eq!(after.gid(), 65534);
    }
    // A second rotation, from the rotated file, keeps it again.
    s.run(&["keygen", "--rotate"], b"").expect_code(0);
    assert_eq!(acl_of(&keys), acl, "the ACL changed on the second rotation");
}

/// The effective user id, from the scratch directory's owner (the test made it).
fn effective_uid() -> u32 {
    let probe = common::Scratch::new("euid");
    fs::metadata(&probe.dir).unwrap().uid()
}
