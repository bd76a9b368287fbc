//! Clock faults: `now` at 0, negative, `i64::MIN`, `i64::MAX`, in the year 3000, and
//! clocks that step backwards. Nothing may panic or overflow (these tests run with overflow
//! checks on), and every answer must be the one docs/scheme.md, "Days", gives.
//!
//! The expected day stamps are written out as literals, worked out by hand (and checked with
//! Python's floor division): day = floor(now / 86400), DDD = (day + 7) mod 1000. The expected
//! MAC bytes come from the RustCrypto HMAC directly, not from batv-core's MAC code.

use batv_core::{Keyring, Outcome, Policy, Reason, SignError, Signed};
use hmac::{Hmac, KeyInit, Mac};

const DAY: i64 = 86_400;
/// 3000-01-01T00:00:00Z.
const YEAR_3000: i64 = 32_503_680_000;

fn sha1_ring() -> Keyring {
    // lifetime 7 and skew 1 are the defaults; say so anyway, the numbers below depend on them.
    Keyring::parse("lifetime-days 7\nskew-days 1\nkey 1 hmac-sha1 text:secret\n").unwrap()
}

/// The tag docs/scheme.md gives for key 1, hmac-sha1, secret "secret".
fn expected(stamp: u16, address: &str) -> String {
    let kddd = format!("1{stamp:03}");
    let mut m = <Hmac<sha1::Sha1> as KeyInit>::new_from_slice(b"secret").unwrap();
    m.update(kddd.as_bytes());
    m.update(address.as_bytes());
    let mac = m.finalize().into_bytes();
    format!("prvs={kddd}{:02x}{:02x}{:02x}={address}", mac[0], mac[1], mac[2])
}

/// (now, the day stamp of a tag signed then, that stamp's day number mod 1000 today)
const CASES: &[(&str, i64, u16)] = &[
    ("the epoch", 0, 7),
    ("one second before the epoch", -1, 6),
    ("exactly one day before the epoch", -DAY, 6),
    ("a day and a second before the epoch", -DAY - 1, 5),
    ("i64::MIN", i64::MIN, 706),
    ("i64::MIN + 1", i64::MIN + 1, 706),
    ("i64::MAX", i64::MAX, 307),
    ("i64::MAX - 1", i64::MAX - 1, 307),
    ("the first second of the year 3000", YEAR_3000, 207),
    ("the last second of 2999", YEAR_3000 - 1, 206),
];

#[test]
fn signing_at_extreme_times_gives_the_spec_stamp() {
    let ring = sha1_ring();
    for &(what, now, stamp) in CASES {
        let signed = ring.sign_at("user@example.com", now).unwrap();
        assert_eq!(signed, expected(stamp, "user@example.com"), "{what} ({now})");
        // The zero-allocation path agrees.
        let mut buf = [0u8; batv_core::SIGNED_MAX];
        let n = match ring.sign_into("user@example.com", now, &mut buf).unwrap() {
            Signed::Written(n) => n,
            Signed::Unchanged => panic!("{what}: unchanged"),
        };
        assert_eq!(&buf[..n], signed.as_bytes());
        assert_eq!(
            ring.sign_into("user@example.com", now, &mut buf[..10]),
            Err(SignError::BufferTooSmall { needed: n })
        );
    }
}

#[test]
fn verifying_at_extreme_times_follows_the_window() {
    let ring = sha1_ring();
    for &(what, now, _) in CASES {
        let signed = ring.sign_at("user@example.com", now).unwrap();
        // The same instant and the rest of the signing day: valid.
        assert_eq!(ring.status_at(&signed, now), Outcome::Valid, "{what}");
        assert_eq!(ring.verify_at(&signed, now).unwrap().to_string(), "user@example.com");
        // The start of day `day + offset`, where the clock can reach it (the day of i64::MIN
        // starts before i64::MIN).
        let day = now.div_euclid(DAY);
        let start_of = |offset: i64| (day + offset).checked_mul(DAY);
        if let Some(end) = start_of(1).and_then(|t| t.checked_sub(1)) {
            assert_eq!(ring.status_at(&signed, end), Outcome::Valid, "{what}: end of day");
        }
        // Days +1..=+7 are valid (the expiry day included), +8 is expired; one day early is
        // tolerated by the skew, two days early is not. Only where the clock can get there.
        for (offset, want) in [
            (1, Outcome::Valid),
            (7, Outcome::Valid),
            (8, Outcome::Expired),
            (-1, Outcome::Valid),
            (-2, Outcome::Expired),
            (500, Outcome::Expired),
            (1000, Outcome::Valid), // the same stamp again, a whole cycle later (docs/scheme.md, "Days")
        ] {
            if let Some(t) = start_of(offset) {
                assert_eq!(ring.status_at(&signed, t), want, "{what}: day {offset:+}");
            }
        }
        // A policy decision at that instant: a bounce to the tag is accepted, to the plain
        // address rejected; nothing panics.
        let policy = Policy::default();
        let v = policy.check(&ring, "", &signed, now);
        assert!(v.accepted && v.reason == Reason::Valid, "{what}: {v:?}");
        let v = policy.check(&ring, "", "user@example.com", now);
        assert!(!v.accepted && v.reason == Reason::Untagged, "{what}: {v:?}");
    }
}

#[test]
fn the_two_ends_of_time_do_not_validate_each_other() {
    let ring = sha1_ring();
    let at_min = ring.sign_at("user@example.com", i64::MIN).unwrap();
    let at_max = ring.sign_at("user@example.com", i64::MAX).unwrap();
    // Stamp 706 seen on day ...300: (706 - 300) mod 1000 = 406 days ahead: expired.
    assert_eq!(ring.status_at(&at_min, i64::MAX), Outcome::Expired);
    // Stamp 307 seen on day ...699: (307 - 699) mod 1000 = 608: expired.
    assert_eq!(ring.status_at(&at_max, i64::MIN), Outcome::Expired);
    // A tag made on the epoch, checked in the year 3000 (day 376200, 200 mod 1000): stamp 7 is
    // (7 - 200) mod 1000 = 807 days ahead: expired.
    let at_epoch = ring.sign_at("user@example.com", 0).unwrap();
    assert_eq!(ring.status_at(&at_epoch, YEAR_3000), Outcome::Expired);
}

#[test]
fn a_clock_that_steps_back_a_day() {
    let ring = sha1_ring();
    let t = 1_795_700_000; // 2026-11-26 12:53:20 UTC, day 20783 (783 mod 1000)
    let before_step = ring.sign_at("user@example.com", t).unwrap();
    assert_eq!(before_step, expected(790, "user@example.com"));
    // The clock steps back a day (an NTP correction, a restored VM snapshot).
    let stepped = t - DAY;
    let after_step = ring.sign_at("user@example.com", stepped).unwrap();
    assert_eq!(after_step, expected(789, "user@example.com"));
    // The tag made before the step is 8 days ahead of the stepped clock: 8 <= 7 + 1, so valid
    // (this is what the skew is for), and both tags verify on both clocks.
    for now in [t, stepped] {
        assert_eq!(ring.status_at(&before_step, now), Outcome::Valid);
        assert_eq!(ring.status_at(&after_step, now), Outcome::Valid);
    }
    // Without skew the same step turns the fresh tag into "expired" on the stepped clock.
    let no_skew = Keyring::parse("skew-days 0\nkey 1 hmac-sha1 text:secret\n").unwrap();
    assert_eq!(no_skew.status_at(&before_step, stepped), Outcome::Expired);
    // A step of two days is more than a skew of one tolerates.
    assert_eq!(ring.status_at(&before_step, t - 2 * DAY), Outcome::Expired);
    // The maximum skew (7) tolerates a step of seven days, not eight.
    let max_skew = Keyring::parse("skew-days 7\nkey 1 hmac-sha1 text:secret\n").unwrap();
    assert_eq!(max_skew.status_at(&before_step, t - 7 * DAY), Outcome::Valid);
    assert_eq!(max_skew.status_at(&before_step, t - 8 * DAY), Outcome::Expired);
}

#[test]
fn a_clock_stepping_back_and_forth_across_the_wraparound() {
    // Day 20999 is the last of a 1000-day cycle (999 mod 1000); a tag signed there has stamp 6.
    let ring = sha1_ring();
    let last_day_of_cycle = 20_999 * DAY + 3600;
    let tag = ring.sign_at("user@example.com", last_day_of_cycle).unwrap();
    assert_eq!(tag, expected(6, "user@example.com"));
    // Forward into the next cycle: valid through day 21006, expired on day 21007.
    assert_eq!(ring.status_at(&tag, 21_006 * DAY + DAY - 1), Outcome::Valid);
    assert_eq!(ring.status_at(&tag, 21_007 * DAY), Outcome::Expired);
    // Back one day, into the previous cycle (998): 8 ahead, valid with skew 1.
    assert_eq!(ring.status_at(&tag, 20_998 * DAY), Outcome::Valid);
    // Stamp 999 (Exim's bug: there it never expires): signed on day 20992, expired on 21000.
    let tag999 = ring.sign_at("user@example.com", 20_992 * DAY).unwrap();
    assert_eq!(tag999, expected(999, "user@example.com"));
    assert_eq!(ring.status_at(&tag999, 20_999 * DAY), Outcome::Valid);
    assert_eq!(ring.status_at(&tag999, 21_000 * DAY), Outcome::Expired);
    assert_eq!(ring.status_at(&tag999, 21_500 * DAY), Outcome::Expired);
}

#[test]
fn every_second_of_a_clock_sweep_is_answered() {
    // A sweep over awkward instants: nothing panics, every answer is one of the six outcomes,
    // and a tag signed at an instant verifies at that instant.
    let ring = sha1_ring();
    let mut instants = vec![i64::MIN, i64::MIN + 1, -DAY - 1, -DAY, -1, 0, 1, DAY - 1, DAY, i64::MAX - 1, i64::MAX];
    for k in 0..64 {
        instants.push(1i64 << k);
        instants.push((1i64 << k).wrapping_neg());
        instants.push((1i64 << k).wrapping_sub(1));
    }
    for &now in &instants {
        let tag = ring.sign_at("a@b.example", now).unwrap();
        assert_eq!(ring.status_at(&tag, now), Outcome::Valid, "{now}");
        for &other in &instants {
            let _ = ring.status_at(&tag, other); // must not panic
        }
        assert!(batv_core::internals::remaining_days(batv_core::internals::expiry_stamp(now, 365), now) == 365);
    }
}
