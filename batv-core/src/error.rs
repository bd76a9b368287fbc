//! Outcomes and errors: small `Copy` types with one-line `Display`, and never a secret inside.

use core::fmt;

/// The result of verifying one address (SPEC section 6); the same words in every binding.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Outcome {
    /// Tagged, the MAC matches a known key, and the tag has not expired.
    Valid,
    /// No `prvs=` tag.
    Untagged,
    /// Starts like a tag but is not one.
    Malformed,
    /// The tag's key number is not in the keyring.
    UnknownKey,
    /// The MAC does not match.
    BadSignature,
    /// The MAC matches but the day stamp is outside the window.
    Expired,
}

impl Outcome {
    /// Every outcome, in the order of SPEC section 6.
    pub const ALL: [Outcome; 6] = [
        Outcome::Valid,
        Outcome::Untagged,
        Outcome::Malformed,
        Outcome::UnknownKey,
        Outcome::BadSignature,
        Outcome::Expired,
    ];

    /// The outcome word: `valid`, `untagged`, `malformed`, `unknown-key`, `bad-signature` or
    /// `expired`.
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

    /// The outcome for an outcome word, the inverse of [`Outcome::as_str`].
    pub fn from_word(word: &str) -> Option<Outcome> {
        Outcome::ALL.into_iter().find(|o| o.as_str() == word)
    }
}

impl fmt::Display for Outcome {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What is wrong with an address that starts like a tag but is not one.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Malformation {
    /// The character after `prvs=` is not a digit 0-9.
    BadKeyNumber,
    /// The three day-stamp characters are not all digits.
    BadDayStamp,
    /// The six signature characters are not all hexadecimal digits.
    BadHex,
    /// The `=` after the ten tag characters (or the `/` of the old form) is missing.
    MissingSeparator,
    /// There is no qualified `local@domain` address after the tag.
    NoAddress,
    /// The address contains an ASCII control character (NUL, CR, LF, ...).
    ControlCharacter,
    /// The address is longer than 254 octets.
    TooLong,
}

impl fmt::Display for Malformation {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Malformation::BadKeyNumber => "the key number after prvs= is not a digit",
            Malformation::BadDayStamp => "the day stamp is not three digits",
            Malformation::BadHex => "the signature is not six hexadecimal digits",
            Malformation::MissingSeparator => "the tag is not followed by '='",
            Malformation::NoAddress => "no local@domain address follows the tag",
            Malformation::ControlCharacter => "the address contains a control character",
            Malformation::TooLong => "the address is longer than 254 octets",
        })
    }
}

/// Why an address could not be verified: every outcome of section 6 except `valid`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum VerifyError {
    /// No `prvs=` tag.
    Untagged,
    /// Starts like a tag but is not one; says what is wrong.
    Malformed(Malformation),
    /// The tag's key number (0-9) is not in the keyring.
    UnknownKey(u8),
    /// The MAC does not match.
    BadSignature,
    /// The MAC matches, but the tag expired (or is dated too far in the future).
    Expired,
}

impl VerifyError {
    /// The outcome word this error stands for.
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
            VerifyError::Untagged => f.write_str("untagged: the address has no prvs= tag"),
            VerifyError::Malformed(m) => write!(f, "malformed: {m}"),
            VerifyError::UnknownKey(k) => write!(f, "unknown-key: key {k} is not in the keyring"),
            VerifyError::BadSignature => {
                f.write_str("bad-signature: the tag was not made with this keyring")
            }
            VerifyError::Expired => f.write_str("expired: the tag's day is outside the window"),
        }
    }
}

impl std::error::Error for VerifyError {}

/// What is wrong with an address given to `sign`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum AddressProblem {
    /// No `@`: an unqualified address is an error, not a guess.
    NoAt,
    /// Nothing before the `@`.
    EmptyLocalPart,
    /// Nothing after the `@`.
    EmptyDomain,
    /// An ASCII control character (NUL, CR, LF, ...) in the address.
    ControlCharacter,
    /// A `<` or `>` outside a quoted local part: the address was given as SMTP writes a path
    /// (`<user@example.com>`). Sign the address inside the brackets; `<>` alone is the null
    /// sender and comes back unchanged.
    AngleBrackets,
    /// A space or other whitespace outside a quoted local part (`" user@example.com"`,
    /// `us er@example.com`). `"john doe"@example.com` is a quoted local part and signs.
    Whitespace,
    /// The address, or its signed form, is over 254 octets; send it untagged.
    TooLong {
        /// The length of the address as given.
        len: usize,
    },
}

impl fmt::Display for AddressProblem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AddressProblem::NoAt => f.write_str("not an address: no '@' (unqualified addresses are not signed)"),
            AddressProblem::EmptyLocalPart => f.write_str("not an address: the local part before '@' is empty"),
            AddressProblem::EmptyDomain => f.write_str("not an address: the domain after '@' is empty"),
            AddressProblem::ControlCharacter => {
                f.write_str("not an address: it contains a control character")
            }
            AddressProblem::AngleBrackets => f.write_str(
                "not an address: it contains '<' or '>'; remove the angle brackets and sign the address inside <...>",
            ),
            AddressProblem::Whitespace => f.write_str(
                "not an address: it contains a space or other whitespace outside a quoted local part",
            ),
            AddressProblem::TooLong { len } => write!(
                f,
                "too long: the address is {len} octets and its signed form would exceed 254"
            ),
        }
    }
}

/// Why `sign` did not produce a signed address.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignError {
    /// The address cannot be signed; says why.
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
            SignError::Address(p) => p.fmt(f),
            SignError::BufferTooSmall { needed } => {
                write!(f, "buffer too small: {needed} octets needed")
            }
        }
    }
}

impl std::error::Error for SignError {}

impl From<AddressProblem> for SignError {
    fn from(p: AddressProblem) -> Self {
        SignError::Address(p)
    }
}
