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
    // A rotation keeps the signing key's scheme; asking for another one is a usage error.
    s.run(&["keygen", "--rotate", "--scheme", "hmac-sha256"], b"")
        .expect_code(2);
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
fn rotate_past_nine_replaces_key_zero_and_says_so() {
    let s = Scratch::new("rotate-wrap");
    let text = "sign-key 9\nkey 0 hmac-sha1 text:zero key that will go\nkey 9 hmac-sha1 text:the nine key\n";
    s.write_keyring("batv.keys", text, 0o600);
    let run = s.run(&["keygen", "--rotate"], b"");
    run.expect_code(0);
    assert!(
        run.stderr.contains("added key 0 (hmac-sha1)"),
        "{}",
        run.stderr
    );
    assert!(
        run.stderr.contains("replaced the old key 0"),
        "{}",
        run.stderr
    );
    let after = s.read(&s.keys());
    assert!(!after.contains("zero key that will go"));
    assert!(after.contains("key 9 hmac-sha1 text:the nine key"));
    assert!(after.lines().any(|l| l == "sign-key 0"));
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

#[test]
fn sign_cannot_create_a_keyring_in_a_missing_directory() {
    let s = Scratch::new("autocreate-nodir");
    let run = s.run(
        &["--keys", "no/such/dir/batv.keys", "sign", "a@example.com"],
        b"",
    );
    run.expect_code(2);
    assert!(
        run.stderr.contains("no/such/dir/batv.keys"),
        "{}",
        run.stderr
    );
    assert!(run.stdout.is_empty());
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
    assert!(run.stderr.contains("hmac-md5"), "{}", run.stderr);

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
