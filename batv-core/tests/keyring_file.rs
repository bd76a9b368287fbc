//! The keyring file (SPEC section 8): every error names its line and what is wrong, never the
//! secret; the permission check; generation; rotation; and the round trip through the file text.

use batv_core::{Keyring, KeyringErrorKind as K, Outcome, Scheme};
use std::path::PathBuf;

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
        ("kye 1 hmac-sha256 text:x".into(), 1, K::UnknownDirective("kye".into())),
        ("\n\nkey".into(), 3, K::MissingValue("the key number")),
        ("key 1".into(), 1, K::MissingValue("the scheme")),
        ("key 1 hmac-sha256".into(), 1, K::MissingValue("the secret")),
        ("key 10 hmac-sha256 text:x".into(), 1, K::BadKeyNumber),
        ("key a hmac-sha256 text:x".into(), 1, K::BadKeyNumber),
        ("key 1 hmac-md5 text:x".into(), 1, K::UnknownScheme("hmac-md5".into())),
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

fn scratch(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("batv-core-test-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("batv.keys")
}

#[cfg(unix)]
#[test]
fn load_refuses_files_other_users_can_read_or_write() {
    use std::os::unix::fs::PermissionsExt;
    let path = scratch("perms");
    std::fs::write(&path, "key 1 hmac-sha256 text:perm secret\n").unwrap();
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
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn load_errors_name_the_file_and_line() {
    let path = scratch("lines");
    std::fs::write(&path, "# ok\nkey 1 hmac-sha256 text:a\nsign-key 9\n").unwrap();
    #[cfg(unix)]
    std::fs::set_permissions(&path, std::os::unix::fs::PermissionsExt::from_mode(0o600)).unwrap();
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
    std::fs::remove_dir_all(path.parent().unwrap()).unwrap();
}

#[test]
fn generated_keyrings_round_trip_through_the_file_text() {
    let a = Keyring::generate().unwrap();
    let b = Keyring::generate().unwrap();
    let now = 1_795_700_000;
    let t = a.sign_at("user@example.com", now).unwrap().into_owned();
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
    let old_tag = old.sign_at("user@example.com", now).unwrap().into_owned();
    let new = old.rotated().unwrap();
    assert_eq!(new.signing_key().number(), 9);
    assert_eq!(new.signing_key().scheme(), Scheme::HmacSha1);
    assert_eq!(new.status_at(&old_tag, now), Outcome::Valid);
    let new_tag = new.sign_at("user@example.com", now).unwrap().into_owned();
    assert!(new_tag.starts_with("prvs=9"));
    assert_eq!(old.status_at(&new_tag, now), Outcome::UnknownKey);
    // 9 wraps to 0; the file text keeps the text: secret as text.
    let wrapped = new.rotated().unwrap();
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
    let old_tag = old.sign_at("User@Example.com", now).unwrap().into_owned();
    let new = old.rotated_with(Scheme::HmacSha256).unwrap();
    assert_eq!(new.signing_key().number(), 1);
    assert_eq!(new.signing_key().scheme(), Scheme::HmacSha256);
    assert_eq!(new.key(0).unwrap().scheme(), Scheme::HmacSha1);
    assert_eq!(new.status_at(&old_tag, now), Outcome::Valid);
    // The new key really is hmac-sha256: it signs the lower-cased address, so a relay that
    // upper-cases the tag and the address does not break it.
    let tag = new.sign_at("User@Example.com", now).unwrap().into_owned();
    assert!(tag.starts_with("prvs=1"), "{tag}");
    assert_eq!(new.status_at(&tag.to_ascii_uppercase().replacen("PRVS=", "prvs=", 1), now), Outcome::Valid);
    // And the same scheme again is what `rotated` does.
    assert_eq!(new.rotated_with(Scheme::HmacSha256).unwrap().signing_key().scheme(), Scheme::HmacSha256);
}
