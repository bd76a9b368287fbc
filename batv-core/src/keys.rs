//! Keys and the keyring: signing and verifying (docs/scheme.md, "Signing" and "Outcomes").

use crate::address::{self, admit, Admission};
use crate::days::{self, DEFAULT_LIFETIME_DAYS, DEFAULT_SKEW_DAYS, MAX_LIFETIME_DAYS, MAX_SKEW_DAYS};
use crate::error::{KeyringError, KeyringErrorKind, Outcome, SignError, VerifyError};
use crate::mac::{KeyMac, Scheme};
use crate::wire::{self, Original, MAX_ADDRESS_LEN};
use core::fmt;
use zeroize::Zeroizing;

/// Number of key slots (`K` is one digit).
pub const KEY_SLOTS: usize = 10;

/// Shortest `base64:` or `hex:` secret accepted, in bytes.
pub const MIN_ENCODED_SECRET_LEN: usize = 16;

/// Length of a generated secret in bytes.
pub const GENERATED_SECRET_LEN: usize = 32;

/// Octets a caller buffer needs for any signed address (without a terminating NUL).
pub const SIGNED_MAX: usize = MAX_ADDRESS_LEN;

/// How a secret is written in the keyring file, so that a rewritten file keeps it as it was.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SecretEncoding {
    /// `base64:` (standard alphabet, padded).
    Base64,
    /// `hex:` (either case).
    Hex,
    /// `text:` the rest of the line, verbatim (for secrets shared with Exim's `${prvs}`).
    Text,
}

/// One key: its number, scheme and secret, with the HMAC keyed once.
#[derive(Clone)]
pub struct Key {
    pub(crate) number: u8,
    scheme: Scheme,
    pub(crate) encoding: SecretEncoding,
    pub(crate) secret: Zeroizing<Vec<u8>>,
    mac: KeyMac,
    /// The UTC day number on which it stopped signing, when the keyring records one.
    pub(crate) stopped: Option<i64>,
}

impl Key {
    /// A key from raw secret bytes. The number must be 0-9 and the secret non-empty.
    pub fn new(number: u8, scheme: Scheme, secret: &[u8]) -> Result<Key, KeyringErrorKind> {
        Key::with_encoding(number, scheme, SecretEncoding::Base64, secret)
    }

    pub(crate) fn with_encoding(
        number: u8,
        scheme: Scheme,
        encoding: SecretEncoding,
        secret: &[u8],
    ) -> Result<Key, KeyringErrorKind> {
        if usize::from(number) >= KEY_SLOTS {
            return Err(KeyringErrorKind::BadKeyNumber);
        }
        if secret.is_empty() {
            return Err(KeyringErrorKind::EmptySecret);
        }
        let mac = KeyMac::new(scheme, secret);
        Ok(Key { number, scheme, encoding, secret: Zeroizing::new(secret.to_vec()), mac, stopped: None })
    }

    /// A new key with 32 random bytes from the operating system.
    pub fn generate(number: u8, scheme: Scheme) -> Result<Key, KeyringErrorKind> {
        let mut secret = Zeroizing::new([0u8; GENERATED_SECRET_LEN]);
        getrandom::fill(&mut secret[..]).map_err(|_| KeyringErrorKind::NoRandomness)?;
        Key::new(number, scheme, &secret[..])
    }

    /// The key number, 0-9.
    pub fn number(&self) -> u8 {
        self.number
    }

    /// The MAC scheme.
    pub fn scheme(&self) -> Scheme {
        self.scheme
    }

    /// The UTC day number (days since 1970-01-01) on which this key stopped signing, if recorded.
    pub fn stopped_signing(&self) -> Option<i64> {
        self.stopped
    }
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("number", &self.number)
            .field("scheme", &self.scheme)
            .field("stopped_signing", &self.stopped)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// Up to ten keys, one of which signs, with their lifetime and skew; `Send + Sync`, so build it
/// once and share it (the crate's page has an example).
#[derive(Clone, Debug)]
pub struct Keyring {
    pub(crate) keys: [Option<Key>; KEY_SLOTS],
    pub(crate) sign_key: u8,
    pub(crate) lifetime_days: u16,
    pub(crate) skew_days: u16,
}

impl Keyring {
    /// A keyring with one key, which signs, and the default lifetime (7) and skew (1).
    pub fn with_key(key: Key) -> Keyring {
        let sign_key = key.number;
        let mut keys: [Option<Key>; KEY_SLOTS] = Default::default();
        keys[usize::from(sign_key)] = Some(key);
        Keyring { keys, sign_key, lifetime_days: DEFAULT_LIFETIME_DAYS, skew_days: DEFAULT_SKEW_DAYS }
    }

    /// A new keyring with one generated `hmac-sha256` key, number 1.
    pub fn generate() -> Result<Keyring, KeyringError> {
        Key::generate(1, Scheme::HmacSha256).map(Keyring::with_key).map_err(KeyringError::new)
    }

    /// [`Keyring::added`] with the sign key's scheme, then [`Keyring::promoted`]: one host's
    /// rotation.
    pub fn rotated(&self, now: i64) -> Result<Keyring, KeyringError> {
        self.rotated_with(self.signing_key().scheme, now)
    }

    /// [`Keyring::rotated`] to a new key of `scheme` (from Exim's hmac-sha1 to hmac-sha256).
    pub fn rotated_with(&self, scheme: Scheme, now: i64) -> Result<Keyring, KeyringError> {
        let number = self.new_key_number(now)?;
        self.with_new_key(number, scheme)?.promoted(number, now)
    }

    /// This keyring with a new generated key of `scheme` under [`Keyring::new_key_number`],
    /// which verifies but does not sign yet (docs/operations.md).
    pub fn added(&self, scheme: Scheme, now: i64) -> Result<Keyring, KeyringError> {
        let number = self.new_key_number(now)?;
        self.with_new_key(number, scheme)
    }

    fn with_new_key(&self, number: u8, scheme: Scheme) -> Result<Keyring, KeyringError> {
        let mut ring = self.clone();
        ring.keys[usize::from(number)] = Some(Key::generate(number, scheme).map_err(KeyringError::new)?);
        Ok(ring)
    }

    /// The number a new key takes as of `now` (docs/scheme.md, "Keyring file"): the first free
    /// one after the sign key (9 wraps to 0), else the first [`Keyring::prunable`] one, else an
    /// error naming the key to retire first.
    pub fn new_key_number(&self, now: i64) -> Result<u8, KeyringError> {
        let slots = KEY_SLOTS as u8;
        let order = (1..slots).map(|i| (self.sign_key + i) % slots);
        if let Some(n) = order.clone().find(|&n| self.key(n).is_none()) {
            return Ok(n);
        }
        if let Some(n) = order.clone().find(|&n| self.prunable(n, now)) {
            return Ok(n);
        }
        // The key prunable soonest; with no records, the first in order, for the admin to judge.
        let recorded = order.clone().filter_map(|n| Some((self.key(n)?.stopped?, n))).min_by_key(|r| r.0);
        let (retire, prunable_from) = match recorded {
            Some((day, n)) => (n, Some(day + self.window_days() + 1)),
            None => ((self.sign_key + 1) % slots, None),
        };
        Err(KeyringError::new(KeyringErrorKind::NoFreeKeyNumber { retire, prunable_from }))
    }

    /// This keyring with key `number` signing from `now` on; the old sign key is recorded as
    /// having stopped signing today, and the new one loses any such record.
    pub fn promoted(&self, number: u8, now: i64) -> Result<Keyring, KeyringError> {
        if self.key(number).is_none() {
            return Err(KeyringError::new(KeyringErrorKind::NoSuchKey(number)));
        }
        let mut ring = self.clone();
        if number != self.sign_key {
            if let Some(old) = ring.keys[usize::from(self.sign_key)].as_mut() {
                old.stopped = Some(days::day_number(now));
            }
        }
        if let Some(new) = ring.keys[usize::from(number)].as_mut() {
            new.stopped = None;
        }
        ring.sign_key = number;
        Ok(ring)
    }

    /// This keyring without the keys that [`Keyring::prunable`] says may go.
    pub fn pruned(&self, now: i64) -> Keyring {
        let mut ring = self.clone();
        for n in 0..KEY_SLOTS as u8 {
            if self.prunable(n, now) {
                ring.keys[usize::from(n)] = None;
            }
        }
        ring
    }

    /// Whether key `number` is recorded as having stopped signing more than `lifetime + skew`
    /// days before `now`, so that no tag it made can still verify.
    pub fn prunable(&self, number: u8, now: i64) -> bool {
        let stopped = self.key(number).and_then(|k| k.stopped);
        stopped.is_some_and(|day| days::day_number(now) > day + self.window_days())
    }

    /// Days after its last signing day that a key's tags may still verify: lifetime + skew.
    fn window_days(&self) -> i64 {
        i64::from(self.lifetime_days) + i64::from(self.skew_days)
    }

    /// This keyring with another lifetime (1-365 days).
    pub fn with_lifetime_days(mut self, days: u16) -> Result<Keyring, KeyringErrorKind> {
        self.lifetime_days = valid_lifetime(days)?;
        Ok(self)
    }

    /// This keyring with another skew (0-7 days).
    pub fn with_skew_days(mut self, days: u16) -> Result<Keyring, KeyringErrorKind> {
        self.skew_days = valid_skew(days)?;
        Ok(self)
    }

    /// The keys, in number order.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.keys.iter().flatten()
    }

    /// The key with this number, if any.
    pub fn key(&self, number: u8) -> Option<&Key> {
        self.keys.get(usize::from(number)).and_then(Option::as_ref)
    }

    /// The key that signs.
    pub fn signing_key(&self) -> &Key {
        match self.key(self.sign_key) {
            Some(k) => k,
            None => unreachable!("every constructor puts a key in the sign-key slot"),
        }
    }

    /// Days a new tag lives.
    pub fn lifetime_days(&self) -> u16 {
        self.lifetime_days
    }

    /// Days of clock skew tolerated beyond the lifetime.
    pub fn skew_days(&self) -> u16 {
        self.skew_days
    }

    /// Signs an envelope sender with the system clock. See [`Keyring::sign_at`].
    pub fn sign(&self, address: &str) -> Result<String, SignError> {
        self.sign_at(address, days::unix_now())
    }

    /// Signs an envelope sender as of `now` (Unix seconds). The null sender and tagged addresses
    /// come back unchanged; an error means: send it untagged.
    pub fn sign_at(&self, address: &str, now: i64) -> Result<String, SignError> {
        let mut buf = [0u8; SIGNED_MAX];
        match self.sign_into(address, now, &mut buf)? {
            Signed::Unchanged => Ok(address.to_owned()),
            // ASCII tag characters around the pieces of a str.
            Signed::Written(n) => Ok(String::from_utf8_lossy(&buf[..n]).into_owned()),
        }
    }

    /// Signs the octets of an address into `out` without allocating ([`SIGNED_MAX`] octets
    /// always suffice).
    pub fn sign_into<A: AsRef<[u8]> + ?Sized>(
        &self,
        address: &A,
        now: i64,
        out: &mut [u8],
    ) -> Result<Signed, SignError> {
        let text = match admit(address.as_ref()) {
            Admission::Null | Admission::Tagged(_) => return Ok(Signed::Unchanged),
            Admission::Malformed(p) => return Err(SignError::Address(p)),
            Admission::Untagged(text) => text,
        };
        address::check_signable(text).map_err(SignError::Address)?;
        let key = self.signing_key();
        let kddd = kddd(key.number, days::expiry_stamp(now, self.lifetime_days));
        let mac = key.mac.tag(&kddd, Original::whole(text));
        wire::write_signed(text, &kddd, mac, out)
            .map(Signed::Written)
            .map_err(|needed| SignError::BufferTooSmall { needed })
    }

    /// Verifies a tagged address with the system clock. See [`Keyring::verify_at`].
    pub fn verify<'a, A: AsRef<[u8]> + ?Sized>(&self, address: &'a A) -> Result<Original<'a>, VerifyError> {
        self.verify_at(address, days::unix_now())
    }

    /// The original address of a valid tag as of `now`, borrowed from the input, or why the
    /// address is not valid. Never allocates.
    pub fn verify_at<'a, A: AsRef<[u8]> + ?Sized>(
        &self,
        address: &'a A,
        now: i64,
    ) -> Result<Original<'a>, VerifyError> {
        let tag = match admit(address.as_ref()) {
            Admission::Tagged(tag) => tag,
            Admission::Null | Admission::Untagged(_) => return Err(VerifyError::Untagged),
            Admission::Malformed(p) => return Err(VerifyError::Malformed(p)),
        };
        let key = self.key(tag.key_number()).ok_or(VerifyError::UnknownKey(tag.key_number()))?;
        // A forged tag is reported as forged, whatever its day.
        if !key.mac.matches(&tag) {
            return Err(VerifyError::BadSignature);
        }
        if !days::within_window(tag.day_stamp(), now, self.lifetime_days, self.skew_days) {
            return Err(VerifyError::Expired);
        }
        Ok(tag.original)
    }

    /// The outcome for an address as of `now`.
    pub fn status_at<A: AsRef<[u8]> + ?Sized>(&self, address: &A, now: i64) -> Outcome {
        match self.verify_at(address, now) {
            Ok(_) => Outcome::Valid,
            Err(e) => e.outcome(),
        }
    }

    /// The outcome for an address with the system clock.
    pub fn status<A: AsRef<[u8]> + ?Sized>(&self, address: &A) -> Outcome {
        self.status_at(address, days::unix_now())
    }
}

/// The rule for `lifetime-days`: 1 to 365.
pub(crate) fn valid_lifetime(days: u16) -> Result<u16, KeyringErrorKind> {
    (1..=MAX_LIFETIME_DAYS).contains(&days).then_some(days).ok_or(KeyringErrorKind::LifetimeOutOfRange)
}

/// The rule for `skew-days`: 0 to 7.
pub(crate) fn valid_skew(days: u16) -> Result<u16, KeyringErrorKind> {
    (days <= MAX_SKEW_DAYS).then_some(days).ok_or(KeyringErrorKind::SkewOutOfRange)
}

/// What [`Keyring::sign_into`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signed {
    /// The address is the null sender or already tagged: use it as it is.
    Unchanged,
    /// The signed address is in the buffer, this many octets long.
    Written(usize),
}

/// The ASCII `K` `DDD` characters for a key number and day stamp.
fn kddd(key_number: u8, day_stamp: u16) -> [u8; 4] {
    let digit = |n: u16| b'0' + (n % 10) as u8;
    [b'0' + key_number, digit(day_stamp / 100), digit(day_stamp / 10), digit(day_stamp)]
}
