//! The keyring file (docs/scheme.md, "Keyring file"): every error names its line and what is wrong, never the
//! secret; the permission check; generation; rotation; and the round trip through the file text.

use batv_core::{FileWord, Keyring, KeyringErrorKind as K, Outcome, Scheme, WordKind};
use batv_test_support::TempDir;

const GOOD_B64: &str = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=";

fn err(text: &str) -> batv_core::KeyringError {
    Keyring::parse(text).expect_err(text)
}

#[test]
fn the_spec_example_parses() {
    let keys = Keyring::parse(&format!(
        "# batv keyring\nlifetime-days 7\nskew-days 1\nsign-key 1\nkey 1 hmac-sha256 base64:{GOOD_B64}\nkey 0 hmac-sha1 text:secret shared with exim\n"
    ))
    .unwrap();
    assert_eq!(keys.lifetime_days(), 7);
    assert_eq!(keys.skew_days(), 1);
    assert_eq!(keys.signing_key().number(), 1);
    assert_eq!(keys.key(0).unwrap().scheme(), Scheme::HmacSha1);
    // Keys other than the sign key verify: an Exim-made tag with key 0's text secret.
    let exim = Keyring::parse("key 0 hmac-sha1 text:secret shared with exim").unwrap();
    let tag = exim.sign_at("user@example.com", 1_795_700_000).unwrap();
    assert_eq!(keys.status_at(&tag, 1_795_700_000), Outcome::Valid);
}

#[test]
fn every_error_names_its_line_and_never_the_secret() {
    let secret_hex = "00112233445566778899aabbccddeeff";
    let cases: Vec<(String, usize, K)> = vec![
        ("kye 1 hmac-sha256 text:x".into(), 1, K::UnknownDirective(FileWord::Unknown { chars: 3, kind: WordKind::Letters })),
        ("\n\nkey".into(), 3, K::MissingValue("the key number")),
        ("key 1".into(), 1, K::MissingValue("the scheme")),
        ("key 1 hmac-sha256".into(), 1, K::MissingValue("the secret")),
        ("key 10 hmac-sha256 text:x".into(), 1, K::BadKeyNumber),
        ("key a hmac-sha256 text:x".into(), 1, K::BadKeyNumber),
        ("key 1 hmac-md5 text:x".into(), 1, K::UnknownScheme(FileWord::Unknown { chars: 8, kind: WordKind::Punctuation })),
        (format!("key 1 hmac-sha256 {secret_hex}"), 1, K::BadSecretPrefix),
        ("key 1 hmac-sha256 base64:!!!notbase64!!!".into(), 1, K::BadBase64),
        ("key 1 hmac-sha256 hex:0g".into(), 1, K::BadHex),
        ("key 1 hmac-sha256 hex:001122".into(), 1, K::SecretTooShort { len: 3 }),
        ("key 1 hmac-sha256 base64:AAECAw==".into(), 1, K::SecretTooShort { len: 4 }),
        ("key 1 hmac-sha256 text:".into(), 1, K::EmptySecret),
        ("key 1 hmac-sha256 text:a\n# c\nkey 1 hmac-sha1 text:b".into(), 3, K::DuplicateKey(1)),
        ("key 1 hmac-sha256 text:a\nkey 2 hmac-sha256 text:b".into(), 2, K::MissingSignKey),
        ("sign-key 3\nkey 1 hmac-sha256 text:a".into(), 1, K::SignKeyNotDefined(3)),
        ("sign-key 1\nsign-key 1\nkey 1 hmac-sha256 text:a".into(), 2, K::DuplicateSetting("sign-key")),
        ("sign-key x\nkey 1 hmac-sha256 text:a".into(), 1, K::BadKeyNumber),
        ("lifetime-days 0\nkey 1 hmac-sha256 text:a".into(), 1, K::LifetimeOutOfRange),
        ("lifetime-days 366\nkey 1 hmac-sha256 text:a".into(), 1, K::LifetimeOutOfRange),
        ("lifetime-days seven\nkey 1 hmac-sha256 text:a".into(), 1, K::LifetimeOutOfRange),
        ("lifetime-days 7 days\nkey 1 hmac-sha256 text:a".into(), 1, K::TrailingText("the number of days")),
        ("skew-days 8\nkey 1 hmac-sha256 text:a".into(), 1, K::SkewOutOfRange),
        ("skew-days -1\nkey 1 hmac-sha256 text:a".into(), 1, K::SkewOutOfRange),
        ("skew-days\nkey 1 hmac-sha256 text:a".into(), 1, K::MissingValue("the number of days")),
        ("lifetime-days 7\nlifetime-days 8\nkey 1 hmac-sha256 text:a".into(), 2, K::DuplicateSetting("lifetime-days")),
        ("# only a comment\n\nlifetime-days 7\n".into(), 4, K::NoKeys),
        ("".into(), 1, K::NoKeys),
    ];
    for (text, line, kind) in cases {
        let e = err(&text);
        assert_eq!(e.kind, kind, "{text:?}");
        assert_eq!(e.line, Some(line), "{text:?}");
        let shown = e.to_string();
        assert!(shown.contains(&format!("line {line}:")), "{shown}");
        assert!(!shown.contains(secret_hex) && !shown.contains("notbase64"), "{shown}");
    }
}

#[test]
fn a_secret_pasted_on_its_own_line_is_not_echoed() {
    let e = err(&format!("{GOOD_B64}\nkey 1 hmac-sha256 text:x"));
    assert_eq!(e.line, Some(1));
    assert!(!e.to_string().contains(GOOD_B64), "{e}");
    let e = err("hex:00112233445566778899aabbccddeeff");
    assert!(!e.to_string().contains("0011223344"), "{e}");
}

#[test]
fn text_secrets_are_the_rest_of_the_line_verbatim() {
    // Spaces inside and a CR line ending: the secret is "a b  c", not "a".
    let with_spaces = Keyring::parse("key 1 hmac-sha1 text:a b  c\r\n").unwrap();
    let reference = Keyring::with_key(batv_core::Key::new(1, Scheme::HmacSha1, b"a b  c").unwrap());
    let t = reference.sign_at("u@example.com", 0).unwrap();
    assert_eq!(with_spaces.status_at(&t, 0), Outcome::Valid);
    // `#` inside a secret is part of it, not a comment.
    let hash = Keyring::parse("key 1 hmac-sha1 text:k3y-with-symbols!@#").unwrap();
    let reference = Keyring::with_key(batv_core::Key::new(1, Scheme::HmacSha1, b"k3y-with-symbols!@#").unwrap());
    assert_eq!(hash.sign_at("u@example.com", 0).unwrap(), reference.sign_at("u@example.com", 0).unwrap());
}

#[test]
fn hex_and_base64_secrets_decode() {
    let hex = Keyring::parse("key 1 hmac-sha256 hex:00112233445566778899AABBCCDDEEFF").unwrap();
    let raw: Vec<u8> = (0u8..16).map(|i| i * 0x11).collect();
    let reference = Keyring::with_key(batv_core::Key::new(1, Scheme::HmacSha256, &raw).unwrap());
    assert_eq!(hex.sign_at("u@example.com", 0).unwrap(), reference.sign_at("u@example.com", 0).unwrap());
    let b64 = Keyring::parse("key 1 hmac-sha256 base64:ABEiM0RVZneImaq7zN3u/w==").unwrap();
    assert_eq!(b64.sign_at("u@example.com", 0).unwrap(), reference.sign_at("u@example.com", 0).unwrap());
}


#[cfg(unix)]
#[test]
fn load_refuses_files_other_users_can_read_or_write() {
    use std::os::unix::fs::PermissionsExt;
    let dir = TempDir::new("perms");
    let path = dir.write_private("batv.keys", "key 1 hmac-sha256 text:perm secret\n");
    for (mode, ok) in [(0o600, true), (0o400, true), (0o640, true), (0o644, false), (0o660, false), (0o602, false), (0o666, false)] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).unwrap();
        match Keyring::load(&path) {
            Ok(_) => assert!(ok, "mode {mode:o} was accepted"),
            Err(e) => {
                assert!(!ok, "mode {mode:o} refused: {e}");
                assert_eq!(e.kind, K::InsecurePermissions { mode });
                let shown = e.to_string();
                assert!(shown.contains(&format!("chmod 600 {}", path.display())), "{shown}");
                assert!(!shown.contains("perm secret"), "{shown}");
            }
        }
    }
}

#[test]
fn load_errors_name_the_file_and_line() {
    let dir = TempDir::new("lines");
    let path = dir.write_private("batv.keys", "# ok\nkey 1 hmac-sha256 text:a\nsign-key 9\n");
    let e = Keyring::load(&path).unwrap_err();
    assert_eq!(e.to_string(), format!("keyring {} line 3: sign-key 9 names a key that is not defined", path.display()));

    std::fs::write(&path, b"key 1 hmac-sha256 text:a\n\xff\n").unwrap();
    let e = Keyring::load(&path).unwrap_err();
    assert_eq!((e.kind.clone(), e.line), (K::NotUtf8, Some(2)));

    let missing = path.with_file_name("absent.keys");
    let e = Keyring::load(&missing).unwrap_err();
    assert_eq!(e.kind, K::Io(std::io::ErrorKind::NotFound));
    assert!(e.to_string().starts_with(&format!("keyring {}: cannot read the file", missing.display())), "{e}");

    let e = Keyring::load(path.parent().unwrap()).unwrap_err();
    assert_eq!(e.kind, K::NotAFile);
}

#[test]
fn generated_keyrings_round_trip_through_the_file_text() {
    let a = Keyring::generate().unwrap();
    let b = Keyring::generate().unwrap();
    let now = 1_795_700_000;
    let t = a.sign_at("user@example.com", now).unwrap();
    // 32 random bytes: two generations differ.
    assert_eq!(b.status_at(&t, now), Outcome::BadSignature);
    let text = a.to_file_text();
    let again = Keyring::parse(&text).unwrap();
    assert_eq!(again.sign_at("user@example.com", now).unwrap(), t);
    assert!(text.contains("key 1 hmac-sha256 base64:"), "{}", text.lines().count());
    // Debug shows numbers and schemes, never the secret.
    let secret_b64 = text.lines().find_map(|l| l.strip_prefix("key 1 hmac-sha256 base64:")).unwrap();
    assert!(!format!("{a:?}").contains(secret_b64));
}

#[test]
fn rotation_adds_the_next_key_and_keeps_the_old_one_verifying() {
    let now = 1_795_700_000;
    let old = Keyring::parse("key 8 hmac-sha1 text:old key\n").unwrap();
    let old_tag = old.sign_at("user@example.com", now).unwrap();
    let new = old.rotated(1_795_700_000).unwrap();
    assert_eq!(new.signing_key().number(), 9);
    assert_eq!(new.signing_key().scheme(), Scheme::HmacSha1);
    assert_eq!(new.status_at(&old_tag, now), Outcome::Valid);
    let new_tag = new.sign_at("user@example.com", now).unwrap();
    assert!(new_tag.starts_with("prvs=9"));
    assert_eq!(old.status_at(&new_tag, now), Outcome::UnknownKey);
    // 9 wraps to 0; the file text keeps the text: secret as text.
    let wrapped = new.rotated(1_795_700_000).unwrap();
    assert_eq!(wrapped.signing_key().number(), 0);
    let text = wrapped.to_file_text();
    assert!(text.contains("key 8 hmac-sha1 text:old key\n"));
    assert!(text.contains("sign-key 0\n"));
    assert_eq!(Keyring::parse(&text).unwrap().status_at(&old_tag, now), Outcome::Valid);
}

#[test]
fn rotation_to_another_scheme_signs_with_it_and_keeps_the_old_key() {
    let now = 1_795_700_000;
    let old = Keyring::parse("key 0 hmac-sha1 text:shared with exim\n").unwrap();
    let old_tag = old.sign_at("User@Example.com", now).unwrap();
    let new = old.rotated_with(Scheme::HmacSha256, 1_795_700_000).unwrap();
    assert_eq!(new.signing_key().number(), 1);
    assert_eq!(new.signing_key().scheme(), Scheme::HmacSha256);
    assert_eq!(new.key(0).unwrap().scheme(), Scheme::HmacSha1);
    assert_eq!(new.status_at(&old_tag, now), Outcome::Valid);
    // The new key really is hmac-sha256: it signs the lower-cased address, so a relay that
    // upper-cases the tag and the address does not break it.
    let tag = new.sign_at("User@Example.com", now).unwrap();
    assert!(tag.starts_with("prvs=1"), "{tag}");
    assert_eq!(new.status_at(&tag.to_ascii_uppercase().replacen("PRVS=", "prvs=", 1), now), Outcome::Valid);
    // And the same scheme again is what `rotated` does.
    assert_eq!(new.rotated_with(Scheme::HmacSha256, 1_795_700_000).unwrap().signing_key().scheme(), Scheme::HmacSha256);
}

#[test]
fn rotation_adds_exactly_one_signing_key_and_changes_nothing_else() {
    let now = 1_795_700_000;
    let old = Keyring::parse(
        "lifetime-days 12\nskew-days 3\nsign-key 4\nkey 4 hmac-sha256 text:four\nkey 7 hmac-sha1 text:seven\nkey 5 hmac-sha256 hex:000102030405060708090a0b0c0d0e0f\n",
    )
    .unwrap();
    for new in [old.rotated(1_795_700_000).unwrap(), old.rotated_with(Scheme::HmacSha1, 1_795_700_000).unwrap()] {
        assert_eq!((new.lifetime_days(), new.skew_days()), (12, 3));
        // Key 5 is after the sign key, but taken: the first free number after it is 6.
        assert_eq!(old.new_key_number(now).unwrap(), 6);
        assert_eq!(new.signing_key().number(), 6);
        assert_eq!(new.keys().map(|k| k.number()).collect::<Vec<_>>(), [4, 5, 6, 7]);
        for kept in [4, 5, 7] {
            let alone = Keyring::with_key(old.key(kept).unwrap().clone()).with_lifetime_days(12).unwrap();
            let tag = alone.sign_at("rotation@example.com", now).unwrap();
            assert_eq!(new.status_at(&tag, now), Outcome::Valid, "key {kept} still verifies");
        }
    }
}

/// The order a new key's number is taken in: after the sign key, wrapping from 9 to 0, the
/// first free number; in a full keyring, the first key past its window; otherwise none.
#[test]
fn a_new_key_takes_a_free_number_or_one_past_its_window_and_never_another() {
    const DAY: i64 = 86_400;
    let now = 1_795_700_000; // 2026-11-26, day 20783
    let today = now / DAY;
    let ring = |numbers: &[u8], sign: u8, retired: &[(u8, &str)]| {
        let mut text = format!("sign-key {sign}\n");
        for n in numbers {
            text.push_str(&format!("key {n} hmac-sha256 text:key number {n}\n"));
        }
        for (n, date) in retired {
            text.push_str(&format!("retired {n} {date}\n"));
        }
        Keyring::parse(&text).unwrap()
    };
    assert_eq!(ring(&[9], 9, &[]).new_key_number(now).unwrap(), 0);
    assert_eq!(ring(&[0, 9], 9, &[]).new_key_number(now).unwrap(), 1);
    assert_eq!(ring(&[0, 1, 2, 3, 5, 9], 2, &[]).new_key_number(now).unwrap(), 4);
    assert_eq!(ring(&[0, 1, 2, 3, 4, 5, 6, 7, 8], 3, &[]).new_key_number(now).unwrap(), 9);

    let all: Vec<u8> = (0..10).collect();
    // Full, and no key records when it stopped signing: refused, naming the next key.
    let full = ring(&all, 3, &[]);
    let e = full.rotated(now).unwrap_err();
    assert_eq!(e.kind, K::NoFreeKeyNumber { retire: 4, prunable_from: None });
    assert!(e.to_string().contains("key 4 is next in line: delete its line by hand"), "{e}");
    assert_eq!(full.added(Scheme::HmacSha256, now).unwrap_err().kind, e.kind);
    // Full, keys 6 and 8 recorded, neither past its window (7 + 1 days): the one that goes
    // first is named, with the day from which it may.
    let recorded = ring(&all, 3, &[(8, "2026-11-21"), (6, "2026-11-24")]);
    assert_eq!(recorded.key(8).unwrap().stopped_signing(), Some(today - 5));
    let e = recorded.rotated(now).unwrap_err();
    assert_eq!(e.kind, K::NoFreeKeyNumber { retire: 8, prunable_from: Some(today - 5 + 9) });
    assert!(e.to_string().contains("key 8 may be pruned from 2026-11-30 on"), "{e}");
    assert!(recorded.prunable(8, (today + 4) * DAY) && !recorded.prunable(8, (today + 3) * DAY));
    // Past its window, key 8 is replaced; key 4, after the sign key but unrecorded, is not.
    let later = (today + 4) * DAY;
    let tags: Vec<String> = (0..10u8)
        .map(|n| Keyring::with_key(recorded.key(n).unwrap().clone()).sign_at("user@example.com", later).unwrap())
        .collect();
    for new in [recorded.rotated(later).unwrap(), recorded.added(Scheme::HmacSha1, later).unwrap()] {
        for n in (0..10u8).filter(|&n| n != 8) {
            assert_eq!(new.status_at(&tags[usize::from(n)], later), Outcome::Valid, "key {n}");
        }
        assert_eq!(new.status_at(&tags[8], later), Outcome::BadSignature, "key 8 was replaced");
    }
    assert_eq!(recorded.rotated(later).unwrap().signing_key().number(), 8);
}

#[test]
fn staged_rotation_adds_promotes_and_prunes() {
    const DAY: i64 = 86_400;
    let t0 = 1_795_700_000; // 2026-11-26
    let old = Keyring::parse("key 1 hmac-sha256 text:the first key\n").unwrap();
    let old_tag = old.sign_at("user@example.com", t0).unwrap();

    // Added: key 2 verifies what it will sign, key 1 still signs.
    let added = old.added(Scheme::HmacSha256, t0).unwrap();
    assert_eq!(added.signing_key().number(), 1);
    assert_eq!(added.sign_at("user@example.com", t0).unwrap(), old_tag);
    assert_eq!(added.keys().map(|k| k.number()).collect::<Vec<_>>(), [1, 2]);
    // A second addition takes the next free number, 3: key 2 has not signed, and stays.
    let twice = added.added(Scheme::HmacSha256, t0).unwrap();
    assert_eq!(twice.keys().map(|k| k.number()).collect::<Vec<_>>(), [1, 2, 3]);

    // Promoted a day later: key 2 signs, key 1 is recorded as having stopped that day.
    let promoted = added.promoted(2, t0 + DAY).unwrap();
    let new_tag = promoted.sign_at("user@example.com", t0 + DAY).unwrap();
    assert!(new_tag.starts_with("prvs=2"));
    assert_eq!(added.status_at(&new_tag, t0 + DAY), Outcome::Valid, "hosts not yet promoted verify it");
    assert_eq!(promoted.status_at(&old_tag, t0 + DAY), Outcome::Valid);
    let stopped = promoted.key(1).unwrap().stopped_signing().unwrap();
    assert_eq!(stopped, (t0 + DAY).div_euclid(DAY));
    assert_eq!(promoted.key(2).unwrap().stopped_signing(), None);
    assert_eq!(added.promoted(7, t0).unwrap_err().kind, K::NoSuchKey(7));

    // The record survives the file, and an older parser's error would name the directive.
    let text = promoted.to_file_text();
    assert!(text.contains("\nretired 1 2026-11-27\n"), "{}", text.lines().filter(|l| !l.starts_with("key")).collect::<Vec<_>>().join("|"));
    let again = Keyring::parse(&text).unwrap();
    assert_eq!(again.key(1).unwrap().stopped_signing(), Some(stopped));

    // Pruned: not while a tag of key 1 may still verify (lifetime 7 + skew 1 days after its
    // last signing day), and then it goes; the sign key and keys without a record stay.
    let last_day = t0 + DAY + 8 * DAY;
    assert!(!promoted.prunable(1, last_day));
    // A tag key 1 made on its last day, by a signer whose clock ran a day ahead, verifies
    // until then.
    let ahead = added.sign_at("user@example.com", t0 + 2 * DAY).unwrap();
    assert_eq!(promoted.status_at(&ahead, last_day), Outcome::Valid);
    assert_eq!(promoted.pruned(last_day).keys().count(), 2);
    let pruned = promoted.pruned(last_day + DAY);
    assert_eq!(pruned.keys().map(|k| k.number()).collect::<Vec<_>>(), [2]);
    // Now key 3's slot is free and key 1's may be reused after the window.
    assert!(pruned.added(Scheme::HmacSha1, last_day + DAY).is_ok());
}

#[test]
fn retired_lines_are_checked() {
    let two = "sign-key 2\nkey 1 hmac-sha256 text:a\nkey 2 hmac-sha256 text:b\n";
    for (extra, line, kind) in [
        ("retired 1 2026-13-01\n", 4, K::BadRetired),
        ("retired 1\n", 4, K::BadRetired),
        ("retired x 2026-11-26\n", 4, K::BadRetired),
        ("retired 1 2026-11-26 extra\n", 4, K::BadRetired),
        ("retired 1 2026-11-26\nretired 1 2026-11-27\n", 5, K::DuplicateSetting("retired for one key")),
    ] {
        let e = Keyring::parse(&format!("{two}{extra}")).unwrap_err();
        assert_eq!((e.line, e.kind.clone()), (Some(line), kind), "{extra:?}: {e}");
    }
    assert!(Keyring::parse(&format!("{two}retired 1 2026-11-26 # comment\n")).is_ok());
    // A record for the key that signs again, or for a key deleted by hand, is out of date:
    // ignored, so that such an edit leaves a working keyring.
    for stale in ["retired 2 2026-11-26\n", "retired 5 2026-11-26\n"] {
        let ring = Keyring::parse(&format!("{two}{stale}")).unwrap();
        assert!(ring.keys().all(|k| k.stopped_signing().is_none()), "{stale:?}");
        assert!(!ring.to_file_text().contains("retired"));
    }
}

#[test]
fn a_word_with_a_control_character_is_not_shown() {
    let e = Keyring::parse("\0key 1 hmac-sha256 text:x\n").unwrap_err();
    assert_eq!(e.kind, K::UnknownDirective(FileWord::Unknown { chars: 4, kind: WordKind::Control }));
    assert!(!e.to_string().bytes().any(|b| b < 0x20), "{e:?}");
    assert!(e.to_string().contains("unknown directive: a word of 4 characters, a control character among them"), "{e}");
    let e = Keyring::parse("key 1 hmac\x1bsha1 text:x\n").unwrap_err();
    assert_eq!(e.kind, K::UnknownScheme(FileWord::Unknown { chars: 9, kind: WordKind::Control }));
}

/// Words of a broken line that may be a secret are described, never echoed: a short secret
/// where the scheme belongs, the second half of a wrapped base64 secret, and other words that
/// are no name the file format knows.
#[test]
fn a_word_that_is_no_known_name_is_described_not_echoed() {
    let cases = [
        ("key 0 Hunter2Secret\n", "Hunter2Secret", "line 1: unknown scheme: a word of 13 letters and digits (expected"),
        ("key 0 Hunter2Secret hmac-sha256 text:x\n", "Hunter2Secret", "unknown scheme: a word of 13 letters and digits"),
        // A 32-byte base64 secret wrapped after 24 characters: the first part decodes to 18
        // bytes, so the error is the second part, alone on its line.
        ("key 1 hmac-sha256 base64:q83vEjRWeJCrze8SNFZ4kKvN\n7xI0VniQq83vEjRWeJA=\n", "7xI0VniQq83vEjRWeJA=", "line 2: unknown directive: a word of 20 base64 characters (expected key,"),
        ("sign-key 1\nkey 1 hmac-sha256 text:a\ns3cr3t\n", "s3cr3t", "line 3: unknown directive: a word of 6 letters and digits"),
        ("key 1 hmac-sha256 text:a\nhunter\n", "hunter", "unknown directive: a word of 6 letters"),
        ("key 1 hmac-sha256 text:a\n12345678\n", "12345678", "unknown directive: a number of 8 digits"),
        ("key 1 hmac-sha256 text:a\nc0ffee+/=\n", "c0ffee+/=", "unknown directive: a word of 9 base64 characters"),
        ("key 1 hmac-sha256 text:a\npässwörd\n", "pässwörd", "unknown directive: a word of 8 characters, some not ASCII"),
        ("key 1 hmac-sha256 text:a\nhunter-2!\n", "hunter-2!", "unknown directive: a word of 9 characters with punctuation"),
        ("key 1 text:hunter2\n", "hunter2", "unknown scheme: a word of 12 characters that starts with text:, like a secret"),
    ];
    let mut echoed = 0;
    for (text, word, message) in cases {
        let e = err(text);
        let shown = [e.to_string(), format!("{e:?}")];
        if shown.iter().any(|s| s.contains(word)) {
            echoed += 1;
            eprintln!("echoes {word:?}: {e}");
        }
        assert!(e.to_string().contains(message), "{text:?}: {e}");
    }
    assert_eq!(
        err("key 1 hmac-sha256 text:a\npässwörd\n").kind,
        K::UnknownDirective(FileWord::Unknown { chars: 8, kind: WordKind::NonAscii })
    );
    assert_eq!(
        err("key 1 hmac-sha256 text:a\nhunter-x!\n").kind,
        K::UnknownDirective(FileWord::Unknown { chars: 9, kind: WordKind::Punctuation })
    );
    assert_eq!(echoed, 0, "{echoed} of {} messages echo a word from the file", cases.len());
    // Not even Debug writes a secret's prefix that text could follow: the fuzz target's rule.
    let e = err("key 1 base64:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=\n");
    for shown in [e.to_string(), format!("{e:?}")] {
        for (i, _) in shown.match_indices("base64:") {
            assert!(matches!(shown[i + 7..].chars().next(), None | Some(' ' | ',')), "{shown}");
        }
    }
}

/// A name the file format knows is shown as written, wherever it stands: it is no secret, and
/// it says what went wrong.
#[test]
fn a_known_name_out_of_place_is_shown() {
    for (text, message) in [
        ("hmac-sha256 base64:AAAA\n", "line 1: unknown directive 'hmac-sha256' (expected key,"),
        ("key 1 sign-key text:x\n", "line 1: unknown scheme 'sign-key' (expected hmac-sha256 or hmac-sha1)"),
        ("Key 1 hmac-sha256 text:x\n", "line 1: unknown directive 'Key' (expected key,"),
        ("key 1 hmac-sha256 text:x\nHMAC-SHA1\n", "line 2: unknown directive 'HMAC-SHA1'"),
    ] {
        assert!(err(text).to_string().contains(message), "{text:?}: {}", err(text));
    }
}
/// The documented migration from Exim's `${prvs}` (docs/exim.md): key 0 `hmac-sha1` is added
/// by hand and made the sign key while key 1, which signed until then, still verifies the
/// tags it made. A rotation must not take key 1's number.
#[test]
fn rotation_after_the_exim_migration_keeps_the_key_that_still_verifies() {
    let now = 1_795_700_000;
    let before = Keyring::parse(&format!("sign-key 1\nkey 1 hmac-sha256 base64:{GOOD_B64}\n")).unwrap();
    let hour_old = before.sign_at("user@example.com", now - 3600).unwrap();
    let migrated = Keyring::parse(&format!(
        "sign-key 0\nkey 1 hmac-sha256 base64:{GOOD_B64}\nkey 0 hmac-sha1 text:secret shared with exim\n"
    ))
    .unwrap();
    assert_eq!(migrated.status_at(&hour_old, now), Outcome::Valid);
    let rotated = migrated.rotated(now).unwrap();
    assert_eq!(rotated.status_at(&hour_old, now), Outcome::Valid, "key 1's tag after --rotate");
    assert_eq!(rotated.signing_key().number(), 2);
    let added = migrated.added(Scheme::HmacSha256, now).unwrap();
    assert_eq!(added.status_at(&hour_old, now), Outcome::Valid, "key 1's tag after --add");
    for new in [&rotated, &added] {
        assert_eq!(new.keys().map(|k| k.number()).collect::<Vec<_>>(), [0, 1, 2]);
    }
}

#[test]
fn retired_dates_round_trip_and_nonsense_is_refused() {
    use batv_core::internals::{date_of_day, day_of_date};
    for (date, day) in [("1970-01-01", 0), ("2026-11-26", 20_783), ("2000-02-29", 11_016), ("1969-12-31", -1)] {
        assert_eq!(day_of_date(date), Some(day), "{date}");
        assert_eq!(date_of_day(day), date);
    }
    for bad in ["2026-02-30", "2026-13-01", "2026-1-01", "20261126", "2026-11-26x", "+026-11-26"] {
        assert_eq!(day_of_date(bad), None, "{bad}");
    }
}
