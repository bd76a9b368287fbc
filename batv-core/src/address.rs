//! Admission (docs/scheme.md): what raw octets are; every entry point of the core starts here.

use crate::error::AddressProblem;
use crate::wire::{self, Tag, MAX_ADDRESS_LEN};

/// What an address is, before any key is used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Admission<'a> {
    /// The null sender of a bounce: empty, `<>`, or `"<>"`.
    Null,
    /// An address without a tag (qualified or not: `postmaster` is one).
    Untagged(&'a str),
    /// A well-formed tag, not yet verified.
    Tagged(Tag<'a>),
    /// Not an address, or a tag that is not one.
    Malformed(AddressProblem),
}

/// Classifies the octets of one address (without SMTP's angle brackets; see [`unbracket`]).
///
/// ```
/// use batv_core::{admit, Admission, AddressProblem};
/// assert_eq!(admit(b"<>"), Admission::Null);
/// assert_eq!(admit(b"user@example.com"), Admission::Untagged("user@example.com"));
/// assert!(matches!(admit(b"prvs=1790c1c5ba=user@example.com"), Admission::Tagged(_)));
/// assert_eq!(admit(b"us\xffer@example.com"), Admission::Malformed(AddressProblem::NotUtf8));
/// ```
pub fn admit(raw: &[u8]) -> Admission<'_> {
    match admit_text(raw) {
        Ok(None) => Admission::Null,
        Ok(Some(text)) if wire::starts_like_tag(raw) => match wire::parse(text) {
            Ok(tag) => Admission::Tagged(tag),
            Err(p) => Admission::Malformed(p),
        },
        Ok(Some(text)) => Admission::Untagged(text),
        Err(p) => Admission::Malformed(p),
    }
}

/// The checks every address passes before its tag is looked at: `None` for the null sender.
fn admit_text(raw: &[u8]) -> Result<Option<&str>, AddressProblem> {
    if matches!(raw, b"" | b"<>" | b"\"<>\"") {
        return Ok(None);
    }
    // One pass finds whether anything needs a closer look. A control character is named first:
    // it can break a log line or a protocol a face prints the address into.
    let unusual = raw.iter().fold(false, |u, &b| u | matches!(b, 0..=0x20 | 0x7f.. | b'<' | b'>'));
    if unusual && raw.iter().any(|&b| b < 0x20 || b == 0x7f) {
        return Err(AddressProblem::ControlCharacter);
    }
    if raw.len() > MAX_ADDRESS_LEN {
        return Err(AddressProblem::TooLong { len: raw.len() });
    }
    let text = std::str::from_utf8(raw).map_err(|_| AddressProblem::NotUtf8)?;
    // A local part that opens a quote is one quoted string, closed before the `@`.
    let quoted_until = match raw.first() {
        Some(b'"') => {
            let at = wire::last_at(text).unwrap_or(text.len());
            if quoted_string_len(&raw[..at]) != Some(at) {
                return Err(AddressProblem::QuotedLocalPart);
            }
            Some(at)
        }
        _ => None,
    };
    if unusual {
        // `<`, `>` and whitespace (Unicode's too) are allowed only inside a quoted local part.
        let outside = &text[quoted_until.unwrap_or(0)..];
        if outside.bytes().any(|c| c == b'<' || c == b'>') {
            return Err(AddressProblem::AngleBrackets);
        }
        if outside.chars().any(char::is_whitespace) {
            return Err(AddressProblem::Whitespace);
        }
    }
    Ok(Some(text))
}

/// The length of the quoted string (`"`, octets where `\` escapes the next, the first
/// unescaped `"`) that starts `b`, if it is complete.
fn quoted_string_len(b: &[u8]) -> Option<usize> {
    if b.first() != Some(&b'"') {
        return None;
    }
    let mut i = 1;
    while let Some(&c) = b.get(i) {
        match c {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// The address inside an SMTP path as an MTA writes it (a milter's arguments): `<a@b>` gives
/// `a@b`, `<>` the empty null sender, and a source route is dropped; the rest is as it was.
pub fn unbracket(raw: &[u8]) -> &[u8] {
    let [b'<', inner @ .., b'>'] = raw else { return raw };
    match inner {
        [b'@', route @ ..] => route.iter().position(|&b| b == b':').map_or(inner, |c| &route[c + 1..]),
        _ => inner,
    }
}

/// Checks that an untagged address can be signed: qualified, and short enough once tagged.
pub(crate) fn check_signable(text: &str) -> Result<(), AddressProblem> {
    let at = wire::last_at(text).ok_or(AddressProblem::NoAt)?;
    // A quoted local part needs something between its quotes (`"x"`) to parse back.
    let local = &text.as_bytes()[..at];
    if local.is_empty() || (local[0] == b'"' && local.len() < 3) {
        return Err(AddressProblem::EmptyLocalPart);
    }
    if at + 1 == text.len() {
        return Err(AddressProblem::EmptyDomain);
    }
    if text.len() + wire::TAG_OVERHEAD > MAX_ADDRESS_LEN {
        return Err(AddressProblem::TooLongToSign { len: text.len() });
    }
    Ok(())
}
