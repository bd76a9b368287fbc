//! Day stamps and the expiry window (docs/scheme.md, "Days"), defined for every `i64` time.

/// Seconds in one UTC day.
pub const SECONDS_PER_DAY: i64 = 86_400;

/// Day stamps count modulo this.
pub const DAY_CYCLE: u16 = 1000;

/// The default tag lifetime in days.
pub const DEFAULT_LIFETIME_DAYS: u16 = 7;

/// The default clock skew tolerated for signers whose clock runs ahead, in days.
pub const DEFAULT_SKEW_DAYS: u16 = 1;

/// Longest allowed lifetime in days.
pub const MAX_LIFETIME_DAYS: u16 = 365;

/// Longest allowed skew in days.
pub const MAX_SKEW_DAYS: u16 = 7;

/// UTC days since 1970-01-01 for a Unix time in seconds (floor division).
pub fn day_number(now: i64) -> i64 {
    now.div_euclid(SECONDS_PER_DAY)
}

fn today_stamp(now: i64) -> u16 {
    // In 0..1000, so the cast is exact.
    day_number(now).rem_euclid(i64::from(DAY_CYCLE)) as u16
}

/// The day stamp of a tag signed at `now` that lives `lifetime_days`.
pub fn expiry_stamp(now: i64, lifetime_days: u16) -> u16 {
    ((u32::from(today_stamp(now)) + u32::from(lifetime_days)) % u32::from(DAY_CYCLE)) as u16
}

/// Days from today until the stamp's day, modulo 1000: today 0, yesterday 999.
pub fn remaining_days(stamp: u16, now: i64) -> u16 {
    let cycle = u32::from(DAY_CYCLE);
    ((u32::from(stamp) % cycle + cycle - u32::from(today_stamp(now))) % cycle) as u16
}

/// Whether a tag with this stamp is inside its window at `now`: through its expiry day, and
/// `skew_days` more ahead for a signer whose clock runs ahead.
pub fn within_window(stamp: u16, now: i64, lifetime_days: u16, skew_days: u16) -> bool {
    u32::from(remaining_days(stamp, now)) <= u32::from(lifetime_days) + u32::from(skew_days)
}

/// The current Unix time in seconds from the system clock (negative before 1970).
pub fn unix_now() -> i64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    match SystemTime::now().duration_since(UNIX_EPOCH) {
        Ok(d) => i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        Err(e) => i64::try_from(e.duration().as_secs()).map_or(i64::MIN, |s| -s),
    }
}
