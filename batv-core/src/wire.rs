//! The `prvs=` wire format (docs/scheme.md, "Wire format"), and the wild shapes `strip` removes.

use crate::error::AddressProblem;
use core::fmt;

/// Longest address, tagged or not (RFC 5321's path limit less the angle brackets).
pub const MAX_ADDRESS_LEN: usize = 254;

/// Octets a tag adds to an address: `prvs=` + 10 tag characters + `=`.
pub(crate) const TAG_OVERHEAD: usize = 16;

/// The original address inside a tagged one, as two borrowed pieces: the quoted form and the
/// old form (`prvs=local/…@domain`) hold the tag inside the address.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Original<'a> {
    head: &'a str,
    tail: &'a str,
}

impl<'a> Original<'a> {
    pub(crate) fn whole(address: &'a str) -> Self {
        Original { head: "", tail: address }
    }

    /// The pieces, in order; concatenated they are the address.
    pub fn pieces(&self) -> [&'a str; 2] {
        [self.head, self.tail]
    }

    /// Length of the address in octets.
    pub fn len(&self) -> usize {
        self.head.len() + self.tail.len()
    }

    /// Whether the address is empty (never true for a parsed tag).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The address as one slice of the input, when it is one piece.
    pub fn as_contiguous(&self) -> Option<&'a str> {
        self.head.is_empty().then_some(self.tail)
    }

    /// Copies the address into `out`: its length, or `Err(needed)`. Never allocates.
    pub fn copy_to(&self, out: &mut [u8]) -> Result<usize, usize> {
        let n = self.len();
        let dst = out.get_mut(..n).ok_or(n)?;
        let (a, b) = dst.split_at_mut(self.head.len());
        a.copy_from_slice(self.head.as_bytes());
        b.copy_from_slice(self.tail.as_bytes());
        Ok(n)
    }

    /// The octet offset where the domain starts (after the last `@`).
    pub(crate) fn domain_start(&self) -> usize {
        match last_at(self.tail) {
            Some(i) => self.head.len() + i + 1,
            None => last_at(self.head).map_or(self.len(), |i| i + 1),
        }
    }
}

impl fmt::Display for Original<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.head)?;
        f.write_str(self.tail)
    }
}

impl fmt::Debug for Original<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Original({:?})", format_args!("{self}"))
    }
}

impl From<Original<'_>> for String {
    fn from(o: Original<'_>) -> String {
        [o.head, o.tail].concat()
    }
}

/// A well-formed tag, parsed but not verified.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    /// `K DDD` as the four ASCII digits of the tag: the start of the MAC input.
    kddd: [u8; 4],
    mac: [u8; 3],
    /// The address the tag protects.
    pub original: Original<'a>,
}

impl Tag<'_> {
    /// The key number `K`, 0 to 9.
    pub fn key_number(&self) -> u8 {
        self.kddd[0] - b'0'
    }

    /// The day stamp `DDD`, 0 to 999.
    pub fn day_stamp(&self) -> u16 {
        self.kddd[1..].iter().fold(0, |n, d| n * 10 + u16::from(d - b'0'))
    }

    /// The three MAC octets from the hex `SSSSSS` (either case).
    pub fn mac(&self) -> [u8; 3] {
        self.mac
    }

    pub(crate) fn kddd(&self) -> &[u8; 4] {
        &self.kddd
    }
}

impl fmt::Debug for Tag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tag")
            .field("key_number", &self.key_number())
            .field("day_stamp", &self.day_stamp())
            .field("mac", &self.mac)
            .field("original", &self.original)
            .finish()
    }
}

/// The offset of the last `@`.
pub(crate) fn last_at(s: &str) -> Option<usize> {
    s.bytes().rposition(|b| b == b'@')
}

/// Whether the octets start like a tag: `prvs=` in any case, optionally after a `"`.
pub(crate) fn starts_like_tag(address: &[u8]) -> bool {
    let b = address.strip_prefix(b"\"").unwrap_or(address);
    b.get(..5).is_some_and(|p| p.eq_ignore_ascii_case(b"prvs="))
}

/// Parses an address that starts like a tag, in either wire form, as `address::admit` passed it:
/// text of at most 254 octets, any quoted local part closed just before the `@`.
pub(crate) fn parse(address: &str) -> Result<Tag<'_>, AddressProblem> {
    let quoted = address.starts_with('"');
    let after = &address[usize::from(quoted) + 5..];
    let b = after.as_bytes();

    // New form: prvs=KDDDSSSSSS=original (its ten characters must be a tag: otherwise the
    // `=` may belong to an old form's local part).
    if let (Some(b'='), Ok((kddd, mac))) = (b.get(10), parse_fields(b.get(..10).unwrap_or(b))) {
        let rest = &after[11..];
        let original = Original { head: if quoted { "\"" } else { "" }, tail: rest };
        // `"x"`: a quoted local part needs something between its quotes.
        let min_local = if quoted { 3 } else { 1 };
        return check_original(original, min_local).map(|()| Tag { kddd, mac, original });
    }
    // Old form (Exim before 4.68): prvs=local/KDDDSSSSSS@domain
    if let (false, Some(at)) = (quoted, last_at(after)) {
        if at >= 11 && b[at - 11] == b'/' {
            let (kddd, mac) = parse_fields(&b[at - 10..at])?;
            let original = Original { head: &after[..at - 11], tail: &after[at..] };
            return check_original(original, 1).map(|()| Tag { kddd, mac, original });
        }
    }
    // Neither form: name the first part that is wrong.
    parse_fields(b.get(..10).unwrap_or(b)).and(Err(AddressProblem::MissingSeparator))
}

/// The ten characters `KDDDSSSSSS`, naming the first one that is wrong.
fn parse_fields(f: &[u8]) -> Result<([u8; 4], [u8; 3]), AddressProblem> {
    let digit = |i: usize, problem| match f.get(i) {
        Some(c) if c.is_ascii_digit() => Ok(*c),
        _ => Err(problem),
    };
    let key = digit(0, AddressProblem::BadKeyNumber)?;
    let day = [1, 2, 3].map(|i| digit(i, AddressProblem::BadDayStamp));
    let kddd = [key, day[0]?, day[1]?, day[2]?];
    let hex = |i: usize| f.get(i).and_then(|&c| char::from(c).to_digit(16)).ok_or(AddressProblem::BadHex);
    let mut mac = [0u8; 3];
    for (i, octet) in mac.iter_mut().enumerate() {
        *octet = (hex(4 + 2 * i)? << 4 | hex(5 + 2 * i)?) as u8;
    }
    Ok((kddd, mac))
}

/// Both the local part and the domain of the original address must be non-empty.
fn check_original(o: Original<'_>, min_local: usize) -> Result<(), AddressProblem> {
    let d = o.domain_start();
    if d > min_local && d < o.len() {
        Ok(())
    } else {
        Err(AddressProblem::NoAddress)
    }
}

/// Writes `address` (checked by the caller) signed with `K DDD` and `mac` into `out`: its
/// length, or `Err(needed)`.
pub(crate) fn write_signed(
    address: &str,
    kddd: &[u8; 4],
    mac: [u8; 3],
    out: &mut [u8],
) -> Result<usize, usize> {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let a = address.as_bytes();
    let n = a.len() + TAG_OVERHEAD;
    let out = out.get_mut(..n).ok_or(n)?;
    // A quoted local part keeps the tag inside the quotes.
    let lead = usize::from(a.first() == Some(&b'"'));
    out[..lead].copy_from_slice(&a[..lead]);
    let (tag, rest) = out[lead..].split_at_mut(TAG_OVERHEAD);
    tag[..5].copy_from_slice(b"prvs=");
    tag[5..9].copy_from_slice(kddd);
    for (i, b) in mac.into_iter().enumerate() {
        tag[9 + 2 * i] = HEX[usize::from(b >> 4)];
        tag[10 + 2 * i] = HEX[usize::from(b & 15)];
    }
    tag[15] = b'=';
    rest.copy_from_slice(&a[lead..]);
    Ok(n)
}

/// Other tags seen in real mail: `prefix`, 6 to 16 letters and digits, `suffix`, the address.
const WILD_TAGS: [(&str, &str); 3] = [("prvs=", "="), ("msprvs1=", "="), ("btv1==", "==")];

/// The address behind a wild tag (docs/scheme.md, "Strip"): IronPort's 9-character `prvs=`,
/// Microsoft's `msprvs1=`, Barracuda's `btv1==`. Never verified.
pub(crate) fn strip_wild(address: &str) -> Option<&str> {
    WILD_TAGS.iter().find_map(|(prefix, suffix)| {
        let head = address.get(..prefix.len())?;
        if !head.eq_ignore_ascii_case(prefix) {
            return None;
        }
        let rest = &address[prefix.len()..];
        let len = rest.bytes().take_while(u8::is_ascii_alphanumeric).count();
        let original = rest[len..].strip_prefix(suffix)?;
        let at = last_at(original)?;
        ((6..=16).contains(&len) && at > 0 && at + 1 < original.len()).then_some(original)
    })
}
