//! The keyring on disk through the real binary: keygen, rotation, the keyring `sign` creates,
//! the permission check, parse errors, and how the path is resolved.

mod common;

use common::{key_lines, Scratch};
use std::fs;
use std::os::unix::fs::PermissionsExt;

const NOW: &str = "1795700000"; // 2026-11-26

fn mode(path: &std::path::Path) -> u32 {
    fs::metadata(path).unwrap().permissions().mode() & 0o7777
}

#[test]
fn keygen_creates_a_private_keyring_and_never_overwrites_it() {
    let s = Scratch::new("keygen");
    let run = s.run(&["keygen"], b"");
    run.expect_code(0);
    assert!(run.stdout.is_empty());
    assert!(
        run.stderr.contains("created keyring ./batv.keys"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("key 1 (hmac-sha256)"), "{}", run.stderr);
    assert_eq!(mode(&s.keys()), 0o600);
    let text = s.read(&s.keys());
    let keys = key_lines(&text);
    assert_eq!(keys.len(), 1);
    assert_eq!((keys[0].0, keys[0].1.as_str()), (1, "hmac-sha256"));
    // 32 random bytes, base64.
    assert!(
        keys[0].2.starts_with("base64:") && keys[0].2.len() == 7 + 44,
        "{}",
        keys[0].2
    );

    // The leak check every run makes is not vacuous: it knows this key in its written form
    // and as the hex of its 32 bytes.
    let needles = common::secrets_in(&s.dir);
    assert!(
        needles.contains(&keys[0].2["base64:".len()..].to_string()),
        "{}",
        needles.len()
    );
    assert!(needles
        .iter()
        .any(|n| n.len() == 64 && n.bytes().all(|b| b.is_ascii_hexdigit())));

    let again = s.run(&["keygen"], b"");
    again.expect_code(2);
    assert!(
        again.stderr.contains("already exists") && again.stderr.contains("--rotate"),
        "{}",
        again.stderr
    );
    assert_eq!(
        s.read(&s.keys()),
        text,
        "keygen must not touch an existing keyring"
    );

    // Two keygens make different keys.
    let other = s.dir.join("other.keys");
    s.run(&["--keys", other.to_str().unwrap(), "keygen"], b"")
        .expect_code(0);
    assert_ne!(key_lines(&s.read(&other))[0].2, keys[0].2);
}

#[test]
fn keygen_scheme_hmac_sha1() {
    let s = Scratch::new("keygen-sha1");
    s.run(&["keygen", "--scheme", "hmac-sha1"], b"")
        .expect_code(0);
    assert_eq!(key_lines(&s.read(&s.keys()))[0].1, "hmac-sha1");
    let run = s.run(&["keygen", "--scheme", "hmac-md5"], b"");
    run.expect_code(2);
    assert!(run.stderr.contains("hmac-md5"), "{}", run.stderr);
    // A rotation keeps the signing key's scheme unless told otherwise.
    let run = s.run(&["keygen", "--rotate"], b"");
    run.expect_code(0);
    assert!(
        run.stderr.contains("added key 2 (hmac-sha1)"),
        "{}",
        run.stderr
    );
    let run = s.run(&["keygen", "--rotate", "--scheme", "hmac-sha1"], b"");
    run.expect_code(0);
    assert!(
        run.stderr.contains("added key 3 (hmac-sha1)"),
        "{}",
        run.stderr
    );
    let schemes: Vec<String> = key_lines(&s.read(&s.keys()))
        .into_iter()
        .map(|k| k.1)
        .collect();
    assert_eq!(schemes, ["hmac-sha1"; 3]);
}

/// Moving an Exim-compatible keyring to hmac-sha256: the new key has the scheme asked for, and
/// everything else in the file stays as it was.
#[test]
fn rotate_to_another_scheme_adds_a_key_of_that_scheme() {
    let s = Scratch::new("rotate-scheme");
    let text = "# shared with exim\nlifetime-days 10\nskew-days 2\nsign-key 1\n\
                key 0 hmac-sha256 hex:000102030405060708090a0b0c0d0e0f\n\
                key 1 hmac-sha1 text:secret shared with exim\n";
    s.write_keyring("batv.keys", text, 0o640);
    let old_tag = s
        .run(&["--now", NOW, "sign", "User@Example.com"], b"")
        .expect_code(0)
        .out();
    assert!(old_tag.starts_with("prvs=1"), "{old_tag}");

    let run = s.run(&["keygen", "--rotate", "--scheme", "hmac-sha256"], b"");
    run.expect_code(0);
    assert!(
        run.stderr.contains("added key 2 (hmac-sha256)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("key(s) 0, 1 still verify") && run.stderr.contains("12 days"),
        "{}",
        run.stderr
    );
    assert_eq!(mode(&s.keys()), 0o640);

    let after = s.read(&s.keys());
    let keys = key_lines(&after);
    let summary: Vec<(u8, &str)> = keys.iter().map(|k| (k.0, k.1.as_str())).collect();
    assert_eq!(
        summary,
        [(0, "hmac-sha256"), (1, "hmac-sha1"), (2, "hmac-sha256")]
    );
    assert_eq!(keys[0].2, "hex:000102030405060708090a0b0c0d0e0f");
    assert_eq!(keys[1].2, "text:secret shared with exim");
    assert!(keys[2].2.starts_with("base64:") && keys[2].2.len() == 7 + 44);
    for line in ["sign-key 2", "lifetime-days 10", "skew-days 2"] {
        assert!(after.lines().any(|l| l == line), "{line}: {after}");
    }

    // The new key signs, and it is an hmac-sha256 key in effect: a tag made for mixed case
    // verifies in upper case (an hmac-sha1 key hashes the address as written).
    let new_tag = s
        .run(&["--now", NOW, "sign", "User@Example.com"], b"")
        .expect_code(0)
        .out();
    assert!(new_tag.starts_with("prvs=2"), "{new_tag}");
    let upper = new_tag
        .trim_end()
        .to_uppercase()
        .replacen("PRVS", "prvs", 1);
    let run = s.run(&["--now", NOW, "verify", &upper], b"");
    assert_eq!(run.expect_code(0).out(), "USER@EXAMPLE.COM\n");
    // The old key still verifies the tags it made.
    let run = s.run(&["--now", NOW, "verify", old_tag.trim_end()], b"");
    assert_eq!(run.expect_code(0).out(), "User@Example.com\n");
}

#[test]
fn rotate_to_another_scheme_past_nine_wraps_to_a_free_number() {
    let s = Scratch::new("rotate-scheme-wrap");
    let text = "sign-key 9\nkey 0 hmac-sha1 text:zero key that stays\n\
                key 9 hmac-sha1 text:the nine key\n";
    s.write_keyring("batv.keys", text, 0o600);
    let run = s.run(&["keygen", "--rotate", "--scheme", "hmac-sha256"], b"");
    run.expect_code(0);
    assert!(run.stderr.contains("added key 1 (hmac-sha256)"), "{}", run.stderr);
    assert!(!run.stderr.contains("replaced"), "{}", run.stderr);
    let after = s.read(&s.keys());
    let keys = key_lines(&after);
    assert_eq!(keys.iter().map(|k| (k.0, k.1.as_str())).collect::<Vec<_>>(), [(0, "hmac-sha1"), (1, "hmac-sha256"), (9, "hmac-sha1")]);
    assert_eq!(keys[0].2, "text:zero key that stays");
    assert!(after.lines().any(|l| l == "sign-key 1"), "{after}");
}

#[test]
fn rotate_adds_the_next_key_and_keeps_the_old_one_verifying() {
    let s = Scratch::new("rotate");
    s.run(&["keygen"], b"").expect_code(0);
    let before = key_lines(&s.read(&s.keys()));
    let old_tag = s
        .run(&["--now", NOW, "sign", "user@example.com"], b"")
        .expect_code(0)
        .out();
    assert!(old_tag.starts_with("prvs=1"), "{old_tag}");

    let run = s.run(&["keygen", "--rotate"], b"");
    run.expect_code(0);
    assert!(
        run.stderr.contains("added key 2 (hmac-sha256)"),
        "{}",
        run.stderr
    );
    assert!(!run.stderr.contains("replaced"), "{}", run.stderr);
    assert!(
        run.stderr.contains("key(s) 1 still verify"),
        "{}",
        run.stderr
    );

    let text = s.read(&s.keys());
    let after = key_lines(&text);
    assert_eq!(after.len(), 2);
    assert_eq!(after[0], before[0], "the old key is kept as it was");
    assert_eq!(after[1].0, 2);
    assert!(text.lines().any(|l| l == "sign-key 2"), "{text}");
    assert_eq!(mode(&s.keys()), 0o600);
    // No temporary file is left behind.
    let names: Vec<_> = fs::read_dir(&s.dir)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(names.len(), 1, "{names:?}");

    let new_tag = s
        .run(&["--now", NOW, "sign", "user@example.com"], b"")
        .expect_code(0)
        .out();
    assert!(new_tag.starts_with("prvs=2"), "{new_tag}");
    let both = format!("{old_tag}{new_tag}");
    let run = s.run(&["--now", NOW, "verify"], both.as_bytes());
    assert_eq!(
        run.expect_code(0).out(),
        "user@example.com\nuser@example.com\n"
    );
}

#[test]
fn rotate_past_nine_wraps_to_a_free_number() {
    let s = Scratch::new("rotate-wrap");
    let text = "sign-key 9\nkey 0 hmac-sha1 text:zero key that stays\nkey 9 hmac-sha1 text:the nine key\n";
    s.write_keyring("batv.keys", text, 0o600);
    let run = s.run(&["keygen", "--rotate"], b"");
    run.expect_code(0);
    assert!(run.stderr.contains("added key 1 (hmac-sha1)"), "{}", run.stderr);
    let after = s.read(&s.keys());
    assert!(after.contains("key 0 hmac-sha1 text:zero key that stays"));
    assert!(after.contains("key 9 hmac-sha1 text:the nine key"));
    assert!(after.lines().any(|l| l == "sign-key 1"));
}

/// A keyring with all ten numbers taken: a rotation replaces only a key past its window, and
/// otherwise is refused with the key to retire, leaving the file alone.
#[test]
fn rotate_in_a_full_keyring_replaces_only_a_key_past_its_window() {
    let s = Scratch::new("rotate-full");
    let mut text = String::from("sign-key 3\n");
    for n in 0..10 {
        text.push_str(&format!("key {n} hmac-sha256 text:the key number {n}\n"));
    }
    s.write_keyring("batv.keys", &text, 0o600);
    for change in ["--rotate", "--add"] {
        let run = s.run(&["--now", NOW, "keygen", change], b"");
        run.expect_code(2);
        assert!(
            run.stderr.contains("no key records when it stopped signing")
                && run.stderr.contains("key 4 is next in line: delete its line by hand")
                && run.stderr.contains("the keyring was not changed"),
            "{}",
            run.stderr
        );
        assert_eq!(s.read(&s.keys()), text);
    }
    // Key 7 stopped signing on 2026-11-21: prunable from 2026-11-30 (lifetime 7 + skew 1).
    let text = format!("{text}retired 7 2026-11-21\n");
    s.write_keyring("batv.keys", &text, 0o600);
    let run = s.run(&["--now", NOW, "keygen", "--rotate"], b"");
    run.expect_code(2);
    assert!(run.stderr.contains("key 7 may be pruned from 2026-11-30 on"), "{}", run.stderr);
    assert_eq!(s.read(&s.keys()), text);
    let nov30 = "1796040000"; // 2026-11-30 12:00 UTC
    let tag_of_4 = s.run(&["--now", nov30, "sign", "user@example.com"], b"").expect_code(0).out();
    let run = s.run(&["--now", nov30, "keygen", "--rotate"], b"");
    run.expect_code(0);
    assert!(
        run.stderr.contains("added key 7") && run.stderr.contains("replaced the old key 7, which stopped signing more than 8 days ago"),
        "{}",
        run.stderr
    );
    let after = s.read(&s.keys());
    assert!(!after.contains("the key number 7") && after.contains("the key number 4"), "{after}");
    assert!(after.lines().any(|l| l == "sign-key 7"), "{after}");
    let run = s.run(&["--now", nov30, "verify", tag_of_4.trim_end()], b"");
    assert_eq!(run.expect_code(0).out(), "user@example.com\n");
}

#[test]
fn rotate_keeps_a_group_readable_mode() {
    let s = Scratch::new("rotate-mode");
    s.write_keyring(
        "batv.keys",
        "key 1 hmac-sha256 text:group readable key\n",
        0o640,
    );
    s.run(&["keygen", "--rotate"], b"").expect_code(0);
    assert_eq!(mode(&s.keys()), 0o640);
}

#[test]
fn rotate_without_a_keyring_is_an_error() {
    let s = Scratch::new("rotate-missing");
    let run = s.run(&["keygen", "--rotate"], b"");
    run.expect_code(2);
    assert!(
        run.stderr.contains("./batv.keys") && run.stderr.contains("batv keygen"),
        "{}",
        run.stderr
    );
    assert!(!s.keys().exists());
}

#[test]
fn sign_creates_the_keyring_it_needs_and_says_so() {
    let s = Scratch::new("autocreate");
    let run = s.run(&["--now", NOW, "sign", "user@example.com"], b"");
    run.expect_code(0);
    let tag = run.out();
    assert!(
        tag.starts_with("prvs=1790") && tag.ends_with("=user@example.com\n"),
        "{tag}"
    );
    assert!(
        run.stderr.contains("created a new keyring ./batv.keys"),
        "{}",
        run.stderr
    );
    assert!(run.stderr.contains("0600"), "{}", run.stderr);
    assert_eq!(mode(&s.keys()), 0o600);

    // The second run uses that keyring: same tag, nothing said.
    let again = s.run(&["--now", NOW, "sign", "user@example.com"], b"");
    assert_eq!(again.expect_code(0).out(), tag);
    assert!(again.stderr.is_empty(), "{}", again.stderr);
    let run = s.run(&["--now", NOW, "verify", tag.trim_end()], b"");
    assert_eq!(run.expect_code(0).out(), "user@example.com\n");
}

/// Runs the `create it with: ...` command a message suggests, with this `batv` first in PATH,
/// so the hint is proved to work as printed (quoting included).
fn run_suggested_command(s: &Scratch, stderr: &str) -> common::Run {
    let (_, command) = stderr
        .trim_end()
        .split_once("create it with: ")
        .unwrap_or_else(|| panic!("no command suggested: {stderr}"));
    assert!(command.starts_with("batv keygen"), "{command}");
    let bin_dir = std::path::Path::new(env!("CARGO_BIN_EXE_batv"))
        .parent()
        .unwrap();
    let path = format!(
        "{}:{}",
        bin_dir.display(),
        std::env::var("PATH").unwrap_or_default()
    );
    let mut sh = std::process::Command::new("sh");
    sh.current_dir(&s.dir)
        .env("PATH", path)
        .env_remove("BATV_KEYS")
        .args(["-c", command]);
    s.run_command(sh, b"")
}

#[test]
fn sign_never_creates_a_keyring_named_by_keys_or_env() {
    let s = Scratch::new("explicit-missing");
    // A typo in --keys, in $BATV_KEYS, a path that needs shell quoting, a missing directory.
    let cases: [(&str, bool, &str); 4] = [
        ("typo.keys", false, "(named by --keys)"),
        ("env-typo.keys", true, "(named by $BATV_KEYS)"),
        ("it's my keys.keys", false, "(named by --keys)"),
        ("no/such/dir/batv.keys", false, "(named by --keys)"),
    ];
    for (name, from_env, named_by) in cases {
        let mut cmd = s.command();
        if from_env {
            cmd.env("BATV_KEYS", name);
        } else {
            cmd.args(["--keys", name]);
        }
        cmd.args(["--now", NOW, "sign", "user@example.com"]);
        let run = s.run_command(cmd, b"");
        run.expect_code(2);
        assert!(run.stdout.is_empty(), "{name}: nothing may be signed");
        assert_eq!(run.stderr.lines().count(), 1, "one line: {}", run.stderr);
        assert!(
            run.stderr.contains(&format!("keyring {name}: "))
                && run.stderr.contains("does not exist")
                && run.stderr.contains(named_by)
                && run.stderr.contains("batv keygen --keys "),
            "{name}: {}",
            run.stderr
        );
        assert!(!s.dir.join(name).exists(), "{name} must not be created");
        assert!(!s.keys().exists(), "{name}: nor the default keyring");
    }

    // The suggested command, pasted into a shell as printed, creates exactly that keyring,
    // after which sign works with it and makes tags that verify against it.
    let name = "it's my keys.keys";
    let run = s.run(&["--keys", name, "sign", "user@example.com"], b"");
    run.expect_code(2);
    assert!(
        run.stderr.contains("'it'\\''s my keys.keys'"),
        "{}",
        run.stderr
    );
    run_suggested_command(&s, &run.stderr).expect_code(0);
    assert_eq!(mode(&s.dir.join(name)), 0o600);
    assert!(!s.keys().exists());
    let tag = s
        .run(
            &["--keys", name, "--now", NOW, "sign", "user@example.com"],
            b"",
        )
        .expect_code(0)
        .out();
    let run = s.run(
        &["--keys", name, "--now", NOW, "verify", tag.trim_end()],
        b"",
    );
    assert_eq!(run.expect_code(0).out(), "user@example.com\n");

    // Named explicitly, even the default's own name is not created.
    let run = s.run(&["--keys", "./batv.keys", "sign", "user@example.com"], b"");
    run.expect_code(2);
    assert!(
        run.stderr.contains("batv keygen --keys ./batv.keys"),
        "{}",
        run.stderr
    );
    assert!(!s.keys().exists());
}

#[test]
fn every_command_names_a_missing_explicit_keyring_and_how_to_create_it() {
    let s = Scratch::new("explicit-missing-all");
    for args in [
        &["verify", "prvs=1790c1c5ba=user@example.com"][..],
        &["status", "user@example.com"],
        &["check", "--sender", "", "--recipient", "user@example.com"],
        &["keygen", "--rotate"],
    ] {
        for from_env in [false, true] {
            let mut cmd = s.command();
            if from_env {
                cmd.env("BATV_KEYS", "site.keys");
            } else {
                cmd.args(["--keys", "site.keys"]);
            }
            cmd.args(args);
            let run = s.run_command(cmd, b"");
            run.expect_code(2);
            assert!(run.stdout.is_empty());
            assert_eq!(run.stderr.lines().count(), 1, "{args:?}: {}", run.stderr);
            assert!(
                run.stderr.contains("keyring site.keys: ")
                    && run.stderr.contains("batv keygen --keys site.keys"),
                "{args:?}: {}",
                run.stderr
            );
            assert!(!s.dir.join("site.keys").exists(), "{args:?}");
        }
    }
    assert!(!s.keys().exists());
}

#[test]
fn other_commands_need_an_existing_keyring() {
    let s = Scratch::new("missing");
    for args in [
        &["verify", "prvs=1790c1c5ba=user@example.com"][..],
        &["status", "user@example.com"],
        &["check", "--sender", "", "--recipient", "user@example.com"],
    ] {
        let run = s.run(args, b"");
        run.expect_code(2);
        assert!(run.stdout.is_empty());
        assert!(
            run.stderr.contains("./batv.keys") && run.stderr.contains("batv keygen"),
            "{}",
            run.stderr
        );
        assert!(!s.keys().exists(), "{args:?} must not create a keyring");
    }
    // strip needs no keyring at all.
    let run = s.run(&["strip", "prvs=1790c1c5ba=user@example.com"], b"");
    assert_eq!(run.expect_code(0).out(), "user@example.com\n");
    assert!(!s.keys().exists());
}

#[test]
fn a_keyring_others_can_read_is_refused_with_the_chmod_that_fixes_it() {
    let s = Scratch::new("insecure");
    let text = "key 1 hmac-sha256 text:world readable key\n";
    let path = s.write_keyring("batv.keys", text, 0o644);
    for args in [
        &["sign", "a@example.com"][..],
        &["verify", "a@example.com"],
        &["status", "a@example.com"],
        &["check", "--sender", "", "--recipient", "a@example.com"],
        &["keygen", "--rotate"],
    ] {
        let run = s.run(args, b"");
        run.expect_code(2);
        assert!(run.stdout.is_empty(), "{args:?}");
        assert!(
            run.stderr.contains("chmod 600 ./batv.keys"),
            "{args:?}: {}",
            run.stderr
        );
        assert!(run.stderr.contains("0644"), "{}", run.stderr);
    }
    assert_eq!(s.read(&path), text, "a refused keyring is left as it was");
    assert_eq!(mode(&path), 0o644);
}

#[test]
fn a_broken_keyring_names_its_file_and_line() {
    let s = Scratch::new("broken");
    s.write_keyring(
        "bad.keys",
        "# comment\nkey 1 hmac-md5 text:whatever it is\n",
        0o600,
    );
    let run = s.run(&["--keys", "bad.keys", "sign", "a@example.com"], b"");
    run.expect_code(2);
    assert!(run.stderr.contains("bad.keys line 2"), "{}", run.stderr);
    // A word that is no scheme name is described, not shown: it could be a secret.
    assert!(
        run.stderr.contains("unknown scheme: a word of 8 characters with punctuation") && !run.stderr.contains("hmac-md5"),
        "{}",
        run.stderr
    );

    s.write_keyring(
        "short.keys",
        "lifetime-days 7\nkey 3 hmac-sha256 base64:c2hvcnQ=\n",
        0o600,
    );
    let run = s.run(&["--keys", "short.keys", "verify", "a@example.com"], b"");
    run.expect_code(2);
    assert!(
        run.stderr.contains("short.keys line 2") && run.stderr.contains("16"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
}

#[test]
fn keyring_path_is_option_then_env_then_working_directory() {
    let s = Scratch::new("resolve");
    s.write_keyring(
        "batv.keys",
        "key 3 hmac-sha256 text:the default keyring\n",
        0o600,
    );
    s.write_keyring(
        "env.keys",
        "key 4 hmac-sha256 text:the environment keyring\n",
        0o600,
    );
    s.write_keyring(
        "opt.keys",
        "key 5 hmac-sha256 text:the option keyring\n",
        0o600,
    );
    let key_digit = |cmd: std::process::Command| {
        let run = s.run_command(cmd, b"");
        run.expect_code(0);
        run.out().chars().nth(5).unwrap()
    };

    let mut cmd = s.command();
    cmd.args(["sign", "a@example.com"]);
    assert_eq!(key_digit(cmd), '3');

    let mut cmd = s.command();
    cmd.env("BATV_KEYS", "env.keys")
        .args(["sign", "a@example.com"]);
    assert_eq!(key_digit(cmd), '4');

    let mut cmd = s.command();
    cmd.env("BATV_KEYS", "env.keys")
        .args(["sign", "--keys", "opt.keys", "a@example.com"]);
    assert_eq!(key_digit(cmd), '5');

    // An empty $BATV_KEYS counts as unset.
    let mut cmd = s.command();
    cmd.env("BATV_KEYS", "").args(["sign", "a@example.com"]);
    assert_eq!(key_digit(cmd), '3');

    let run = s.run(&["--keys", "", "sign", "a@example.com"], b"");
    run.expect_code(2);
    assert!(run.stderr.contains("--keys"), "{}", run.stderr);
}

/// Nine `keygen --rotate` processes started together on one keyring, in several rounds. Each
/// must read the file the previous one wrote: then they take key numbers 1 to 9, one each, and
/// the file ends with all ten keys. Two rotations that read the same file would both add the
/// same number, and one of the two keys would be lost. Some name the keyring through a symlink,
/// as /etc/exim4/batv.keys -> /etc/batv/keys might be: the lock must be on the real file.
///
/// Without the lock this fails in the first round (reported numbers such as 1,1,1,2,2,2,3,3,3);
/// with a lock on the keyring but no check that the locked file is still the one at the path,
/// it fails too (a waiter wakes up holding the file the previous rotation renamed away).
#[test]
fn concurrent_rotations_lose_no_key() {
    const ROTATIONS: u8 = 9;
    let first = "key 0 hmac-sha256 text:the key all rotations start from\n";
    for round in 0..5 {
        let s = Scratch::new("rotate-race");
        s.write_keyring("batv.keys", first, 0o600);
        std::os::unix::fs::symlink("batv.keys", s.dir.join("link.keys")).unwrap();
        let children: Vec<_> = (0..ROTATIONS)
            .map(|i| match i % 3 {
                0 => s.spawn(&["--keys", "link.keys", "keygen", "--rotate"]),
                _ => s.spawn(&["keygen", "--rotate"]),
            })
            .collect();
        let mut reported = Vec::new();
        for child in children {
            let out = child.wait_with_output().expect("wait for batv");
            let run = common::Run {
                code: out.status.code().expect("batv was killed by a signal"),
                stdout: out.stdout,
                stderr: String::from_utf8(out.stderr).expect("UTF-8 stderr"),
            };
            s.assert_no_secrets(&run);
            run.expect_code(0);
            let number = run
                .stderr
                .split_once("added key ")
                .and_then(|(_, rest)| rest.split_once(' '))
                .and_then(|(n, _)| n.parse::<u8>().ok())
                .unwrap_or_else(|| panic!("no key number reported: {}", run.stderr));
            assert!(!run.stderr.contains("replaced"), "{}", run.stderr);
            reported.push(number);
        }
        reported.sort_unstable();
        assert_eq!(
            reported,
            (1..=ROTATIONS).collect::<Vec<_>>(),
            "round {round}: two rotations added the same key number"
        );

        let text = s.read(&s.keys());
        let keys = key_lines(&text);
        let numbers: Vec<u8> = keys.iter().map(|k| k.0).collect();
        assert_eq!(
            numbers,
            (0..=ROTATIONS).collect::<Vec<_>>(),
            "round {round}: {text}"
        );
        assert_eq!(keys[0].2, "text:the key all rotations start from");
        // Ten different secrets: no rotation's key was written twice or lost for another's.
        let mut secrets: Vec<&str> = keys.iter().map(|k| k.2.as_str()).collect();
        secrets.sort_unstable();
        secrets.dedup();
        assert_eq!(secrets.len(), keys.len(), "round {round}");
        assert!(
            text.lines().any(|l| l == format!("sign-key {ROTATIONS}")),
            "{text}"
        );
        assert_eq!(mode(&s.keys()), 0o600);
        // The file is whole (it parses) and every key in it verifies what it signs.
        let tag = s
            .run(&["--now", NOW, "sign", "user@example.com"], b"")
            .expect_code(0)
            .out();
        assert!(tag.starts_with(&format!("prvs={ROTATIONS}")), "{tag}");
        // No temporary file is left behind.
        let mut names: Vec<_> = fs::read_dir(&s.dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().into_string().unwrap())
            .collect();
        names.sort();
        assert_eq!(names, ["batv.keys", "link.keys"], "round {round}");
        assert!(fs::symlink_metadata(s.dir.join("link.keys"))
            .unwrap()
            .file_type()
            .is_symlink());
    }
}

/// What another rotation does in the middle of its turn: a new keyring file renamed over the
/// path while the old one is locked. Returns the new file, opened and locked as that rotation's
/// successor would hold it.
fn replace_and_lock(s: &Scratch, text: &str) -> fs::File {
    let new = s.write_keyring("other-rotation.keys", text, 0o600);
    fs::rename(&new, s.keys()).unwrap();
    let file = fs::File::open(s.keys()).unwrap();
    file.lock().unwrap();
    file
}

/// A rotation that waited for the lock while the file was replaced must take the lock on the
/// new file before it reads it; one that went ahead with the lock on the old file would run at
/// the same time as a rotation holding the new file, and one of the two keys would be lost.
#[test]
fn a_waiting_rotation_locks_the_file_that_replaced_the_one_it_waited_for() {
    let s = Scratch::new("rotate-wait");
    let wait = std::time::Duration::from_millis(300);
    let one = "key 1 hmac-sha256 text:the first file's only key\n";
    s.write_keyring("batv.keys", one, 0o600);
    let first = fs::File::open(s.keys()).unwrap();
    first.lock().unwrap();

    let mut child = s.spawn(&["keygen", "--rotate"]);
    drop(child.stdin.take());
    std::thread::sleep(wait);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the rotation did not wait for the lock"
    );

    // Replaced and held by another rotation's successor, then the first lock is released.
    let five = format!("sign-key 5\n{one}key 5 hmac-sha1 text:key five of the second file\n");
    let second = replace_and_lock(&s, &five);
    drop(first);
    std::thread::sleep(wait);
    assert!(
        child.try_wait().unwrap().is_none(),
        "the rotation went ahead while another held the file now at the path"
    );

    // That one replaces the file too; only then may the waiting rotation run, on the newest file.
    let seven = format!("sign-key 7\n{five}key 7 hmac-sha256 text:key seven of the third file\n")
        .replacen("sign-key 5\n", "", 1);
    let third = replace_and_lock(&s, &seven);
    drop(second);
    drop(third);

    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8(out.stderr).unwrap();
    assert_eq!(out.status.code(), Some(0), "{stderr}");
    assert!(stderr.contains("added key 8 (hmac-sha256)"), "{stderr}");
    let text = s.read(&s.keys());
    let numbers: Vec<u8> = key_lines(&text).iter().map(|k| k.0).collect();
    assert_eq!(numbers, [1, 5, 7, 8], "{text}");
    assert!(text.contains("key 7 hmac-sha256 text:key seven of the third file"));
    assert!(text.lines().any(|l| l == "sign-key 8"), "{text}");
}

#[test]
fn staged_rotation_refuses_what_would_lose_a_tag() {
    let s = Scratch::new("staged");
    s.run(&["--now", "1795700000", "keygen"], b"").expect_code(0);
    let run = s.run(&["--now", "1795700000", "keygen", "--add"], b"");
    assert!(run.expect_code(0).stderr.contains("added key 2"), "{}", run.stderr);
    let before = s.read(&s.keys());
    let run = s.run(&["keygen", "--promote", "7"], b"");
    assert!(run.expect_code(2).stderr.contains("there is no key 7"), "{}", run.stderr);
    assert_eq!(s.read(&s.keys()), before, "refusals leave the file alone");
    // Promote, then prune: nothing before the window, key 1 after it.
    s.run(&["--now", "1795700000", "keygen", "--promote", "2"], b"").expect_code(0);
    let run = s.run(&["--now", "1796000000", "keygen", "--prune"], b"");
    assert!(run.expect_code(0).stderr.contains("nothing changed"), "{}", run.stderr);
    let run = s.run(&["--now", "1796600000", "keygen", "--prune"], b"");
    assert!(run.expect_code(0).stderr.contains("removed key 1"), "{}", run.stderr);
    assert_eq!(key_lines(&s.read(&s.keys())).iter().map(|k| k.0).collect::<Vec<_>>(), [2]);
    // One change at a time, and --scheme only where a key is made.
    s.run(&["keygen", "--add", "--prune"], b"").expect_code(2);
    s.run(&["keygen", "--promote", "2", "--scheme", "hmac-sha1"], b"").expect_code(2);
    s.run(&["keygen", "--promote", "10"], b"").expect_code(2);
}

/// docs/exim.md's migration, step by step on the file, then `batv keygen --rotate`: the tag
/// key 1 signed an hour before the migration still verifies after the rotation.
#[test]
fn rotate_after_the_exim_migration_keeps_the_key_that_still_verifies() {
    let s = Scratch::new("rotate-after-migration");
    let hour_ago = (NOW.parse::<i64>().unwrap() - 3600).to_string();
    s.run(&["--now", &hour_ago, "keygen"], b"").expect_code(0);
    let hour_old = s.run(&["--now", &hour_ago, "sign", "user@example.com"], b"").expect_code(0).out();
    assert!(hour_old.starts_with("prvs=1"), "{hour_old}");
    // cp -p batv.keys batv.keys.new; printf 'key 0 hmac-sha1 text:%s\n' ... >> batv.keys.new;
    // sed -i 's/^sign-key .*/sign-key 0/' batv.keys.new; mv batv.keys.new batv.keys
    let mut text = s.read(&s.keys());
    text.push_str("key 0 hmac-sha1 text:the secret shared with exim\n");
    let text: String = text
        .lines()
        .map(|l| if l.starts_with("sign-key ") { "sign-key 0\n".to_string() } else { format!("{l}\n") })
        .collect();
    s.write_keyring("batv.keys.new", &text, 0o600);
    fs::rename(s.dir.join("batv.keys.new"), s.keys()).unwrap();
    let run = s.run(&["--now", NOW, "verify", hour_old.trim_end()], b"");
    assert_eq!(run.expect_code(0).out(), "user@example.com\n", "before the rotation");

    let run = s.run(&["--now", NOW, "keygen", "--rotate"], b"");
    run.expect_code(0);
    let run = s.run(&["--now", NOW, "verify", hour_old.trim_end()], b"");
    assert_eq!(run.out(), "user@example.com\n", "after the rotation: {}", run.stderr);
    run.expect_code(0);
    let numbers: Vec<u8> = key_lines(&s.read(&s.keys())).iter().map(|k| k.0).collect();
    assert_eq!(numbers, [0, 1, 2]);
}
