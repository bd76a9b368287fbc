//! The keyring: keys, lifetime and skew, the keyring file (SPEC section 8), and the signing and
//! verification entry points that use them.

use crate::days::{
    self, DEFAULT_LIFETIME_DAYS, DEFAULT_SKEW_DAYS, MAX_LIFETIME_DAYS, MAX_SKEW_DAYS,
};
use crate::error::{Outcome, SignError, VerifyError};
use crate::mac::{PreparedMac, Scheme};
use crate::wire::{self, Original, MAX_ADDRESS_LEN, TAG_OVERHEAD};
use base64ct::Encoding as _;
use core::fmt;
use std::borrow::Cow;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// Number of key slots (`K` is one digit).
pub const KEY_SLOTS: usize = 10;

/// Shortest `base64:` or `hex:` secret accepted, in bytes.
pub const MIN_ENCODED_SECRET_LEN: usize = 16;

/// Length of a generated secret in bytes.
pub const GENERATED_SECRET_LEN: usize = 32;

/// How a secret was written in the keyring file, so that a rewritten file keeps it as it was.
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
    number: u8,
    scheme: Scheme,
    encoding: SecretEncoding,
    secret: Zeroizing<Vec<u8>>,
    mac: PreparedMac,
}

impl Key {
    /// A key from raw secret bytes. The number must be 0-9 and the secret non-empty.
    pub fn new(number: u8, scheme: Scheme, secret: &[u8]) -> Result<Key, KeyringErrorKind> {
        Key::with_encoding(number, scheme, SecretEncoding::Base64, secret)
    }

    fn with_encoding(
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
        Ok(Key {
            number,
            scheme,
            encoding,
            secret: Zeroizing::new(secret.to_vec()),
            mac: PreparedMac::new(scheme, secret),
        })
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
}

impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Key")
            .field("number", &self.number)
            .field("scheme", &self.scheme)
            .field("secret", &"<redacted>")
            .finish()
    }
}

/// An immutable set of up to ten keys with the lifetime and skew that go with them.
///
/// A keyring is `Send + Sync`: build it once and share it between threads. One key signs; all
/// keys verify.
///
/// ```
/// use batv_core::Keyring;
/// let keys = Keyring::parse("key 1 hmac-sha1 text:secret\n").unwrap();
/// let now = 1_795_700_000; // 2026-11-26 12:53 UTC
/// let signed = keys.sign_at("user@example.com", now).unwrap();
/// assert_eq!(signed, "prvs=1790c1c5ba=user@example.com");
/// assert_eq!(keys.verify_at(&signed, now).unwrap().to_string(), "user@example.com");
/// ```
#[derive(Clone)]
pub struct Keyring {
    keys: [Option<Key>; KEY_SLOTS],
    sign_key: u8,
    lifetime_days: u16,
    skew_days: u16,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("keys", &self.keys().collect::<Vec<_>>())
            .field("sign_key", &self.sign_key)
            .field("lifetime_days", &self.lifetime_days)
            .field("skew_days", &self.skew_days)
            .finish()
    }
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
        Key::generate(1, Scheme::HmacSha256)
            .map(Keyring::with_key)
            .map_err(KeyringError::from_kind)
    }

    /// This keyring with a new generated key of the sign key's scheme under the next key number
    /// (9 wraps to 0), which becomes the sign key. The old keys keep verifying; a key already
    /// under that number is replaced (see [`Keyring::rotation_replaces`]).
    pub fn rotated(&self) -> Result<Keyring, KeyringError> {
        self.rotated_with(self.signing_key().scheme)
    }

    /// Like [`Keyring::rotated`], with a new key of `scheme`: how a keyring shared with Exim's
    /// `${prvs}` (hmac-sha1) moves to hmac-sha256 once every server runs libbatv. The old keys,
    /// of whatever scheme, keep verifying.
    pub fn rotated_with(&self, scheme: Scheme) -> Result<Keyring, KeyringError> {
        let next = self.next_key_number();
        let key = Key::generate(next, scheme).map_err(KeyringError::from_kind)?;
        let mut ring = self.clone();
        ring.keys[usize::from(next)] = Some(key);
        ring.sign_key = next;
        Ok(ring)
    }

    /// The key number a rotation would add.
    pub fn next_key_number(&self) -> u8 {
        (self.sign_key + 1) % KEY_SLOTS as u8
    }

    /// The old key that [`Keyring::rotated`] would replace, if that slot is in use.
    pub fn rotation_replaces(&self) -> Option<u8> {
        let n = self.next_key_number();
        self.keys[usize::from(n)].as_ref().map(|_| n)
    }

    /// This keyring with another lifetime (1-365 days).
    pub fn with_lifetime_days(mut self, days: u16) -> Result<Keyring, KeyringErrorKind> {
        if !(1..=MAX_LIFETIME_DAYS).contains(&days) {
            return Err(KeyringErrorKind::LifetimeOutOfRange);
        }
        self.lifetime_days = days;
        Ok(self)
    }

    /// This keyring with another skew (0-7 days).
    pub fn with_skew_days(mut self, days: u16) -> Result<Keyring, KeyringErrorKind> {
        if days > MAX_SKEW_DAYS {
            return Err(KeyringErrorKind::SkewOutOfRange);
        }
        self.skew_days = days;
        Ok(self)
    }

    /// Parses keyring text (SPEC section 8). No permission check: that belongs to files.
    pub fn parse(text: &str) -> Result<Keyring, KeyringError> {
        parse_text(text)
    }

    /// Loads a keyring file, refusing one that other users can read or write.
    pub fn load(path: impl AsRef<Path>) -> Result<Keyring, KeyringError> {
        let path = path.as_ref();
        let mut file = std::fs::File::open(path).map_err(|e| KeyringError {
            path: Some(path.to_path_buf()),
            line: None,
            kind: KeyringErrorKind::Io(e.kind()),
        })?;
        Keyring::load_file(path, &mut file)
    }

    /// [`Keyring::load`] from a file already opened at `path` (the cached loader checks the
    /// open file, not the path, for changes during the read).
    pub(crate) fn load_file(path: &Path, file: &mut std::fs::File) -> Result<Keyring, KeyringError> {
        let at = |kind| KeyringError { path: Some(path.to_path_buf()), line: None, kind };
        let meta = file.metadata().map_err(|e| at(KeyringErrorKind::Io(e.kind())))?;
        if !meta.is_file() {
            return Err(at(KeyringErrorKind::NotAFile));
        }
        check_permissions(&meta).map_err(at)?;
        let mut bytes = Zeroizing::new(Vec::with_capacity(meta.len().min(1 << 20) as usize + 1));
        std::io::Read::read_to_end(file, &mut bytes)
            .map_err(|e| at(KeyringErrorKind::Io(e.kind())))?;
        let text = match std::str::from_utf8(&bytes) {
            Ok(t) => t,
            Err(e) => {
                let line = bytes[..e.valid_up_to()].iter().filter(|&&b| b == b'\n').count() + 1;
                return Err(KeyringError { path: Some(path.to_path_buf()), line: Some(line), kind: KeyringErrorKind::NotUtf8 });
            }
        };
        parse_text(text).map_err(|mut e| {
            e.path = Some(path.to_path_buf());
            e
        })
    }

    /// The keyring as file text, secrets included: write it only to a file of mode 0600.
    pub fn to_file_text(&self) -> Zeroizing<String> {
        // Sized for the whole text up front (an encoded secret is at most 2n + 4 octets): a
        // String that grows by reallocation frees its old buffer with the secrets still in it.
        let size = 256 + self.keys().map(|k| 32 + 2 * k.secret.len() + 4).sum::<usize>();
        let mut s = Zeroizing::new(String::with_capacity(size));
        s.push_str("# batv keyring: keep this file secret (mode 0600).\n");
        s.push_str("# Rotate with `batv keygen --rotate`; keep an old key for lifetime + skew days.\n");
        s.push_str(&format!("lifetime-days {}\n", self.lifetime_days));
        s.push_str(&format!("skew-days {}\n", self.skew_days));
        s.push_str(&format!("sign-key {}\n", self.sign_key));
        for key in self.keys() {
            s.push_str(&format!("key {} {} ", key.number, key.scheme));
            match key.encoding {
                SecretEncoding::Base64 => {
                    s.push_str("base64:");
                    s.push_str(&Zeroizing::new(base64ct::Base64::encode_string(&key.secret)));
                }
                SecretEncoding::Hex => {
                    s.push_str("hex:");
                    s.push_str(&Zeroizing::new(base16ct::lower::encode_string(&key.secret)));
                }
                SecretEncoding::Text => {
                    s.push_str("text:");
                    // Parsed from UTF-8 text, so this is UTF-8; a lossy copy would change the key.
                    s.push_str(std::str::from_utf8(&key.secret).unwrap_or_default());
                }
            }
            s.push('\n');
        }
        s
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
        // Every constructor puts a key in the sign-key slot.
        match &self.keys[usize::from(self.sign_key)] {
            Some(k) => k,
            None => unreachable!("a keyring always holds its sign key"),
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
    pub fn sign<'a>(&self, address: &'a str) -> Result<Cow<'a, str>, SignError> {
        self.sign_at(address, days::unix_now())
    }

    /// Signs an envelope sender as of `now` (Unix seconds).
    ///
    /// The null sender and already tagged addresses come back unchanged (borrowed). An
    /// unqualified address, or one whose signed form would exceed 254 octets, is an error: send
    /// it untagged.
    pub fn sign_at<'a>(&self, address: &'a str, now: i64) -> Result<Cow<'a, str>, SignError> {
        let mut buf = [0u8; MAX_ADDRESS_LEN];
        match self.sign_into(address, now, &mut buf)? {
            Signed::Unchanged => Ok(Cow::Borrowed(address)),
            // The buffer holds ASCII tag characters and slices of a &str.
            Signed::Written(n) => Ok(Cow::Owned(String::from_utf8_lossy(&buf[..n]).into_owned())),
        }
    }

    /// Signs into a caller buffer without allocating: the path of the C library and Exim.
    ///
    /// Returns [`Signed::Unchanged`] for the null sender (`""`, or `<>` as SMTP writes it, which
    /// the bounce policy also takes for the null sender) and for tagged addresses (the caller
    /// copies the input), or [`Signed::Written`] with the length of the signed address in `out`.
    /// A buffer of 254 octets always suffices.
    pub fn sign_into(&self, address: &str, now: i64, out: &mut [u8]) -> Result<Signed, SignError> {
        if address.is_empty() || address == "<>" || wire::parse(address).is_ok_and(|t| t.is_some()) {
            return Ok(Signed::Unchanged);
        }
        wire::check_signable(address)?;
        let key = self.signing_key();
        let kddd = wire::kddd(key.number, days::expiry_stamp(now, self.lifetime_days));
        // The address is copied into place first: that copy does not depend on the MAC, so it
        // then runs while the block function does (issue 6, measured).
        let n = wire::place_address(address, out)
            .map_err(|needed| SignError::BufferTooSmall { needed })?;
        let mac = key.mac.tag(&kddd, Original::whole(address));
        wire::write_tag(address, &kddd, mac, &mut out[..n]);
        Ok(Signed::Written(n))
    }

    /// Verifies a tagged address with the system clock. See [`Keyring::verify_at`].
    pub fn verify<'a>(&self, address: &'a str) -> Result<Original<'a>, VerifyError> {
        self.verify_at(address, days::unix_now())
    }

    /// Verifies a tagged address as of `now` and returns the original address, borrowed from
    /// the input, or the reason it is not valid. Never allocates.
    pub fn verify_at<'a>(&self, address: &'a str, now: i64) -> Result<Original<'a>, VerifyError> {
        // A match rather than `?` chains: the Tag then stays in registers (measured, issue 6).
        let tag = match wire::parse(address) {
            Ok(Some(tag)) => tag,
            Ok(None) => return Err(VerifyError::Untagged),
            Err(m) => return Err(VerifyError::Malformed(m)),
        };
        let key = self.key(tag.key_number()).ok_or(VerifyError::UnknownKey(tag.key_number()))?;
        // The day window is computed before the MAC, which it does not depend on, so that it
        // runs while the block function does (issue 6, measured); a bad MAC is still reported
        // first.
        let fresh = days::within_window(tag.day_stamp(), now, self.lifetime_days, self.skew_days);
        if !key.mac.matches(&tag) {
            return Err(VerifyError::BadSignature);
        }
        if !fresh {
            return Err(VerifyError::Expired);
        }
        Ok(tag.original)
    }

    /// The outcome word for an address as of `now`.
    pub fn status_at(&self, address: &str, now: i64) -> Outcome {
        match self.verify_at(address, now) {
            Ok(_) => Outcome::Valid,
            Err(e) => e.outcome(),
        }
    }

    /// The outcome word for an address with the system clock.
    pub fn status(&self, address: &str) -> Outcome {
        self.status_at(address, days::unix_now())
    }
}

/// What [`Keyring::sign_into`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Signed {
    /// The address is the null sender or already tagged: use it as it is.
    Unchanged,
    /// The signed address is in the buffer, this many octets long.
    Written(usize),
}

/// Octets a caller buffer needs for any signed address (without a terminating NUL).
pub const SIGNED_MAX: usize = MAX_ADDRESS_LEN;
const _: () = assert!(SIGNED_MAX >= TAG_OVERHEAD + 3);

#[cfg(unix)]
fn check_permissions(meta: &std::fs::Metadata) -> Result<(), KeyringErrorKind> {
    use std::os::unix::fs::PermissionsExt;
    let mode = meta.permissions().mode() & 0o7777;
    // Group read is allowed so that an MTA's group (Debian-exim) can read a root-owned file;
    // any access by others, or group write, is refused.
    if mode & 0o027 != 0 {
        return Err(KeyringErrorKind::InsecurePermissions { mode });
    }
    Ok(())
}

#[cfg(not(unix))]
fn check_permissions(_meta: &std::fs::Metadata) -> Result<(), KeyringErrorKind> {
    Ok(())
}

/// A keyring that could not be read: the file, the line, and what is wrong. Never the secret.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeyringError {
    /// The file, when the keyring came from one.
    pub path: Option<PathBuf>,
    /// The 1-based line, when the problem is on one line.
    pub line: Option<usize>,
    /// What is wrong.
    pub kind: KeyringErrorKind,
}

impl KeyringError {
    fn from_kind(kind: KeyringErrorKind) -> KeyringError {
        KeyringError { path: None, line: None, kind }
    }

    fn at_line(line: usize, kind: KeyringErrorKind) -> KeyringError {
        KeyringError { path: None, line: Some(line), kind }
    }
}

impl fmt::Display for KeyringError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.path {
            Some(p) => write!(f, "keyring {}", p.display())?,
            None => f.write_str("keyring")?,
        }
        if let Some(line) = self.line {
            write!(f, " line {line}")?;
        }
        write!(f, ": {}", self.kind)?;
        if let (KeyringErrorKind::InsecurePermissions { .. }, Some(p)) = (&self.kind, &self.path) {
            write!(
                f,
                "; fix it with: chmod 600 {} (or chmod 640 when the MTA reads it through its group)",
                p.display()
            )?;
        }
        Ok(())
    }
}

impl std::error::Error for KeyringError {}

/// What is wrong with a keyring. Words from the file that could be secret never appear here.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum KeyringErrorKind {
    /// The file could not be opened or read.
    Io(std::io::ErrorKind),
    /// The path is not a regular file.
    NotAFile,
    /// The file is readable or writable by other users (or writable by its group).
    InsecurePermissions {
        /// The file's permission bits.
        mode: u32,
    },
    /// The file is not UTF-8 text.
    NotUtf8,
    /// A line starts with a word that is not a directive.
    UnknownDirective(String),
    /// A directive lacks a value.
    MissingValue(&'static str),
    /// A directive has more values than it takes.
    TrailingText(&'static str),
    /// A key number is not a single digit 0-9.
    BadKeyNumber,
    /// A key number appears on two `key` lines.
    DuplicateKey(u8),
    /// The scheme is neither `hmac-sha256` nor `hmac-sha1`.
    UnknownScheme(String),
    /// The secret does not start with `base64:`, `hex:` or `text:`.
    BadSecretPrefix,
    /// The `base64:` secret is not valid base64.
    BadBase64,
    /// The `hex:` secret is not valid hexadecimal.
    BadHex,
    /// A `base64:` or `hex:` secret decodes to fewer than 16 bytes.
    SecretTooShort {
        /// Bytes it decodes to.
        len: usize,
    },
    /// The secret is empty.
    EmptySecret,
    /// `lifetime-days` is not a whole number from 1 to 365.
    LifetimeOutOfRange,
    /// `skew-days` is not a whole number from 0 to 7.
    SkewOutOfRange,
    /// A setting appears twice.
    DuplicateSetting(&'static str),
    /// There is no `key` line.
    NoKeys,
    /// There is more than one key and no `sign-key` line.
    MissingSignKey,
    /// `sign-key` names a key number with no `key` line.
    SignKeyNotDefined(u8),
    /// The operating system gave no random bytes for a new key.
    NoRandomness,
    /// The file changed while it was read, again and again: it is being rewritten in place.
    ChangedWhileRead,
}

impl fmt::Display for KeyringErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use KeyringErrorKind::*;
        match self {
            Io(std::io::ErrorKind::NotFound) => f.write_str("cannot read the file: it does not exist"),
            Io(std::io::ErrorKind::PermissionDenied) => {
                f.write_str("cannot read the file: permission denied for this user")
            }
            Io(kind) => write!(f, "cannot read the file: {}", std::io::Error::from(*kind)),
            NotAFile => f.write_str("not a regular file"),
            InsecurePermissions { mode } => {
                write!(f, "other users can read or write this file (mode {mode:04o})")
            }
            NotUtf8 => f.write_str("not UTF-8 text"),
            UnknownDirective(w) => write!(
                f,
                "unknown directive '{w}' (expected key, sign-key, lifetime-days or skew-days)"
            ),
            MissingValue(what) => write!(f, "{what} is missing"),
            TrailingText(what) => write!(f, "unexpected text after {what}"),
            BadKeyNumber => f.write_str("a key number must be one digit, 0 to 9"),
            DuplicateKey(n) => write!(f, "key {n} is defined twice"),
            UnknownScheme(s) => {
                write!(f, "unknown scheme '{s}' (expected hmac-sha256 or hmac-sha1)")
            }
            BadSecretPrefix => f.write_str("the secret must start with base64:, hex: or text:"),
            BadBase64 => f.write_str("the base64: secret is not valid base64"),
            BadHex => f.write_str("the hex: secret is not valid hexadecimal"),
            SecretTooShort { len } => write!(
                f,
                "the secret is {len} bytes; base64: and hex: secrets need at least {MIN_ENCODED_SECRET_LEN}"
            ),
            EmptySecret => f.write_str("the secret is empty"),
            LifetimeOutOfRange => {
                write!(f, "lifetime-days must be a whole number from 1 to {MAX_LIFETIME_DAYS}")
            }
            SkewOutOfRange => write!(f, "skew-days must be a whole number from 0 to {MAX_SKEW_DAYS}"),
            DuplicateSetting(what) => write!(f, "{what} is set twice"),
            NoKeys => f.write_str("no key line: add one with `batv keygen`"),
            MissingSignKey => f.write_str("more than one key and no sign-key line to say which signs"),
            SignKeyNotDefined(n) => write!(f, "sign-key {n} names a key that is not defined"),
            NoRandomness => f.write_str("the operating system gave no random bytes for a new key"),
            ChangedWhileRead => f.write_str(
                "the file changed while it was read; replace it by rename instead of rewriting it in place",
            ),
        }
    }
}

/// Splits off the first whitespace-separated word.
fn next_word(s: &str) -> Option<(&str, &str)> {
    let s = s.trim_start_matches([' ', '\t']);
    if s.is_empty() {
        return None;
    }
    let end = s.find([' ', '\t']).unwrap_or(s.len());
    Some((&s[..end], &s[end..]))
}

fn parse_text(text: &str) -> Result<Keyring, KeyringError> {
    let mut keys: [Option<Key>; KEY_SLOTS] = Default::default();
    let mut sign_key: Option<(u8, usize)> = None;
    let mut lifetime: Option<u16> = None;
    let mut skew: Option<u16> = None;
    let mut last_key_line = 0;
    let mut key_count = 0;

    for (index, raw) in text.split('\n').enumerate() {
        let n = index + 1;
        // Every trailing CR is line-end noise (CRLF, or CR CR LF from a twice-converted file),
        // never part of a `text:` secret: to_file_text could not write such a secret back.
        let line = raw.trim_end_matches('\r');
        let err = |kind| KeyringError::at_line(n, kind);
        let Some((word, rest)) = next_word(line) else { continue };
        if word.starts_with('#') {
            continue;
        }
        match word {
            "key" => {
                let (number, rest) = next_word(rest).ok_or(err(KeyringErrorKind::MissingValue("the key number")))?;
                let number = parse_digit(number).ok_or(err(KeyringErrorKind::BadKeyNumber))?;
                let (scheme, rest) = next_word(rest).ok_or(err(KeyringErrorKind::MissingValue("the scheme")))?;
                let scheme = Scheme::from_name(scheme)
                    .ok_or_else(|| err(KeyringErrorKind::UnknownScheme(shown_word(scheme))))?;
                let secret = rest.trim_start_matches([' ', '\t']);
                if secret.is_empty() {
                    return Err(err(KeyringErrorKind::MissingValue("the secret")));
                }
                let (encoding, bytes) = decode_secret(secret).map_err(err)?;
                if keys[usize::from(number)].is_some() {
                    return Err(err(KeyringErrorKind::DuplicateKey(number)));
                }
                keys[usize::from(number)] =
                    Some(Key::with_encoding(number, scheme, encoding, &bytes).map_err(err)?);
                last_key_line = n;
                key_count += 1;
            }
            "sign-key" => {
                let v = single_value(rest, "the sign-key number").map_err(err)?;
                let k = parse_digit(v).ok_or(err(KeyringErrorKind::BadKeyNumber))?;
                if sign_key.replace((k, n)).is_some() {
                    return Err(err(KeyringErrorKind::DuplicateSetting("sign-key")));
                }
            }
            "lifetime-days" => {
                let v = single_value(rest, "the number of days").map_err(err)?;
                let d = v
                    .parse::<u16>()
                    .ok()
                    .filter(|d| (1..=MAX_LIFETIME_DAYS).contains(d))
                    .ok_or(err(KeyringErrorKind::LifetimeOutOfRange))?;
                if lifetime.replace(d).is_some() {
                    return Err(err(KeyringErrorKind::DuplicateSetting("lifetime-days")));
                }
            }
            "skew-days" => {
                let v = single_value(rest, "the number of days").map_err(err)?;
                let d = v
                    .parse::<u16>()
                    .ok()
                    .filter(|d| *d <= MAX_SKEW_DAYS)
                    .ok_or(err(KeyringErrorKind::SkewOutOfRange))?;
                if skew.replace(d).is_some() {
                    return Err(err(KeyringErrorKind::DuplicateSetting("skew-days")));
                }
            }
            other => return Err(err(KeyringErrorKind::UnknownDirective(shown_word(other)))),
        }
    }

    let lines = text.split('\n').count();
    let sign_key = match (sign_key, key_count) {
        (_, 0) => return Err(KeyringError::at_line(lines, KeyringErrorKind::NoKeys)),
        (Some((k, line)), _) => {
            if keys[usize::from(k)].is_none() {
                return Err(KeyringError::at_line(line, KeyringErrorKind::SignKeyNotDefined(k)));
            }
            k
        }
        (None, 1) => match keys.iter().flatten().next() {
            Some(k) => k.number,
            None => return Err(KeyringError::at_line(lines, KeyringErrorKind::NoKeys)),
        },
        (None, _) => {
            return Err(KeyringError::at_line(last_key_line, KeyringErrorKind::MissingSignKey))
        }
    };
    Ok(Keyring {
        keys,
        sign_key,
        lifetime_days: lifetime.unwrap_or(DEFAULT_LIFETIME_DAYS),
        skew_days: skew.unwrap_or(DEFAULT_SKEW_DAYS),
    })
}

/// A word from the file as an error may show it: a long word, or one with a `:`, may be a
/// secret (pasted on a line of its own, or in place of the scheme: `key 1 base64:...`), so it
/// is not shown.
fn shown_word(word: &str) -> String {
    if word.len() > 20 || word.contains(':') {
        "(a word that may be a secret)".into()
    } else {
        word.into()
    }
}

fn parse_digit(s: &str) -> Option<u8> {
    match s.as_bytes() {
        [d @ b'0'..=b'9'] => Some(d - b'0'),
        _ => None,
    }
}

fn single_value<'a>(rest: &'a str, what: &'static str) -> Result<&'a str, KeyringErrorKind> {
    let (v, tail) = next_word(rest).ok_or(KeyringErrorKind::MissingValue(what))?;
    if next_word(tail).is_some_and(|(w, _)| !w.starts_with('#')) {
        return Err(KeyringErrorKind::TrailingText(what));
    }
    Ok(v)
}

fn decode_secret(s: &str) -> Result<(SecretEncoding, Zeroizing<Vec<u8>>), KeyringErrorKind> {
    let (encoding, bytes) = if let Some(t) = s.strip_prefix("text:") {
        (SecretEncoding::Text, Zeroizing::new(t.as_bytes().to_vec()))
    } else if let Some(b) = s.strip_prefix("base64:") {
        let b = b.trim_end_matches([' ', '\t']);
        let v = base64ct::Base64::decode_vec(b).map_err(|_| KeyringErrorKind::BadBase64)?;
        (SecretEncoding::Base64, Zeroizing::new(v))
    } else if let Some(h) = s.strip_prefix("hex:") {
        let h = h.trim_end_matches([' ', '\t']);
        let v = base16ct::mixed::decode_vec(h).map_err(|_| KeyringErrorKind::BadHex)?;
        (SecretEncoding::Hex, Zeroizing::new(v))
    } else {
        return Err(KeyringErrorKind::BadSecretPrefix);
    };
    if bytes.is_empty() {
        return Err(KeyringErrorKind::EmptySecret);
    }
    if encoding != SecretEncoding::Text && bytes.len() < MIN_ENCODED_SECRET_LEN {
        return Err(KeyringErrorKind::SecretTooShort { len: bytes.len() });
    }
    Ok((encoding, bytes))
}
