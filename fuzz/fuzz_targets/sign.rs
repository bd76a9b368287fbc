//! Signing arbitrary addresses at arbitrary times into arbitrary buffers.
//!
//! Input: 2 bytes buffer length (LE, taken mod 300), 8 bytes `now` (LE i64), then the address.
//! Invariants: `sign` then `verify` returns the input; the tag is the one an independent HMAC
//! and day computation gives; signing is deterministic; the null sender and tagged addresses
//! come back unchanged; an address SPEC section 5 refuses, or one with `<`, `>` or whitespace
//! outside a quoted local part, gets the named problem; the tag lives through its expiry day
//! and not a day longer; `sign_into` writes exactly the signed form when the buffer is large
//! enough and reports the needed size (which then suffices) when it is not.
#![no_main]

use batv_core::{AddressProblem, SignError, Signed};
use batv_fuzz::*;
use libfuzzer_sys::fuzz_target;
use std::borrow::Cow;

const DAY: i64 = 86_400;

fuzz_target!(|data: &[u8]| {
    let buf_len = usize::from(u16::from_le_bytes([
        data.first().copied().unwrap_or(0),
        data.get(1).copied().unwrap_or(1),
    ])) % 300;
    let now = read_i64(data.get(2..).unwrap_or(&[]));
    let input = text(data.get(10..).unwrap_or(&[]));
    let addr: &str = &input;
    for (ring, scheme_key) in [(keyring(), 1u8), (keyring_sha1(), 0u8)] {
        check(ring, scheme_key, addr, now, buf_len);
    }
});

fn expected_problem(a: &str) -> Option<AddressProblem> {
    // SPEC section 5, restated: length first, then control characters, then the shape.
    let b = a.as_bytes();
    if b.len() > 254 {
        return Some(AddressProblem::TooLong { len: b.len() });
    }
    if b.iter().any(|&c| c < 0x20 || c == 0x7f) {
        return Some(AddressProblem::ControlCharacter);
    }
    // RFC 5321: a space, `<` or `>` only inside a local part that is one quoted string.
    let outside = match a.rfind('@') {
        Some(at) if is_one_quoted_string(&a[..at]) => &a[at..],
        _ => a,
    };
    if outside.contains(['<', '>']) {
        return Some(AddressProblem::AngleBrackets);
    }
    if outside.contains(char::is_whitespace) {
        return Some(AddressProblem::Whitespace);
    }
    let Some(at) = a.rfind('@') else { return Some(AddressProblem::NoAt) };
    if at == 0 || (a.starts_with('"') && at < 3) {
        return Some(AddressProblem::EmptyLocalPart);
    }
    if at + 1 == a.len() {
        return Some(AddressProblem::EmptyDomain);
    }
    if b.len() + 16 > 254 {
        return Some(AddressProblem::TooLong { len: b.len() });
    }
    None
}

/// `"`, characters with no unescaped `"` among them (`\` escapes the next one), `"`.
fn is_one_quoted_string(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else { return false };
    let mut escaped = false;
    for c in inner.chars() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return false,
            (false, _) => {}
        }
    }
    !escaped
}

fn check(ring: &batv_core::Keyring, key: u8, addr: &str, now: i64, buf_len: usize) {
    let got = ring.sign_at(addr, now);
    let mut buf = vec![0u8; buf_len];
    let into = ring.sign_into(addr, now, &mut buf);
    if addr.is_empty() || addr == "<>" || batv_core::is_tagged(addr) {
        assert!(matches!(got, Ok(Cow::Borrowed(a)) if a == addr), "{addr:?} must stay unchanged");
        assert_eq!(into, Ok(Signed::Unchanged));
        return;
    }
    if let Some(problem) = expected_problem(addr) {
        assert_eq!(got, Err(SignError::Address(problem)), "{addr:?}");
        assert_eq!(into, Err(SignError::Address(problem)), "{addr:?}");
        return;
    }
    let signed = match got {
        Ok(Cow::Owned(s)) => s,
        other => panic!("sign_at({addr:?}, {now}) = {other:?}"),
    };
    // The tag is the oracle's.
    let (scheme, secret) = oracle_key(key).expect("the signing key is in the oracle");
    let stamp = oracle_stamp(now, LIFETIME);
    let mac_input = match scheme {
        batv_core::Scheme::HmacSha256 => addr.to_ascii_lowercase(),
        batv_core::Scheme::HmacSha1 => addr.to_string(),
    };
    let mac = oracle_mac(scheme, secret, &kddd(key, stamp), mac_input.as_bytes());
    let fields = format!("{key}{stamp:03}{:02x}{:02x}{:02x}", mac[0], mac[1], mac[2]);
    let want = match addr.strip_prefix('"') {
        Some(rest) => format!("\"prvs={fields}={rest}"),
        None => format!("prvs={fields}={addr}"),
    };
    assert_eq!(signed, want, "sign_at({addr:?}, {now})");
    assert!(signed.len() <= batv_core::SIGNED_MAX);
    // Deterministic.
    assert_eq!(ring.sign_at(addr, now).ok().as_deref(), Some(signed.as_str()));
    // sign then verify returns the input, and strip agrees.
    assert_eq!(ring.verify_at(&signed, now).map(String::from), Ok(addr.to_string()));
    assert_eq!(batv_core::strip(&signed), addr);
    // Signing a signed address changes nothing.
    assert!(matches!(ring.sign_at(&signed, now), Ok(Cow::Borrowed(_))));
    // Lifetime: valid through the expiry day, a day early (skew), not a day late.
    let day = now.div_euclid(DAY);
    let at_day = |d: i64| d.checked_mul(DAY);
    if let (Some(late), Some(early), Some(too_early)) =
        (at_day(day + 8), at_day(day - 1), at_day(day - 2))
    {
        let last = late - 1; // the last second of the expiry day
        assert!(ring.verify_at(&signed, last).is_ok(), "{signed} on its expiry day");
        assert!(ring.verify_at(&signed, early).is_ok(), "{signed} a day early (skew)");
        assert_eq!(ring.status_at(&signed, late).as_str(), "expired", "{signed} a day late");
        assert_eq!(ring.status_at(&signed, too_early).as_str(), "expired", "{signed} two days early");
    }
    // The buffer protocol.
    match into {
        Ok(Signed::Written(n)) => {
            assert!(buf_len >= signed.len());
            assert_eq!(&buf[..n], signed.as_bytes());
        }
        Err(SignError::BufferTooSmall { needed }) => {
            assert!(buf_len < signed.len());
            assert_eq!(needed, signed.len());
            let mut big = vec![0u8; needed];
            assert_eq!(ring.sign_into(addr, now, &mut big), Ok(Signed::Written(needed)));
            assert_eq!(big, signed.as_bytes());
        }
        other => panic!("sign_into({addr:?}, {now}, {buf_len}) = {other:?}"),
    }
}
