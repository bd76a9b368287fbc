//! Signing arbitrary octets at arbitrary times into arbitrary buffers (docs/scheme.md,
//! "Signing", "Days and expiry").
//!
//! Input: 2 bytes buffer length (LE, taken mod 300), 8 bytes `now` (LE i64), then the address.
//! Invariants: the null sender and tagged addresses come back unchanged; what admission calls
//! malformed is an error with admission's reason, and so is what cannot be signed (no `@`, an
//! empty local part or domain, a signed form over 254 octets), named as docs/scheme.md names
//! it; anything else is signed with exactly the tag an independent HMAC and day computation
//! gives, inside the quotes of a quoted local part; the signed form is admitted as that tag,
//! verifies back to the input, strips to what the input strips to (a wild shape under the tag
//! goes too) and is not signed again; signing is deterministic;
//! the tag lives through its expiry day, a day early (skew), and not a day longer; `sign_into`
//! writes exactly that form when the buffer is large enough and reports the size needed (which
//! then suffices) when it is not; `sign_at` on text says what `sign_into` says. The day
//! arithmetic behind it (`batv_core::internals`) equals the 128-bit oracle's for this `now`.
#![no_main]

use batv_core::internals::{day_number, expiry_stamp, remaining_days, within_window};
use batv_core::{AddressProblem, Keyring, SignError, Signed};
use batv_fuzz::*;
use libfuzzer_sys::fuzz_target;

const DAY: i64 = 86_400;

fuzz_target!(|data: &[u8]| {
    let head = u16::from_le_bytes([data.first().copied().unwrap_or(0), data.get(1).copied().unwrap_or(1)]);
    let buf_len = usize::from(head) % 300;
    let now = read_i64(data.get(2..).unwrap_or(&[]));
    let addr = data.get(10..).unwrap_or(&[]);
    check_days(now, head);
    for (ring, key) in [(keyring(), 1u8), (keyring_sha1(), 0u8)] {
        check(ring, key, addr, now, buf_len);
    }
});

/// The internals against the oracle, for stamps, lifetimes and skews taken from `seed`.
fn check_days(now: i64, seed: u16) {
    assert_eq!(i128::from(day_number(now)), oracle_day(now), "day_number({now})");
    let stamp = seed % 1000;
    let skew = seed % 8;
    for lifetime in [1, 7, 365, 1 + seed % 365] {
        assert_eq!(expiry_stamp(now, lifetime), oracle_stamp(now, i64::from(lifetime)), "expiry_stamp({now}, {lifetime})");
        assert_eq!(
            within_window(stamp, now, lifetime, skew),
            oracle_in_window(stamp, now, i64::from(lifetime), i64::from(skew)),
            "within_window({stamp}, {now}, {lifetime}, {skew})"
        );
    }
    assert_eq!(remaining_days(stamp, now), oracle_remaining(stamp, now), "remaining_days({stamp}, {now})");
}

/// What signing `addr` should give: unchanged (`Ok(None)`), the signed octets, or the problem.
fn expected(addr: &[u8], key: u8, now: i64) -> Result<Option<Vec<u8>>, AddressProblem> {
    match oracle_admit(addr) {
        Want::Null | Want::Tagged(_) => return Ok(None),
        Want::Malformed(p) => return Err(p),
        Want::Untagged => {}
    }
    // Admitted: a local part that opens a quote is one quoted string.
    let text = std::str::from_utf8(addr).expect("admitted as text");
    let (local, domain) = text.rsplit_once('@').ok_or(AddressProblem::NoAt)?;
    if local.is_empty() || local == "\"\"" {
        return Err(AddressProblem::EmptyLocalPart);
    }
    if domain.is_empty() {
        return Err(AddressProblem::EmptyDomain);
    }
    if addr.len() + 16 > 254 {
        return Err(AddressProblem::TooLongToSign { len: addr.len() });
    }
    let (scheme, secret) = oracle_key(key).expect("the signing key is in the oracle");
    let stamp = oracle_stamp(now, LIFETIME);
    let m = oracle_mac(scheme, secret, &kddd(key, stamp), &mac_address(scheme, addr));
    let tag = format!("prvs={key}{stamp:03}{:02x}{:02x}{:02x}=", m[0], m[1], m[2]);
    // A quoted local part keeps the tag inside its quotes.
    Ok(Some(match addr[0] {
        b'"' => [b"\"", tag.as_bytes(), &addr[1..]].concat(),
        _ => [tag.as_bytes(), addr].concat(),
    }))
}

fn lossy(b: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(b)
}

fn check(ring: &Keyring, key: u8, addr: &[u8], now: i64, buf_len: usize) {
    let mut buf = vec![0u8; buf_len];
    let into = ring.sign_into(addr, now, &mut buf);
    let mut full = [0u8; batv_core::SIGNED_MAX];
    let got = match ring.sign_into(addr, now, &mut full) {
        Ok(Signed::Unchanged) => Ok(None),
        Ok(Signed::Written(n)) => Ok(Some(full[..n].to_vec())),
        Err(SignError::Address(p)) => Err(p),
        Err(e @ SignError::BufferTooSmall { .. }) => panic!("SIGNED_MAX does not suffice: {e:?}"),
    };
    let show = lossy(addr);
    assert_eq!(got, expected(addr, key, now), "sign_into({show:?}, {now})");

    // sign_at on text gives what sign_into gives.
    if let Ok(text) = std::str::from_utf8(addr) {
        let at = ring.sign_at(text, now);
        match &got {
            Ok(None) => assert_eq!(at.as_deref(), Ok(text)),
            Ok(Some(s)) => assert_eq!(at.as_deref().map(str::as_bytes), Ok(&s[..])),
            Err(p) => assert_eq!(at, Err(SignError::Address(*p))),
        }
    }

    // The buffer protocol.
    match (&got, into) {
        (Ok(None), Ok(Signed::Unchanged)) => {}
        (Err(p), Err(SignError::Address(q))) => assert_eq!(*p, q),
        (Ok(Some(s)), Ok(Signed::Written(n))) => assert!(buf_len >= s.len() && buf[..n] == s[..]),
        (Ok(Some(s)), Err(SignError::BufferTooSmall { needed })) => {
            assert!(buf_len < s.len() && needed == s.len(), "{buf_len} {needed} {:?}", lossy(s));
            let mut exact = vec![0u8; needed];
            assert_eq!(ring.sign_into(addr, now, &mut exact), Ok(Signed::Written(needed)));
            assert_eq!(exact, *s);
        }
        (g, i) => panic!("sign_into with {buf_len} octets = {i:?}, with {} = {g:?}", full.len()),
    }

    let Ok(Some(signed)) = got else { return };
    let signed = &signed[..];
    assert!(signed.len() <= 254);
    // Admitted as the tag that was written, for the input.
    match check_admission(signed) {
        Want::Tagged(t) => {
            assert_eq!((t.key, t.stamp), (key, oracle_stamp(now, LIFETIME)));
            assert_eq!(t.original, addr, "{:?}", lossy(signed));
        }
        other => panic!("sign_into({show:?}) = {:?}, admitted as {other:?}", String::from_utf8_lossy(signed)),
    }
    // Deterministic, verifies back, strips back, not signed twice.
    let mut again = [0u8; 254];
    assert_eq!(ring.sign_into(addr, now, &mut again), Ok(Signed::Written(signed.len())));
    assert_eq!(&again[..signed.len()], signed);
    assert_eq!(ring.verify_at(signed, now).map(|o| String::from(o).into_bytes()), Ok(addr.to_vec()));
    assert_eq!(*batv_core::strip(signed), *oracle_strip(addr), "strip removes the tag, then what strip(addr) removes");
    assert_eq!(ring.sign_into(signed, now, &mut again), Ok(Signed::Unchanged));
    // Lifetime: valid through the expiry day, a day early (skew), not a day late.
    let day = oracle_day(now);
    let at_day = |d: i128| i64::try_from(d * i128::from(DAY)).ok();
    if let (Some(late), Some(early), Some(too_early)) = (at_day(day + 8), at_day(day - 1), at_day(day - 2)) {
        assert!(ring.verify_at(signed, late - 1).is_ok(), "{:?} on the last second of its expiry day", lossy(signed));
        assert!(ring.verify_at(signed, early).is_ok(), "{:?} a day early (skew)", lossy(signed));
        assert_eq!(ring.verify_at(signed, late).err(), Some(batv_core::VerifyError::Expired), "a day late");
        assert_eq!(ring.verify_at(signed, too_early).err(), Some(batv_core::VerifyError::Expired), "two days early");
    }
}
