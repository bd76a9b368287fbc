//! Admission, strip and verify on arbitrary octets (docs/scheme.md, "Admission", "Wire
//! format", "Strip", "Outcomes").
//!
//! Invariants: `admit` gives exactly what an independent re-statement of admission and of the
//! wire forms gives (the null sender, untagged, the tag's fields and original address, or the
//! malformation's reason), and a tag is the input written in its form; `is_tagged` agrees;
//! `strip` gives exactly what a re-statement of "Strip" gives (both wire forms, nested, and
//! the wild shapes, never from what is not an address), is idempotent and never leaves a tag;
//! `verify_at` and `status_at` give, at every clock reading tried, exactly the outcome that an
//! independent HMAC and day computation says; `copy_to` honours its buffer protocol.
#![no_main]

use batv_core::Outcome;
use batv_fuzz::*;
use libfuzzer_sys::fuzz_target;

const DAY: i64 = 86_400;
const NOWS: [i64; 9] = [NOW, NOW - DAY, NOW + 7 * DAY, NOW + 8 * DAY, NOW - 2 * DAY, 0, -1, i64::MIN, i64::MAX];

fuzz_target!(|data: &[u8]| {
    let want = check_admission(data);
    assert_eq!(batv_core::is_tagged(data), matches!(want, Want::Tagged(_)));

    // strip: the re-statement's answer, a fixed point, never tagged.
    let s = batv_core::strip(data);
    assert_eq!(*s, *oracle_strip(data), "strip({:?})", String::from_utf8_lossy(data));
    assert_eq!(*batv_core::strip(&*s), *s);
    assert!(!batv_core::is_tagged(&*s));
    match &want {
        Want::Null => assert_eq!(*s, *data),
        Want::Malformed(p) if !is_tag_problem(*p) => assert_eq!(*s, *data, "not an address: as it is"),
        _ => {}
    }

    let ring = keyring();
    for now in NOWS {
        let got = ring.verify_at(data, now);
        let expected = oracle_verify(data, now);
        assert_eq!(got.map(|o| String::from(o).into_bytes()), expected, "verify_at({:?}, {now})", String::from_utf8_lossy(data));
        let status = ring.status_at(data, now);
        match &got {
            Ok(o) => {
                assert_eq!(status, Outcome::Valid);
                let original: String = (*o).into();
                let mut buf = [0u8; 300];
                for len in [0, o.len().saturating_sub(1), o.len(), o.len() + 1] {
                    match o.copy_to(&mut buf[..len]) {
                        Ok(n) => {
                            assert!(len >= o.len() && n == o.len());
                            assert_eq!(&buf[..n], original.as_bytes());
                        }
                        Err(needed) => assert!(len < o.len() && needed == o.len()),
                    }
                }
            }
            Err(e) => assert_eq!(status, e.outcome()),
        }
    }
});
