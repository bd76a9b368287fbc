//! Property tests: random addresses sign and verify back to the original under both schemes,
//! and any change to the key number, the day stamp, the hex or the address is rejected.
//! Hex in either case is accepted, and so is `PRVS=`.

use batv_core::{Keyring, Outcome};
use proptest::prelude::*;

const NOW: i64 = 1_795_700_000;

fn keyring(scheme: &str) -> Keyring {
    // Keys 1 and 2 share a scheme but not a secret, so a swapped key number must fail.
    Keyring::parse(&format!(
        "sign-key 1\nkey 1 {scheme} text:property secret one\nkey 2 {scheme} text:property secret two\n"
    ))
    .unwrap()
}

/// Addresses with `=`, `+`, dots, UTF-8, upper case, and quoted local parts with spaces and `@`.
fn address() -> impl Strategy<Value = String> {
    let plain = "[a-zA-Z0-9][a-zA-Z0-9=+._-]{0,30}[äöüéß日本]{0,2}[a-zA-Z0-9=+]{0,5}";
    let quoted = "\"[a-zA-Z0-9 =+@.]{1,20}\"";
    let local = prop_oneof![3 => plain, 1 => quoted];
    let domain = "[a-zA-Z0-9][a-zA-Z0-9-]{0,15}(\\.[a-zA-Z]{2,6}){1,2}";
    (local, domain).prop_map(|(l, d)| format!("{l}@{d}"))
}

/// A character that differs from `c` in more than case.
fn other_char(c: char) -> char {
    if c.eq_ignore_ascii_case(&'q') { 'z' } else { 'q' }
}

/// Where the ten tag characters start in a signed address (after an optional `"`).
fn tag_start(signed: &str) -> usize {
    usize::from(signed.starts_with('"')) + 5
}

fn replace_at(s: &str, byte_index: usize, with: char) -> String {
    let mut out = String::with_capacity(s.len());
    let ch = s[byte_index..].chars().next().unwrap();
    out.push_str(&s[..byte_index]);
    out.push(with);
    out.push_str(&s[byte_index + ch.len_utf8()..]);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    #[test]
    fn sign_then_verify(addr in address(), sha1 in any::<bool>(), day in 0i64..40_000) {
        let keys = keyring(if sha1 { "hmac-sha1" } else { "hmac-sha256" });
        let now = day * 86_400 + 4_321;
        let signed = keys.sign_at(&addr, now).unwrap();
        prop_assert_eq!(signed.len(), addr.len() + 16);
        prop_assert_eq!(keys.verify_at(&signed, now).unwrap().to_string(), addr.clone());
        prop_assert_eq!(&*batv_core::strip(&signed), addr.as_bytes());
        prop_assert!(batv_core::is_tagged(&signed));
        // Signing is deterministic for an address, key and day, and never double-tags.
        prop_assert_eq!(keys.sign_at(&addr, now + 3_600).unwrap(), signed.as_str());
        prop_assert_eq!(keys.sign_at(&signed, now).unwrap(), signed.as_str());

        let t = tag_start(&signed);
        // Upper-case hex and an upper-case PRVS= are accepted.
        let upper_hex = format!("{}{}{}", &signed[..t + 4], signed[t + 4..t + 10].to_ascii_uppercase(), &signed[t + 10..]);
        prop_assert_eq!(keys.status_at(&upper_hex, now), Outcome::Valid);
        let upper_prefix = format!("{}PRVS={}", &signed[..t - 5], &signed[t..]);
        prop_assert_eq!(keys.status_at(&upper_prefix, now), Outcome::Valid);
    }

    #[test]
    fn any_change_is_rejected(addr in address(), sha1 in any::<bool>(), pos in any::<prop::sample::Index>(), which in 0u8..5) {
        let keys = keyring(if sha1 { "hmac-sha1" } else { "hmac-sha256" });
        let signed = keys.sign_at(&addr, NOW).unwrap();
        let t = tag_start(&signed);
        let b = signed.as_bytes();
        let changed = match which {
            // The key number: 2 is in the keyring with another secret; 7 is not.
            0 => replace_at(&signed, t, if pos.index(2) == 0 { '2' } else { '7' }),
            // A day digit.
            1 => { let i = t + 1 + pos.index(3); replace_at(&signed, i, if b[i] == b'5' { '6' } else { '5' }) }
            // A hex digit (to another value, not just another case).
            2 => { let i = t + 4 + pos.index(6); replace_at(&signed, i, if b[i].eq_ignore_ascii_case(&b'a') { 'b' } else { 'a' }) }
            // A character of the address, changed in more than case.
            3 => {
                let starts: Vec<usize> = signed.char_indices().map(|(i, _)| i).filter(|&i| i >= t + 11).collect();
                let i = starts[pos.index(starts.len())];
                let c = signed[i..].chars().next().unwrap();
                replace_at(&signed, i, other_char(c))
            }
            // A character inserted into the address.
            _ => { let mut s = signed.clone(); s.insert(t + 11, 'x'); s }
        };
        prop_assume!(changed != signed);
        let outcome = keys.status_at(&changed, NOW);
        prop_assert_ne!(outcome, Outcome::Valid, "{} -> {}", signed, changed);
    }

    #[test]
    fn strip_is_never_tagged(s in "\\PC{0,80}") {
        prop_assert!(!batv_core::is_tagged(&batv_core::strip(&s)));
    }
}

#[test]
fn day_change_gives_bad_signature_not_expired() {
    // The MAC covers DDD, so a moved day stamp is a forgery, not an expiry.
    let keys = keyring("hmac-sha256");
    let signed = keys.sign_at("user@example.com", NOW).unwrap();
    let last_day_digit = if &signed[8..9] == "9" { '0' } else { '9' };
    let forged = replace_at(&signed, 8, last_day_digit);
    assert_ne!(forged, signed);
    assert_eq!(keys.status_at(&forged, NOW), Outcome::BadSignature);
}

#[test]
fn a_bad_mac_is_reported_before_an_expired_day() {
    // `expired` means the MAC matches and the day is out of the window (docs/scheme.md): a
    // forged tag on an old day is forged.
    let keys = keyring("hmac-sha256");
    let signed = keys.sign_at("user@example.com", NOW).unwrap();
    let later = NOW + 30 * 86_400;
    assert_eq!(keys.status_at(&signed, later), Outcome::Expired);
    let last_mac_digit = if signed.as_bytes()[14] == b'0' { '1' } else { '0' };
    let forged = replace_at(&signed, 14, last_mac_digit);
    assert_ne!(forged, signed);
    assert_eq!(keys.status_at(&forged, later), Outcome::BadSignature);
    assert_eq!(keys.status_at(&forged, NOW), Outcome::BadSignature);
}

/// `signed` with its address replaced by `received`, as a remote MTA may hand it back.
fn as_received(signed: &str, received: &str) -> String {
    format!("{}{received}", &signed[..16])
}

#[test]
fn case_changes_on_the_way_back_verify_where_the_scheme_allows() {
    let sha1 = Keyring::parse("key 1 hmac-sha1 text:secret\n").unwrap();
    // Exim's `${prvs}` signs the local part as written and the domain lower-cased.
    let signed = sha1.sign_at("User@example.com", NOW).unwrap();
    for (received, want) in [
        ("User@example.com", Outcome::Valid),
        ("User@EXAMPLE.COM", Outcome::Valid),
        ("user@example.com", Outcome::BadSignature), // the local part was signed as written
    ] {
        assert_eq!(sha1.status_at(&as_received(&signed, received), NOW), want, "{received}");
    }
    let lower = sha1.sign_at("user@example.com", NOW).unwrap();
    assert_eq!(sha1.status_at(&as_received(&lower, "USER@Example.Com"), NOW), Outcome::Valid);
    let sha256 = keyring("hmac-sha256");
    let any_case = sha256.sign_at("User@Example.COM", NOW).unwrap();
    assert_eq!(sha256.status_at(&as_received(&any_case, "uSER@eXAMPLE.com"), NOW), Outcome::Valid);
}
