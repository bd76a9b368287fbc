//! Outcomes and errors: the one table of their words and messages, which never hold a secret.

use core::fmt;
use std::path::PathBuf;

/// The result of verifying one address; the same words in every face.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Tagged, the MAC matches a known key, and the tag has not expired.
    Valid,
    /// No `prvs=` tag.
    Untagged,
    /// Not an address, or it starts like a tag but is not one.
    Malformed,
    /// The tag's key number is not in the keyring.
    UnknownKey,
    /// The MAC does not match.
    BadSignature,
    /// The MAC matches but the day stamp is outside the window.
    Expired,
}

impl Outcome {
    /// Every outcome, in the order of docs/scheme.md.
    pub const ALL: [Outcome; 6] = [
        Outcome::Valid,
        Outcome::Untagged,
        Outcome::Malformed,
        Outcome::UnknownKey,
        Outcome::BadSignature,
        Outcome::Expired,
    ];

    /// The outcome word: `valid`, `untagged`, `malformed`, `unknown-key`, `bad-signature`, `expired`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Outcome::Valid => "valid",
            Outcome::Untagged => "untagged",
            Outcome::Malformed => "malformed",
            Outcome::UnknownKey => "unknown-key",
            Outcome::BadSignature => "bad-signature",
            Outcome::Expired => "expired",
        }
    }

    /// What the outcome means, in one line that starts with its word.
    pub const fn message(self) -> &'static str {
        match self {
            Outcome::Valid => "valid: the tag verifies",
            Outcome::Untagged => "untagged: the address has no prvs= tag",
            Outcome::Malformed => "malformed: not an address, or a prvs= tag that is not one",
            Outcome::UnknownKey => "unknown-key: the tag's key number is not in the keyring",
            Outcome::BadSignature => "bad-signature: the tag was not made with this keyring",
            Outcome::Expired => "expired: the tag's day is outside the window",
        }
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with an address, its `prvs=` tag, or (from `sign`) its signed form.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum AddressProblem {
    /// Longer than 254 octets, which no SMTP path is.
    TooLong {
        /// Its length in octets.
        len: usize,
    },
    /// Not UTF-8.
    NotUtf8,
    /// An ASCII control character (NUL, TAB, CR, LF, DEL, ...).
    ControlCharacter,
    /// A `<` or `>` outside a quoted local part (`<>` alone is the null sender).
    AngleBrackets,
    /// A space or other whitespace outside a quoted local part.
    Whitespace,
    /// A local part that opens a quote is not one quoted string closed just before the `@`.
    QuotedLocalPart,
    /// The character after `prvs=` is not a digit.
    BadKeyNumber,
    /// The day stamp of a tag is not three digits.
    BadDayStamp,
    /// The signature of a tag is not six hexadecimal digits.
    BadHex,
    /// The ten tag characters are not followed by `=` (nor is it the old `/` form).
    MissingSeparator,
    /// No `local@domain` address follows the tag.
    NoAddress,
    /// No `@`: an unqualified address is not signed.
    NoAt,
    /// Nothing before the `@`.
    EmptyLocalPart,
    /// Nothing after the `@`.
    EmptyDomain,
    /// The signed form would be over 254 octets; send it untagged.
    TooLongToSign {
        /// Its length in octets.
        len: usize,
    },
}

impl AddressProblem {
    /// Whether this problem is with a `prvs=` tag, not with the address as such.
    pub const fn is_tag_problem(self) -> bool {
        matches!(
            self,
            AddressProblem::BadKeyNumber
                | AddressProblem::BadDayStamp
                | AddressProblem::BadHex
                | AddressProblem::MissingSeparator
                | AddressProblem::NoAddress
        )
    }
}

impl fmt::Display for AddressProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use AddressProblem::*;
        match self {
            TooLong { len } => write!(f, "too long: {len} octets, and an address has at most 254"),
            TooLongToSign { len } => {
                write!(f, "too long to sign: {len} octets, and a signed address would exceed 254")
            }
            NotUtf8 => f.write_str("not UTF-8 text"),
            ControlCharacter => f.write_str("it contains a control character"),
            AngleBrackets => f.write_str(
                "it has angle brackets ('<' or '>') outside a quoted local part; give the address inside <...> (<> alone is the null sender)",
            ),
            Whitespace => {
                f.write_str("it contains a space or other whitespace outside a quoted local part")
            }
            QuotedLocalPart => f.write_str(
                "a local part that opens a quote must be one quoted string that closes just before the '@'",
            ),
            BadKeyNumber => f.write_str("the key number after prvs= is not a digit"),
            BadDayStamp => f.write_str("the day stamp is not three digits"),
            BadHex => f.write_str("the signature is not six hexadecimal digits"),
            MissingSeparator => f.write_str("the tag is not followed by '='"),
            NoAddress => f.write_str("no local@domain address follows the tag"),
            NoAt => f.write_str("no '@' (unqualified addresses are not signed)"),
            EmptyLocalPart => f.write_str("the local part before '@' is empty"),
            EmptyDomain => f.write_str("the domain after '@' is empty"),
        }
    }
}

impl std::error::Error for AddressProblem {}

/// Why an address did not verify: every outcome but `valid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VerifyError {
    /// No `prvs=` tag.
    Untagged,
    /// Not an address, or a tag that is not one; says what is wrong.
    Malformed(AddressProblem),
    /// The tag's key number (0-9) is not in the keyring.
    UnknownKey(u8),
    /// The MAC does not match.
    BadSignature,
    /// The MAC matches, but the tag expired (or is dated too far ahead).
    Expired,
}

impl VerifyError {
    /// The outcome this error stands for.
    pub const fn outcome(self) -> Outcome {
        match self {
            VerifyError::Untagged => Outcome::Untagged,
            VerifyError::Malformed(_) => Outcome::Malformed,
            VerifyError::UnknownKey(_) => Outcome::UnknownKey,
            VerifyError::BadSignature => Outcome::BadSignature,
            VerifyError::Expired => Outcome::Expired,
        }
    }
}

impl fmt::Display for VerifyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            VerifyError::Malformed(p) => write!(f, "malformed: {p}"),
            VerifyError::UnknownKey(k) => write!(f, "unknown-key: key {k} is not in the keyring"),
            e => f.write_str(e.outcome().message()),
        }
    }
}

impl std::error::Error for VerifyError {}

/// Why `sign` did not write a signed address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignError {
    /// The address cannot be signed; says why. Send the mail untagged.
    Address(AddressProblem),
    /// The caller's buffer is too small; `needed` octets are required.
    BufferTooSmall {
        /// Octets the signed address needs.
        needed: usize,
    },
}

impl fmt::Display for SignError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SignError::Address(p) => write!(f, "cannot sign: {p}"),
            SignError::BufferTooSmall { needed } => {
                write!(f, "buffer too small: {needed} octets needed")
            }
        }
    }
}

impl std::error::Error for SignError {}

/// A policy setting that cannot be used; the faces name the setting.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum PolicyError {
    /// An exemption is not `user@domain`, `@domain` or `user@`.
    BadExemption,
    /// An exemption is longer than an address can be, so it could match nothing.
    ExemptionTooLong {
        /// Its length in octets.
        len: usize,
    },
    /// An exemption holds a `*`: patterns are literal, and there are no wildcards.
    ExemptionWildcard {
        /// The pattern that does what it meant (`@domain`, `user@`), if any.
        instead: Option<String>,
    },
    /// A bounce local part is empty or contains `@`.
    BadBounceLocalPart,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            PolicyError::BadExemption => f.write_str(
                "an exemption must be user@domain, @domain or user@ (with no control characters)",
            ),
            PolicyError::ExemptionTooLong { len } => write!(
                f,
                "an exemption is at most {} octets, as an address is; this one has {len}, so it \
                 could match nothing",
                crate::MAX_ADDRESS_LEN
            ),
            PolicyError::ExemptionWildcard { instead } => {
                f.write_str("exemptions are literal: '*' is not a wildcard and would match nothing; ")?;
                match instead {
                    Some(p) if p.starts_with('@') => write!(f, "write '{p}' for every address of the domain"),
                    Some(p) => write!(f, "write '{p}' for the local part at every domain"),
                    None => f.write_str(
                        "list each address (user@domain), domain (@domain) or local part (user@)",
                    ),
                }
            }
            PolicyError::BadBounceLocalPart => {
                f.write_str("a bounce local part must be non-empty and contain no '@'")
            }
        }
    }
}

impl std::error::Error for PolicyError {}

/// A keyring that could not be read: the file, the line, and what is wrong. Never a secret.
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
    pub(crate) fn new(kind: KeyringErrorKind) -> KeyringError {
        KeyringError { path: None, line: None, kind }
    }

    pub(crate) fn at_line(line: usize, kind: KeyringErrorKind) -> KeyringError {
        KeyringError { path: None, line: Some(line), kind }
    }

    pub(crate) fn in_file(mut self, path: &std::path::Path) -> KeyringError {
        self.path = Some(path.to_path_buf());
        self
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
        let Some(p) = &self.path else { return Ok(()) };
        let p = p.display();
        match &self.kind {
            KeyringErrorKind::InsecurePermissions { .. } => write!(
                f,
                "; fix it with: chmod 600 {p} (or chmod 640 when the MTA reads it through its group)"
            ),
            KeyringErrorKind::ForeignOwner { .. } => write!(f, "; fix it with: chown root {p}"),
            KeyringErrorKind::AclGrant(AclGrant::User { uid, .. }) => write!(
                f,
                "; fix it with: setfacl -x u:{uid} {p} (or setfacl -b {p} to remove the whole ACL)"
            ),
            KeyringErrorKind::AclGrant(AclGrant::GroupWrite { gid }) => write!(
                f,
                "; fix it with: setfacl -m g:{gid}:r {p} (or setfacl -x g:{gid} {p} to remove the entry)"
            ),
            KeyringErrorKind::AclGrant(AclGrant::Unreadable) => {
                write!(f, "; fix it with: setfacl -b {p} (removes the whole ACL)")
            }
            _ => Ok(()),
        }
    }
}

impl std::error::Error for KeyringError {}

/// A word from a keyring file as an error shows it: a directive or scheme name as written, any
/// other word (it may be a secret) only described.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum FileWord {
    /// A directive or scheme name, in any ASCII case: shown as written.
    Known(String),
    /// Any other word: its length and kind, never its text.
    Unknown {
        /// Its length in characters.
        chars: usize,
        /// What characters it holds.
        kind: WordKind,
    },
}

/// What characters a word that is not shown holds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum WordKind {
    /// ASCII digits only.
    Digits,
    /// ASCII letters only.
    Letters,
    /// ASCII letters and digits.
    LettersAndDigits,
    /// The base64 alphabet, with `+`, `/` or `=` among them.
    Base64,
    /// It starts with `base64`, `hex` or `text` and a colon (held without it, so that not even
    /// `Debug` writes a prefix that text could follow).
    Secret(&'static str),
    /// A control character among them.
    Control,
    /// Characters outside ASCII among them.
    NonAscii,
    /// ASCII punctuation among them.
    Punctuation,
}

impl fmt::Display for FileWord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (n, kind) = match self {
            FileWord::Known(w) => return write!(f, "'{w}'"),
            FileWord::Unknown { chars, kind } => (*chars, kind),
        };
        match kind {
            WordKind::Digits => write!(f, "a number of {n} digits"),
            WordKind::Letters => write!(f, "a word of {n} letters"),
            WordKind::LettersAndDigits => write!(f, "a word of {n} letters and digits"),
            WordKind::Base64 => write!(f, "a word of {n} base64 characters"),
            WordKind::Secret(prefix) => write!(f, "a word of {n} characters that starts with {prefix}:, like a secret"),
            WordKind::Control => write!(f, "a word of {n} characters, a control character among them"),
            WordKind::NonAscii => write!(f, "a word of {n} characters, some not ASCII"),
            WordKind::Punctuation => write!(f, "a word of {n} characters with punctuation"),
        }
    }
}

/// An access ACL entry that lets someone besides the owner and group use a keyring file.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum AclGrant {
    /// A named user may read, write or execute the file.
    User {
        /// The user's id.
        uid: u32,
        /// What the entry allows, within the ACL's mask (read 4, write 2, execute 1).
        perm: u8,
    },
    /// A named group may write the file.
    GroupWrite {
        /// The group's id.
        gid: u32,
    },
    /// The ACL is not in the form of Linux's `system.posix_acl_access`, so it cannot be judged.
    Unreadable,
}

impl fmt::Display for AclGrant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            AclGrant::User { uid, perm } => {
                let bit = |b: u8, c: char| if perm & b != 0 { c } else { '-' };
                write!(
                    f,
                    "its ACL gives user uid {uid} access ({}{}{}); only the owner and the file's group may have any",
                    bit(4, 'r'),
                    bit(2, 'w'),
                    bit(1, 'x')
                )
            }
            AclGrant::GroupWrite { gid } => write!(
                f,
                "its ACL lets group gid {gid} write the file; a group may only read a keyring"
            ),
            AclGrant::Unreadable => f.write_str(
                "its ACL (system.posix_acl_access) is not in a form batv can read, so it is refused",
            ),
        }
    }
}

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
    /// The file's owner is neither root nor the user of this process.
    ForeignOwner {
        /// The owner's user id.
        uid: u32,
        /// The effective user id of this process.
        euid: u32,
    },
    /// The file's access ACL grants another user access, or another group write.
    AclGrant(AclGrant),
    /// The file is not UTF-8 text.
    NotUtf8,
    /// A line starts with a word that is not a directive.
    UnknownDirective(FileWord),
    /// A directive lacks a value.
    MissingValue(&'static str),
    /// A directive has more values than it takes.
    TrailingText(&'static str),
    /// A key number is not a single digit 0-9.
    BadKeyNumber,
    /// A key number appears on two `key` lines.
    DuplicateKey(u8),
    /// The scheme is neither `hmac-sha256` nor `hmac-sha1`.
    UnknownScheme(FileWord),
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
    /// A `retired` line is not `retired N YYYY-MM-DD`.
    BadRetired,
    /// Every key number holds a key whose tags may still verify: a new key would replace one.
    NoFreeKeyNumber {
        /// The key to retire first.
        retire: u8,
        /// The first UTC day number on which it may be pruned, if recorded.
        prunable_from: Option<i64>,
    },
    /// No key has this number.
    NoSuchKey(u8),
}

impl fmt::Display for KeyringErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use crate::days::{MAX_LIFETIME_DAYS, MAX_SKEW_DAYS};
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
            ForeignOwner { uid, euid } => write!(
                f,
                "the file is owned by uid {uid}, which is neither root nor the user of this process (uid {euid}): that user could rewrite the keys"
            ),
            AclGrant(grant) => write!(f, "{grant}"),
            NotUtf8 => f.write_str("not UTF-8 text"),
            UnknownDirective(w) => write!(
                f,
                "unknown directive{} {w} (expected key, sign-key, retired, lifetime-days or skew-days)",
                if matches!(w, FileWord::Known(_)) { "" } else { ":" }
            ),
            MissingValue(what) => write!(f, "{what} is missing"),
            TrailingText(what) => write!(f, "unexpected text after {what}"),
            BadKeyNumber => f.write_str("a key number must be one digit, 0 to 9"),
            DuplicateKey(n) => write!(f, "key {n} is defined twice"),
            UnknownScheme(w) => write!(
                f,
                "unknown scheme{} {w} (expected hmac-sha256 or hmac-sha1)",
                if matches!(w, FileWord::Known(_)) { "" } else { ":" }
            ),
            BadSecretPrefix => f.write_str("the secret must start with base64:, hex: or text:"),
            BadBase64 => f.write_str("the base64: secret is not valid base64"),
            BadHex => f.write_str("the hex: secret is not valid hexadecimal"),
            SecretTooShort { len } => write!(
                f,
                "the secret is {len} bytes; base64: and hex: secrets need at least {}",
                crate::keys::MIN_ENCODED_SECRET_LEN
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
            BadRetired => f.write_str("a retired line must be: retired N YYYY-MM-DD (the UTC day key N stopped signing)"),
            NoFreeKeyNumber { retire, prunable_from: Some(day) } => write!(
                f,
                "every key number, 0 to 9, holds a key whose tags may still verify; key {retire} may be pruned from {} on (batv keygen --prune), which frees its number",
                crate::keyfile::date_of_day(*day)
            ),
            NoFreeKeyNumber { retire, prunable_from: None } => write!(
                f,
                "every key number, 0 to 9, holds a key whose tags may still verify, and no key records when it stopped signing (a retired line); key {retire} is next in line: delete its line by hand if you know its tags no longer verify (it stopped signing more than lifetime + skew days ago), which frees its number"
            ),
            NoSuchKey(n) => write!(f, "there is no key {n} in the keyring"),
        }
    }
}
