//! Wire-format parse, strip and verify on arbitrary bytes.
//!
//! Invariants: the parser's tag is exactly the input in one of the SPEC section 2 forms;
//! `strip` is idempotent, removes whole 16-octet tags, and never returns a tagged address;
//! `verify_at` gives, at every clock reading tried, exactly the outcome that an independent
//! HMAC and day computation says (so it never calls an address valid unless its MAC is the
//! one the key makes); `copy_to` honours its buffer protocol.
#![no_main]

use batv_core::{wire, Malformation, Outcome, VerifyError};
use batv_fuzz::*;
use libfuzzer_sys::fuzz_target;

const DAY: i64 = 86_400;
const NOWS: [i64; 9] = [
    NOW,
    NOW - DAY,
    NOW + 7 * DAY,
    NOW + 8 * DAY,
    NOW - 2 * DAY,
    0,
    -1,
    i64::MIN,
    i64::MAX,
];

fuzz_target!(|data: &[u8]| {
    let input = text(data);
    let addr: &str = &input;
    let parsed = wire::parse(addr);

    // is_tagged and the cheap prefix test agree with the parser.
    assert_eq!(batv_core::is_tagged(addr), matches!(parsed, Ok(Some(_))));
    if !wire::starts_like_tag(addr) {
        assert_eq!(parsed, Ok(None), "{addr:?}");
    }
    match &parsed {
        Ok(Some(tag)) => {
            check_tag_matches_input(addr, tag);
            let orig: String = tag.original.into();
            assert!(orig.contains('@') && !orig.bytes().any(|b| b < 0x20 || b == 0x7f));
            assert!(addr.len() <= 254);
        }
        Err(Malformation::TooLong) => assert!(addr.len() > 254),
        Err(Malformation::ControlCharacter) => {
            assert!(addr.bytes().any(|b| b < 0x20 || b == 0x7f))
        }
        _ => {}
    }

    // strip: never tagged, idempotent, removes whole tags only.
    let s = batv_core::strip(addr);
    assert!(!batv_core::is_tagged(&s), "strip({addr:?}) = {s:?} is still tagged");
    assert_eq!(batv_core::strip(&s), s);
    if matches!(parsed, Ok(Some(_))) {
        assert!(s.len() + 16 <= addr.len() && (addr.len() - s.len()) % 16 == 0, "{addr:?} -> {s:?}");
    } else {
        assert_eq!(s, addr);
    }

    // verify: exactly the outcome the oracle computes, at every clock reading.
    let ring = keyring();
    for now in NOWS {
        let got = ring.verify_at(addr, now);
        let want: Result<String, VerifyError> = match &parsed {
            Ok(None) => Err(VerifyError::Untagged),
            Err(m) => Err(VerifyError::Malformed(*m)),
            Ok(Some(tag)) => match oracle_mac_matches(tag) {
                None => Err(VerifyError::UnknownKey(tag.key_number())),
                Some(false) => Err(VerifyError::BadSignature),
                Some(true) if !oracle_in_window(tag.day_stamp(), now, LIFETIME, SKEW) => {
                    Err(VerifyError::Expired)
                }
                Some(true) => Ok(tag.original.into()),
            },
        };
        assert_eq!(got.map(String::from), want, "verify_at({addr:?}, {now})");
        let status = ring.status_at(addr, now);
        match &got {
            Ok(o) => {
                assert_eq!(status, Outcome::Valid);
                // A valid tag is one the key made: re-signing the original on its day gives
                // the same tag (the hex case aside), for the sha256 keys that sign.
                let original: String = (*o).into();
                let mut buf = [0u8; 300];
                for len in [0, o.len().saturating_sub(1), o.len(), o.len() + 1] {
                    match o.copy_to(&mut buf[..len]) {
                        Ok(n) => {
                            assert!(len >= o.len());
                            assert_eq!(&buf[..n], original.as_bytes());
                        }
                        Err(needed) => {
                            assert!(len < o.len());
                            assert_eq!(needed, o.len());
                        }
                    }
                }
            }
            Err(e) => assert_eq!(status, e.outcome()),
        }
    }
});
