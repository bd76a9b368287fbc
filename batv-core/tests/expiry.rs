//! Exhaustive expiry (docs/scheme.md, "Days"): every day of the 1000-day cycle as the signing day,
//! lifetimes 1 to 30 and skews 0 to 2, checked day by day against an independent model, across
//! the wraparound at every multiple of 1000 days.

use batv_core::{Key, Keyring, Outcome, Scheme};

const DAY: i64 = 86_400;

/// The model: a tag signed on absolute day `signed` with `lifetime` is valid on absolute day
/// `today` exactly when `today` is between `signed + lifetime - lifetime - skew` ... i.e. when
/// the expiry day is no more than `lifetime + skew` days ahead and not in the past.
fn model_valid(signed: i64, today: i64, lifetime: i64, skew: i64) -> bool {
    let expiry = signed + lifetime;
    let ahead = expiry - today;
    (0..=lifetime + skew).contains(&ahead)
}

#[test]
fn every_day_of_the_cycle_every_lifetime_and_skew() {
    let base = Keyring::with_key(Key::new(4, Scheme::HmacSha256, b"expiry test secret").unwrap());
    // Start the cycle at an absolute day that is a multiple of 1000 (day 20000 = 2024-10-04),
    // so `cycle_day` crosses the wraparound for tags signed near its end.
    let cycle_start = 20_000i64;
    let mut checked = 0u64;
    for lifetime in 1..=30u16 {
        for skew in 0..=2u16 {
            let keys = base.clone().with_lifetime_days(lifetime).unwrap().with_skew_days(skew).unwrap();
            for cycle_day in 0..1000i64 {
                let signed_day = cycle_start + cycle_day;
                // Any second of the day signs the same tag.
                let now = signed_day * DAY + (cycle_day * 7919) % DAY;
                let tag = keys.sign_at("user@example.com", now).unwrap();
                let stamp: i64 = tag[6..9].parse().unwrap();
                assert_eq!(stamp, (signed_day + i64::from(lifetime)) % 1000);
                // Days from well before signing to well after expiry, at both ends of each day.
                let span = i64::from(lifetime) + i64::from(skew) + 3;
                for today in signed_day - span..=signed_day + span {
                    for second in [0, DAY - 1] {
                        let got = keys.status_at(&tag, today * DAY + second);
                        let want = if model_valid(signed_day, today, lifetime.into(), skew.into()) {
                            Outcome::Valid
                        } else {
                            Outcome::Expired
                        };
                        assert_eq!(got, want, "lifetime {lifetime} skew {skew} signed {signed_day} today {today} tag {tag}");
                        checked += 1;
                    }
                }
            }
        }
    }
    // 30 lifetimes x 3 skews x 1000 days x a window of days x 2 seconds each.
    assert!(checked > 30 * 3 * 1000 * 2 * 9, "{checked}");
}

/// The Exim bug this project does not copy: a stamp of 999 checked on cycle day 2 (after the
/// wraparound) is 3 days old, so expired; a plain numeric comparison calls it valid forever.
#[test]
fn wraparound_stamp_999_expires() {
    let keys = Keyring::with_key(Key::new(1, Scheme::HmacSha1, b"secret").unwrap());
    let signed_day = 20_992i64; // cycle day 992; 992 + 7 = 999
    let tag = keys.sign_at("bob@example.com", signed_day * DAY).unwrap();
    assert_eq!(&tag[5..9], "1999");
    assert_eq!(keys.status_at(&tag, (signed_day + 7) * DAY + DAY - 1), Outcome::Valid);
    // From day +999 the stamp means the next cycle's day 999: the 1000-day reuse is inherent in
    // a three-digit stamp (docs/scheme.md, "Days"), so the check stops there.
    for later in 8..999 {
        assert_eq!(keys.status_at(&tag, (signed_day + later) * DAY), Outcome::Expired, "day +{later}");
    }
}

/// A tag dated further ahead than lifetime + skew (a replayed tag from the next cycle, or a
/// signer whose clock is far ahead) is expired too.
#[test]
fn far_future_stamp_is_expired() {
    let keys = Keyring::parse("lifetime-days 7\nskew-days 1\nkey 2 hmac-sha256 text:s\n").unwrap();
    let now = 20_100 * DAY;
    let ahead = |days: i64| keys.sign_at("a@example.com", now + days * DAY).unwrap();
    assert_eq!(keys.status_at(&ahead(1), now), Outcome::Valid); // stamp 8 days ahead
    assert_eq!(keys.status_at(&ahead(2), now), Outcome::Expired); // stamp 9 days ahead
}
