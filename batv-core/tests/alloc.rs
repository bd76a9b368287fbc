//! The caller-buffer paths never touch the heap: `sign_into`, `verify_at`, `status_at` and
//! `Original::copy_to`, for both schemes, every wire form and every outcome, error paths
//! included. These are what the C library and the Exim functions call per message.
//!
//! The counting allocator counts the current thread's allocations only, so the harness's other
//! threads cannot disturb it; a first test proves that it does see an allocation.

use batv_core::{Keyring, Outcome, SignError, Signed, SIGNED_MAX};
use batv_test_support::{allocations_in, Counting};
use std::hint::black_box;

#[global_allocator]
static GLOBAL: Counting = Counting;

/// 2026-11-26 12:53 UTC.
const NOW: i64 = 1_795_700_000;
const DAY: i64 = 86_400;

const KEYS: &str = "\
sign-key 1
key 1 hmac-sha256 base64:q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA=
key 0 hmac-sha1 text:secret
key 2 hmac-sha256 text:a key longer than one sixty-four octet block, so that it is hashed first!!
";

fn keyrings() -> Vec<(&'static str, Keyring)> {
    vec![
        ("hmac-sha256", Keyring::parse(KEYS).unwrap()),
        (
            "hmac-sha1",
            Keyring::parse(&KEYS.replace("sign-key 1", "sign-key 0")).unwrap(),
        ),
        (
            "hmac-sha256 long key",
            Keyring::parse(&KEYS.replace("sign-key 1", "sign-key 2")).unwrap(),
        ),
    ]
}

fn addresses() -> Vec<String> {
    vec![
        "user01@example.com".into(),
        "Frank.Thomas@Example.COM".into(),
        "\"john doe\"@example.com".into(),
        "list=owner@lists.example.org".into(),
        format!("{}@example.com", "x".repeat(188)), // 200 octets
        format!("{}@EXAMPLE.com", "Y".repeat(226)), // the longest that can be signed (238)
    ]
}

#[test]
fn the_counter_sees_an_allocation() {
    let (n, s) = allocations_in(|| black_box(String::from("user@example.com")));
    assert!(
        n >= 1,
        "a String was made but the counter saw {n} allocations"
    );
    let (n, _) = allocations_in(|| {
        let mut v: Vec<u8> = Vec::with_capacity(1);
        v.extend_from_slice(black_box(s.as_bytes())); // grows: a realloc
        v
    });
    assert!(n >= 2, "with_capacity + growth counted {n}");
    // And the Keyring's own allocating conveniences are seen too.
    let keys = Keyring::parse(KEYS).unwrap();
    let (n, signed) = allocations_in(|| keys.sign_at("user@example.com", NOW).unwrap());
    assert!(n >= 1, "sign_at returns an owned String, counted {n}");
    assert!(signed.starts_with("prvs="));
}

#[test]
fn sign_into_never_allocates() {
    let mut checked = 0;
    for (scheme, keys) in keyrings() {
        for address in addresses() {
            let mut buf = [0u8; SIGNED_MAX];
            let (n, r) = allocations_in(|| keys.sign_into(black_box(&address), NOW, &mut buf));
            let len = match r {
                Ok(Signed::Written(len)) => len,
                other => panic!("{scheme} {address:?}: {other:?}"),
            };
            assert_eq!(n, 0, "{scheme}: sign_into({address:?}) allocated {n} times");
            let signed = std::str::from_utf8(&buf[..len]).unwrap().to_string();
            assert_eq!(
                signed,
                keys.sign_at(&address, NOW).unwrap(),
                "{scheme}: same as sign_at"
            );

            // Already tagged and the null sender: unchanged, no allocation.
            let mut again = [0u8; SIGNED_MAX];
            let (n, r) = allocations_in(|| keys.sign_into(black_box(&signed), NOW, &mut again));
            assert_eq!(
                (n, r.unwrap()),
                (0, Signed::Unchanged),
                "{scheme}: re-sign {signed:?}"
            );

            // A buffer too small says how much it needs, without allocating.
            let mut small = [0u8; 8];
            let (n, r) = allocations_in(|| keys.sign_into(black_box(&address), NOW, &mut small));
            assert_eq!(n, 0, "{scheme}: too-small buffer allocated");
            assert_eq!(r, Err(SignError::BufferTooSmall { needed: len }));
            checked += 1;
        }
        let mut buf = [0u8; SIGNED_MAX];
        let (n, r) = allocations_in(|| keys.sign_into(black_box(""), NOW, &mut buf));
        assert_eq!(
            (n, r.unwrap()),
            (0, Signed::Unchanged),
            "{scheme}: null sender"
        );
        // Unsignable addresses are errors, also without allocating.
        for bad in ["no-at-sign", "@example.com", "user@", "us\ter@example.com"] {
            let (n, r) = allocations_in(|| keys.sign_into(black_box(bad), NOW, &mut buf));
            assert!(
                matches!(r, Err(SignError::Address(_))),
                "{scheme} {bad:?}: {r:?}"
            );
            assert_eq!(n, 0, "{scheme}: sign_into({bad:?}) allocated");
        }
    }
    assert_eq!(checked, 3 * addresses().len());
}

#[test]
fn verify_at_and_copy_to_never_allocate() {
    let mut valid = 0;
    for (scheme, keys) in keyrings() {
        for address in addresses() {
            let signed = keys.sign_at(&address, NOW).unwrap();
            let mut out = [0u8; SIGNED_MAX];
            let (n, len) = allocations_in(|| {
                let original = keys.verify_at(black_box(&signed), NOW).expect("valid");
                original.copy_to(&mut out).expect("fits")
            });
            assert_eq!(
                n, 0,
                "{scheme}: verify_at + copy_to of {signed:?} allocated {n} times"
            );
            assert_eq!(
                &out[..len],
                address.as_bytes(),
                "{scheme}: the original comes back"
            );
            let (n, o) = allocations_in(|| keys.status_at(black_box(&signed), NOW));
            assert_eq!(
                (n, o),
                (0, Outcome::Valid),
                "{scheme}: status_at {signed:?}"
            );
            valid += 1;
        }
    }
    assert_eq!(valid, 3 * addresses().len());
}

#[test]
fn every_outcome_is_reached_without_allocating() {
    let keys = Keyring::parse(KEYS).unwrap();
    let sha1 = Keyring::parse(&KEYS.replace("sign-key 1", "sign-key 0")).unwrap();
    let tagged = keys.sign_at("user@example.com", NOW).unwrap();
    // Signed lower-case (as Exim does); it comes back in other cases.
    let tagged_sha1 = sha1
        .sign_at("frank.thomas@example.com", NOW)
        .unwrap();
    let mut bad_sig = tagged.clone().into_bytes();
    bad_sig[10] = if bad_sig[10] == b'0' { b'1' } else { b'0' };
    let bad_sig = String::from_utf8(bad_sig).unwrap();
    let cases: Vec<(String, i64, Outcome)> = vec![
        (tagged.clone(), NOW, Outcome::Valid),
        // hmac-sha1 tries the domain lower-cased, then all of it, still without allocating.
        (
            tagged_sha1.replace("example.com", "EXAMPLE.COM"),
            NOW,
            Outcome::Valid,
        ),
        (
            tagged_sha1.replace("frank.thomas@example.com", "Frank.Thomas@Example.COM"),
            NOW,
            Outcome::Valid,
        ),
        ("user@example.com".into(), NOW, Outcome::Untagged),
        (
            "prvs=1x90c1c5ba=user@example.com".into(),
            NOW,
            Outcome::Malformed,
        ),
        (
            "prvs=5790c1c5ba=user@example.com".into(),
            NOW,
            Outcome::UnknownKey,
        ),
        (bad_sig, NOW, Outcome::BadSignature),
        (tagged.clone(), NOW + 30 * DAY, Outcome::Expired),
    ];
    let old_form = {
        // prvs=KDDDSSSSSS=local@domain -> prvs=local/KDDDSSSSSS@domain
        let fields = &tagged[5..15];
        format!("prvs=user/{fields}@example.com")
    };
    let quoted = keys
        .sign_at("\"john doe\"@example.com", NOW)
        .unwrap();
    // The old form and the quoted form: originals in two pieces.
    for (address, now, want) in cases.into_iter().chain([
        (old_form, NOW, Outcome::Valid),
        (quoted, NOW, Outcome::Valid),
    ]) {
        let mut out = [0u8; SIGNED_MAX];
        let ring = if address.to_ascii_lowercase().contains("frank") {
            &sha1
        } else {
            &keys
        };
        let (n, got) = allocations_in(|| match ring.verify_at(black_box(&address), now) {
            Ok(original) => {
                original.copy_to(&mut out).expect("fits");
                Outcome::Valid
            }
            Err(e) => e.outcome(),
        });
        assert_eq!(got, want, "{address:?}");
        assert_eq!(
            n, 0,
            "verify_at({address:?}) -> {want:?} allocated {n} times"
        );
    }
}

#[test]
fn copy_to_a_small_buffer_reports_the_size_without_allocating() {
    let keys = Keyring::parse(KEYS).unwrap();
    let signed = keys
        .sign_at("\"john doe\"@example.com", NOW)
        .unwrap();
    let original = keys.verify_at(&signed, NOW).unwrap();
    let mut small = [0u8; 4];
    let (n, r) = allocations_in(|| original.copy_to(&mut small));
    assert_eq!((n, r), (0, Err("\"john doe\"@example.com".len())));
}
