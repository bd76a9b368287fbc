//! The `prvs=` wire format (SPEC section 2): recognising, parsing and writing tags.
//!
//! Parsing never allocates: a parsed [`Tag`] borrows its pieces from the input.

use crate::error::{AddressProblem, Malformation};
use core::fmt;

/// Longest address, tagged or not, that is accepted anywhere (RFC 5321 path limit less `<>`).
pub const MAX_ADDRESS_LEN: usize = 254;

/// Octets a tag adds to an address: `prvs=` + 10 tag characters + `=`.
pub const TAG_OVERHEAD: usize = 16;

const PREFIX: &[u8; 5] = b"prvs=";

/// The original (untagged) address inside a tagged one, as at most two borrowed pieces.
///
/// The new form `prvs=…=local@domain` gives one piece. The quoted form
/// `"prvs=…=john doe"@example.com` and the old form `prvs=local/…@domain` give two, because
/// the tag sits inside the address. Nothing is copied until the caller asks.
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

    /// The address as one string slice, when it is one piece of the input (no copy).
    pub fn as_contiguous(&self) -> Option<&'a str> {
        if self.head.is_empty() {
            Some(self.tail)
        } else {
            None
        }
    }

    /// Copies the address into `out` and returns its length, or `Err(needed)` when `out` is
    /// too small. Never allocates.
    pub fn copy_to(&self, out: &mut [u8]) -> Result<usize, usize> {
        let n = self.len();
        let dst = out.get_mut(..n).ok_or(n)?;
        let (a, b) = dst.split_at_mut(self.head.len());
        a.copy_from_slice(self.head.as_bytes());
        b.copy_from_slice(self.tail.as_bytes());
        Ok(n)
    }

    /// The byte at the position of the last `@`, which separates local part from domain.
    pub(crate) fn domain_start(&self) -> Option<usize> {
        match self.tail.as_bytes().iter().rposition(|&b| b == b'@') {
            Some(i) => Some(self.head.len() + i + 1),
            None => self.head.as_bytes().iter().rposition(|&b| b == b'@').map(|i| i + 1),
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
        let mut s = String::with_capacity(o.len());
        s.push_str(o.head);
        s.push_str(o.tail);
        s
    }
}

/// A syntactically valid tag, parsed but not verified.
///
/// The fields `K`, `DDD` and the MAC are kept packed in one word and read through methods:
/// written field by field and copied as a struct, they were read back in wider pieces than
/// they were written, a store-forwarding stall in every verification (issue 6, measured).
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Tag<'a> {
    /// `K DDD` as four ASCII digits (low 32 bits, first character lowest) and the three MAC
    /// octets (bits 32..56, first octet highest).
    fields: u64,
    /// The address the tag protects.
    pub original: Original<'a>,
}

impl Tag<'_> {
    /// The key number `K`, 0 to 9.
    pub fn key_number(&self) -> u8 {
        (self.fields as u8).wrapping_sub(b'0')
    }

    /// The day stamp `DDD`, 0 to 999.
    pub fn day_stamp(&self) -> u16 {
        let [_, d1, d2, d3] = self.kddd().map(|c| u16::from(c.wrapping_sub(b'0')));
        d1 * 100 + d2 * 10 + d3
    }

    /// The three MAC octets decoded from the hex `SSSSSS` (either case).
    pub fn mac(&self) -> [u8; 3] {
        let [_, a, b, c] = self.mac24().to_be_bytes();
        [a, b, c]
    }

    /// The MAC as a 24-bit number.
    pub(crate) fn mac24(&self) -> u32 {
        (self.fields >> 32) as u32
    }

    /// The four ASCII characters `K` `DDD` that start the MAC input.
    pub(crate) fn kddd(&self) -> [u8; 4] {
        (self.fields as u32).to_le_bytes()
    }
}

impl fmt::Debug for Tag<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tag")
            .field("key_number", &self.key_number())
            .field("day_stamp", &self.day_stamp())
            .field("mac", &self.mac())
            .field("original", &self.original)
            .finish()
    }
}

/// Whether `address` starts like a tag (`prvs=`, any case, optionally after a `"`).
///
/// This is the cheap test that separates `untagged` from everything else.
#[inline]
pub fn starts_like_tag(address: &str) -> bool {
    let b = address.as_bytes();
    let b = b.strip_prefix(b"\"").unwrap_or(b);
    // `prvs` in any case as one 32-bit compare: setting bit 5 maps exactly `P`/`p`, `R`/`r`,
    // `V`/`v` and `S`/`s` (and nothing else) onto the lower-case letter; `=` compares as it is.
    // A byte-wise case-insensitive compare cost more than the rest of an untagged verify.
    match b.get(..PREFIX.len()) {
        Some(&[p, r, v, s, eq]) => {
            u32::from_le_bytes([p, r, v, s]) | 0x2020_2020 == u32::from_le_bytes(*b"prvs") && eq == b'='
        }
        _ => false,
    }
}

/// Parses a tagged address.
///
/// Returns `Ok(None)` when the address does not start like a tag (`untagged`), `Ok(Some)` for
/// either wire form of SPEC section 2, and `Err` with the reason when it starts like a tag but
/// is not one (`malformed`).
// Always inlined: returned through memory, the `Tag` is written in small pieces and read back
// in wide ones, a store-forwarding stall that cost more than the rest of the parse.
#[inline(always)]
pub fn parse(address: &str) -> Result<Option<Tag<'_>>, Malformation> {
    if !starts_like_tag(address) {
        return Ok(None);
    }
    if address.len() > MAX_ADDRESS_LEN {
        return Err(Malformation::TooLong);
    }
    let quoted = address.starts_with('"');
    let after = &address[usize::from(quoted) + PREFIX.len()..];
    let ab = after.as_bytes();

    // New form: prvs=KDDDSSSSSS=original
    if ab.len() >= 11 && ab[10] == b'=' {
        let fields = parse_ten(&ab[..10])?;
        let rest = &after[11..];
        let original = if quoted {
            Original { head: "\"", tail: rest }
        } else {
            Original::whole(rest)
        };
        check_original(&original)?;
        return Ok(Some(Tag { fields, original }));
    }

    // Old form (Exim before 4.68): prvs=local/KDDDSSSSSS@domain
    if !quoted {
        if let Some(at) = ab.iter().rposition(|&b| b == b'@') {
            let local = &ab[..at];
            if local.len() >= 11 && local[local.len() - 11] == b'/' {
                let fields = parse_ten(&local[local.len() - 10..])?;
                let original = Original { head: &after[..local.len() - 11], tail: &after[at..] };
                check_original(&original)?;
                return Ok(Some(Tag { fields, original }));
            }
        }
    }

    // Starts like a tag but fits neither form: name the first part that is wrong.
    Err(match parse_fields(ab.get(..10).unwrap_or(ab)) {
        Err(e) => e,
        Ok(_) => Malformation::MissingSeparator,
    })
}

/// `K DDD` and the MAC, packed as in [`Tag`].
type Fields = u64;

/// Packs `K DDD` (ASCII) and the three MAC octets as in [`Tag`].
#[inline(always)]
fn pack(kddd: [u8; 4], mac: [u8; 3]) -> Fields {
    u64::from(u32::from_le_bytes(kddd)) | u64::from(u32::from_be_bytes([0, mac[0], mac[1], mac[2]])) << 32
}

/// Parses the ten characters `KDDDSSSSSS` of a tag: a branch-light fast path for well-formed
/// fields (the hot path of every verification), and [`parse_fields`] to name what is wrong.
// Always inlined: returned through memory, the fields were written in small pieces and read
// back in wider ones, a store-forwarding stall in every verification (perf, issue 6).
#[inline(always)]
fn parse_ten(f: &[u8]) -> Result<Fields, Malformation> {
    let Ok(&[k, d1, d2, d3, s0, s1, s2, s3, s4, s5]) = <&[u8; 10]>::try_from(f) else {
        return parse_fields(f);
    };
    let digit = |c: u8| c.wrapping_sub(b'0');
    let hex = |c: u8| HEX_VALUE[usize::from(c)];
    let (key, d) = (digit(k), [digit(d1), digit(d2), digit(d3)]);
    let h = [hex(s0), hex(s1), hex(s2), hex(s3), hex(s4), hex(s5)];
    // Every invalid character maps to a value of 16 or more (0xff in the table).
    if (key < 10) & (d[0] < 10) & (d[1] < 10) & (d[2] < 10) & (h.iter().fold(0, |a, &v| a | v) < 16) {
        let mac = h.iter().fold(0u64, |m, &v| m << 4 | u64::from(v));
        Ok(u64::from(u32::from_le_bytes([k, d1, d2, d3])) | mac << 32)
    } else {
        parse_fields(f)
    }
}

/// The value of each hex digit (either case); 0xff for every other byte.
const HEX_VALUE: [u8; 256] = {
    let mut t = [0xffu8; 256];
    let mut i = 0;
    while i < 10 {
        t[b'0' as usize + i] = i as u8;
        i += 1;
    }
    let mut i = 0;
    while i < 6 {
        t[b'a' as usize + i] = 10 + i as u8;
        t[b'A' as usize + i] = 10 + i as u8;
        i += 1;
    }
    t
};

/// Parses the ten characters `KDDDSSSSSS`, naming the first one that is wrong.
#[cold]
fn parse_fields(f: &[u8]) -> Result<Fields, Malformation> {
    let digit = |i: usize| match f.get(i) {
        Some(c @ b'0'..=b'9') => Ok(c - b'0'),
        _ => Err(if i == 0 { Malformation::BadKeyNumber } else { Malformation::BadDayStamp }),
    };
    for i in 0..4 {
        digit(i)?;
    }
    let mut mac = [0u8; 3];
    for (i, byte) in mac.iter_mut().enumerate() {
        let hi = hex_value(f.get(4 + 2 * i).copied()).ok_or(Malformation::BadHex)?;
        let lo = hex_value(f.get(5 + 2 * i).copied()).ok_or(Malformation::BadHex)?;
        *byte = hi << 4 | lo;
    }
    Ok(pack([f[0], f[1], f[2], f[3]], mac))
}

fn hex_value(c: Option<u8>) -> Option<u8> {
    match c? {
        c @ b'0'..=b'9' => Some(c - b'0'),
        c @ b'a'..=b'f' => Some(c - b'a' + 10),
        c @ b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

#[inline(always)]
fn check_original(o: &Original<'_>) -> Result<(), Malformation> {
    // The new form's head is empty or the opening quote: nothing to scan.
    let head = match o.head {
        "" | "\"" => Scan { forbidden: false, last_at: None, unusual: false },
        h => scan(h.as_bytes()),
    };
    let tail = scan(o.tail.as_bytes());
    if head.forbidden | tail.forbidden {
        return Err(Malformation::ControlCharacter);
    }
    // The local part (before the last `@`) and the domain must both be non-empty; a quoted
    // local part needs something between its quotes.
    let min_local = if o.head == "\"" { 3 } else { 1 };
    let domain_start = match tail.last_at {
        Some(i) => Some(o.head.len() + i + 1),
        None => head.last_at.map(|i| i + 1),
    };
    match domain_start {
        Some(d) if d > min_local && d < o.len() => Ok(()),
        _ => Err(Malformation::NoAddress),
    }
}

/// Bytes that never appear in an address we sign or accept: ASCII control characters.
pub(crate) fn is_forbidden(b: u8) -> bool {
    b < 0x20 || b == 0x7f
}

/// What one pass over an address finds: whether a byte is forbidden ([`is_forbidden`]), where
/// the last `@` is, and (signing only) whether a byte is [`is_unusual`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Scan {
    forbidden: bool,
    last_at: Option<usize>,
    /// Looked for by [`scan_to_sign`] only; [`scan`] leaves it false.
    unusual: bool,
}

/// Bytes that are fine in some places of an address and wrong in others, so signing looks
/// closer when one occurs: a space, `<` and `>` (RFC 5321 allows them only inside a quoted
/// local part), and every non-ASCII byte (it may start Unicode whitespace).
fn is_unusual(b: u8) -> bool {
    matches!(b, b' ' | b'<' | b'>') || b >= 0x80
}

/// The parser's scan: `forbidden` and `last_at`. It does not look for unusual bytes, so
/// verification pays nothing for what only signing needs.
#[inline]
fn scan(b: &[u8]) -> Scan {
    scan_words::<false>(b)
}

/// The signer's scan: [`scan`], and `unusual` in the same pass.
#[inline]
fn scan_to_sign(b: &[u8]) -> Scan {
    scan_words::<true>(b)
}

/// Scans eight bytes at a time: this runs on every address signed or verified, and the byte
/// loops it replaces cost more than the rest of the parse (issue 6, measured).
///
/// With `SIGN`, the words are tested for the union of forbidden and unusual bytes only, which
/// costs less per word than telling them apart; the rare address that has one (non-ASCII, a
/// space, `<`, `>`, a control character) is then looked at byte by byte.
#[inline]
fn scan_words<const SIGN: bool>(b: &[u8]) -> Scan {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;
    let exact = |b: &[u8]| Scan {
        forbidden: b.iter().any(|&c| is_forbidden(c)),
        last_at: b.iter().rposition(|&c| c == b'@'),
        unusual: SIGN && b.iter().any(|&c| is_unusual(c)),
    };
    if b.len() < 8 {
        return exact(b);
    }
    // 16 octets at a time where the target has SSE2 (see wide.rs), the same tests.
    if let Some((flagged, last_at)) = crate::wide::scan::<SIGN>(b) {
        if SIGN && flagged {
            return Scan { last_at, ..exact(b) };
        }
        return Scan { forbidden: flagged, last_at, unusual: false };
    }
    // Per word: exact "some byte is below 0x20" and "some byte is 0x7f" tests (the
    // bit-twiddling `hasless` and `haszero`; bytes of 0x80 and above trigger neither), and the
    // exact high bit of every byte equal to `@` (no carry crosses a byte). For signing instead
    // of the first two: "some byte is below 0x21" (controls and space), "some byte is 0x7f or
    // above" (adding 1 sets the high bit of exactly those; only 0xff carries, and it is one),
    // and `haszero` for `<` or `>` at once (setting bit 1 maps exactly those two onto `>`).
    // As "some byte" tests all of these are exact, and `& HIGH` waits until the end.
    let word = |x: u64| {
        let flags = if SIGN {
            let below_bang = x.wrapping_sub(ONES * 0x21) & !x;
            let del_or_high = x.wrapping_add(ONES) | x;
            let z = (x | (ONES * 0x02)) ^ (ONES * u64::from(b'>'));
            let angle = z.wrapping_sub(ONES) & !z;
            below_bang | del_or_high | angle
        } else {
            let below_space = x.wrapping_sub(ONES * 0x20) & !x;
            let y = x ^ (ONES * 0x7f);
            let del = y.wrapping_sub(ONES) & !y;
            below_space | del
        };
        let a = x ^ (ONES * u64::from(b'@'));
        let at = !(((a & LOW7) + LOW7) | a) & HIGH;
        (flags, at)
    };
    let mut flags = 0;
    let mut last_at = None;
    let mut visit = |i: usize| {
        if let Some(w) = b.get(i..i + 8).and_then(|w| <[u8; 8]>::try_from(w).ok()) {
            let (f, at) = word(u64::from_le_bytes(w));
            flags |= f;
            if at != 0 {
                last_at = Some(i + (63 - at.leading_zeros() as usize) / 8);
            }
        }
    };
    // Whole words, then the last eight bytes, overlapping the last whole word: a byte seen
    // twice changes nothing, and positions only grow.
    for k in 0..b.len() / 8 {
        visit(8 * k);
    }
    visit(b.len() - 8);
    let flagged = flags & HIGH != 0;
    if SIGN && flagged {
        return Scan { last_at, ..exact(b) };
    }
    Scan { forbidden: flagged, last_at, unusual: false }
}

/// Checks that `address` is a qualified address that can be signed.
pub(crate) fn check_signable(address: &str) -> Result<(), AddressProblem> {
    /// A `<`, `>` or whitespace outside a quoted local part: RFC 5321 allows a space (and `<`,
    /// `>`) in a local part only inside a Quoted-string, and in a domain nowhere. Unicode
    /// whitespace counts too (RFC 6531 would allow it in an unquoted local part, but there it is a
    /// copy-and-paste accident, not an address). Angle brackets are named first: removing them is
    /// the fix for `<user@example.com>`.
    #[cold]
    fn outside_quotes_problem(address: &str, last_at: Option<usize>) -> Option<AddressProblem> {
        let local_is_quoted =
            |at: usize| quoted_string_len(&address.as_bytes()[..at]) == Some(at);
        // `at` is the index of an ASCII `@`, so a character boundary.
        let outside = match last_at {
            Some(at) if local_is_quoted(at) => &address[at..],
            _ => address,
        };
        if outside.bytes().any(|c| c == b'<' || c == b'>') {
            return Some(AddressProblem::AngleBrackets);
        }
        if outside.chars().any(char::is_whitespace) {
            return Some(AddressProblem::Whitespace);
        }
        None
    }

    /// The length of the RFC 5321 Quoted-string that starts `b` (`"`, then octets where `\`
    /// escapes the next one, then the first unescaped `"`), or `None` when `b` does not start with
    /// a complete one.
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

    let b = address.as_bytes();
    if b.len() > MAX_ADDRESS_LEN {
        return Err(AddressProblem::TooLong { len: b.len() });
    }
    let found = scan_to_sign(b);
    if found.forbidden {
        return Err(AddressProblem::ControlCharacter);
    }
    // The same pass told whether a closer look is needed at all; plain ASCII addresses skip it.
    if found.unusual {
        if let Some(problem) = outside_quotes_problem(address, found.last_at) {
            return Err(problem);
        }
    }
    let at = found.last_at.ok_or(AddressProblem::NoAt)?;
    let local = &b[..at];
    // A local part that opens a quote needs two more octets (`"x"`): the verifier (see
    // `check_original`) refuses a shorter one, so a tag on it could never verify.
    if local.is_empty() || (local[0] == b'"' && local.len() < 3) {
        return Err(AddressProblem::EmptyLocalPart);
    }
    if at + 1 == b.len() {
        return Err(AddressProblem::EmptyDomain);
    }
    if b.len() + TAG_OVERHEAD > MAX_ADDRESS_LEN {
        return Err(AddressProblem::TooLong { len: b.len() });
    }
    Ok(())
}

/// The ASCII `K` `DDD` characters for a key number and day stamp.
// Computed as one 32-bit value: built octet by octet in memory and read back as a word (the
// block builder and the tag writer read it whole), it stalled every signature (issue 6).
#[inline]
pub(crate) fn kddd(key_number: u8, day_stamp: u16) -> [u8; 4] {
    let digits = u32::from(key_number)
        | u32::from(day_stamp / 100) << 8
        | u32::from(day_stamp / 10 % 10) << 16
        | u32::from(day_stamp % 10) << 24;
    (digits + u32::from_le_bytes(*b"0000")).to_le_bytes()
}

/// The two lower-case hex digits of every octet, first digit in the low octet.
static HEX_PAIRS: [u16; 256] = {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut t = [0u16; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = DIGITS[i >> 4] as u16 | (DIGITS[i & 15] as u16) << 8;
        i += 1;
    }
    t
};

/// The six lower-case hex digits of the three MAC octets, first digit in the lowest octet.
/// Three independent table loads: this runs after the last compression, where every cycle of
/// latency adds to the signature (a nibble-by-nibble version measured slower, issue 6).
#[inline(always)]
fn hex6(mac: [u8; 3]) -> u64 {
    let pair = |b: u8| u64::from(HEX_PAIRS[usize::from(b)]);
    pair(mac[0]) | pair(mac[1]) << 16 | pair(mac[2]) << 32
}

/// Writing the signed form of an address (the caller has checked it), in two steps so that
/// `sign` can copy the address while the MAC is computed: first the address, where it goes in
/// the signed form (after the tag's 16 octets, which stay unwritten; a quoted local part's
/// opening quote before them). Returns the signed form's length, or `Err(needed)` when `out` is
/// too short; then [`write_tag`].
#[inline(always)]
pub(crate) fn place_address(address: &str, out: &mut [u8]) -> Result<usize, usize> {
    let a = address.as_bytes();
    let n = a.len() + TAG_OVERHEAD;
    let out = out.get_mut(..n).ok_or(n)?;
    // A quoted local part keeps the tag inside the quotes.
    let lead = usize::from(a.first() == Some(&b'"'));
    out[..lead].copy_from_slice(&a[..lead]);
    out[lead + TAG_OVERHEAD..].copy_from_slice(&a[lead..]);
    Ok(n)
}

/// The second step of writing a signed form: the 16 tag octets (`K DDD` and the three MAC
/// octets) into `out`, which [`place_address`] filled for this address and which is exactly as
/// long as the signed form.
#[inline(always)]
pub(crate) fn write_tag(address: &str, kddd: &[u8; 4], mac: [u8; 3], out: &mut [u8]) {
    let lead = usize::from(address.as_bytes().first() == Some(&b'"'));
    // The 16 tag octets `prvs=KDDDSSSSSS=` assembled in registers and written at once: written
    // octet by octet into a buffer and copied from there, they were read back before reaching
    // the cache, a store-forwarding stall that slowed every signature (issue 6, measured).
    let tag = u128::from_le_bytes(*b"prvs=\0\0\0\0\0\0\0\0\0\0=")
        | u128::from(u32::from_le_bytes(*kddd)) << 40
        | u128::from(hex6(mac)) << 72;
    out[lead..lead + TAG_OVERHEAD].copy_from_slice(&tag.to_le_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex6_is_lower_case_hex_for_every_mac() {
        for m in (0u32..1 << 24).step_by(7).chain([0, 0xff_ffff, 0xabcdef, 0x09fa0f]) {
            let [_, a, b, c] = m.to_be_bytes();
            let want = format!("{m:06x}");
            assert_eq!(&hex6([a, b, c]).to_le_bytes()[..6], want.as_bytes(), "{m:06x}");
            assert_eq!(hex6([a, b, c]) >> 48, 0);
        }
    }

    #[test]
    fn new_form() {
        let t = parse("prvs=1790c1c5ba=user@example.com").unwrap().unwrap();
        assert_eq!(t.key_number(), 1);
        assert_eq!(t.day_stamp(), 790);
        assert_eq!(t.mac(), [0xc1, 0xc5, 0xba]);
        assert_eq!(t.original.to_string(), "user@example.com");
        assert_eq!(t.original.as_contiguous(), Some("user@example.com"));
    }

    #[test]
    fn equals_in_local_part_survives() {
        let t = parse("prvs=74759482dc=list=owner@lists.example.org").unwrap().unwrap();
        assert_eq!(t.original.to_string(), "list=owner@lists.example.org");
    }

    #[test]
    fn quoted_form() {
        let t = parse("\"prvs=0790e9e584=john doe\"@example.com").unwrap().unwrap();
        assert_eq!(t.original.to_string(), "\"john doe\"@example.com");
        assert_eq!(t.original.as_contiguous(), None);
    }

    #[test]
    fn old_form() {
        let t = parse("prvs=user/1790c1c5ba@example.com").unwrap().unwrap();
        assert_eq!(t.original.to_string(), "user@example.com");
        assert_eq!(t.kddd(), *b"1790");
    }

    #[test]
    fn upper_case_prefix_and_hex() {
        let t = parse("PRVS=1790C1C5BA=user@example.com").unwrap().unwrap();
        assert_eq!(t.mac(), [0xc1, 0xc5, 0xba]);
    }

    #[test]
    fn malformations_are_named() {
        use Malformation::*;
        let cases: &[(&str, Malformation)] = &[
            ("prvs=", BadKeyNumber),
            ("prvs=1234567890=", NoAddress),
            ("prvs=1234567890=@example.com", NoAddress),
            ("prvs=1234567890=user@", NoAddress),
            ("prvs=x790c1c5ba=user@example.com", BadKeyNumber),
            ("prvs=17x0c1c5ba=user@example.com", BadDayStamp),
            ("prvs=1790c1c5bz=user@example.com", BadHex),
            ("prvs=1790c1c5ba-user@example.com", MissingSeparator),
            ("prvs=user@example.com", BadKeyNumber),
            ("prvs=1790c1c5ba=us\0er@example.com", ControlCharacter),
            ("\"prvs=1790c1c5ba=\"@example.com", NoAddress),
        ];
        for (input, want) in cases {
            assert_eq!(parse(input).err(), Some(*want), "{input:?}");
        }
    }

    #[test]
    fn untagged() {
        for a in ["", "user@example.com", "prv=1@x", "\"", "prvs", "\"john doe\"@example.com"] {
            assert_eq!(parse(a), Ok(None), "{a:?}");
        }
    }

    #[test]
    fn starts_like_tag_is_case_insensitive_prvs_and_nothing_else() {
        // Every byte value in each of the five positions, with and without a leading quote,
        // against the byte-wise definition.
        for quoted in [false, true] {
            for pos in 0..5 {
                for v in 0..=255u8 {
                    for base in [*b"prvs=", *b"PRVS=", *b"pRvS="] {
                        let mut b = base;
                        b[pos] = v;
                        let mut s = if quoted { vec![b'"'] } else { vec![] };
                        s.extend_from_slice(&b);
                        s.extend_from_slice(b"1790c1c5ba=u@x");
                        let Ok(text) = std::str::from_utf8(&s) else { continue };
                        let want = b.eq_ignore_ascii_case(PREFIX);
                        assert_eq!(starts_like_tag(text), want, "{text:?}");
                    }
                }
            }
        }
        assert!(!starts_like_tag("prvs"));
        assert!(!starts_like_tag("\"prvs"));
        assert!(starts_like_tag("\"PrVs="));
    }

    #[test]
    fn scan_is_exact() {
        // Every byte value at every position of every length up to 20 (two words and a
        // tail), and of lengths around the 16-octet windows of the SSE2 scan (wide.rs), among
        // plain, high and `@` bytes, against the byte-at-a-time definitions.
        let naive = |b: &[u8]| Scan {
            forbidden: b.iter().any(|&c| is_forbidden(c)),
            last_at: b.iter().rposition(|&c| c == b'@'),
            unusual: b.iter().any(|&c| c == b' ' || c == b'<' || c == b'>' || !c.is_ascii()),
        };
        let mut checked = 0;
        let lens = (1..=20).chain([31, 32, 33, 47, 48, 49, 64]);
        for len in lens.clone() {
            for pos in 0..len {
                for v in 0..=255u8 {
                    for fill in [b'a', 0xc3, b'@', 0x3f, 0x41] {
                        let mut b = vec![fill; len];
                        b[pos] = v;
                        assert_eq!(scan_to_sign(&b), naive(&b), "{b:?}");
                        assert_eq!(scan(&b), Scan { unusual: false, ..naive(&b) }, "{b:?}");
                        // And an `@` earlier than `pos`, so the last one is what counts.
                        b[pos / 2] = b'@';
                        b[pos] = v;
                        assert_eq!(scan_to_sign(&b), naive(&b), "{b:?}");
                        assert_eq!(scan(&b), Scan { unusual: false, ..naive(&b) }, "{b:?}");
                        checked += 1;
                    }
                }
            }
        }
        assert_eq!(checked, lens.sum::<usize>() * 256 * 5);
        assert_eq!(scan_to_sign(b""), naive(b""));
        assert_eq!(scan(b""), naive(b""));
    }

    #[test]
    fn spaces_and_angle_brackets_only_inside_a_quoted_local_part() {
        use AddressProblem::{AngleBrackets, Whitespace};
        let cases: &[(&str, Result<(), AddressProblem>)] = &[
            ("\"john doe\"@example.com", Ok(())),
            ("\" \"@example.com", Ok(())),
            ("\"<john>\"@example.com", Ok(())),
            ("\"a@b c\"@example.com", Ok(())),
            ("\"a\\\" b\"@example.com", Ok(())), // an escaped quote does not close the string
            ("\"j\u{a0}d\"@example.com", Ok(())),
            ("jos\u{e9}@ex\u{e4}mple.org", Ok(())), // non-ASCII alone is fine
            ("\"a\" \"b\"@example.com", Err(Whitespace)), // two quoted strings, a space between
            ("\"a \\\"@example.com", Err(Whitespace)), // the closing quote is escaped
            ("\"john doe@example.com", Err(Whitespace)),
            ("\"john\" doe@example.com", Err(Whitespace)),
            ("\"john doe\"@exa mple.com", Err(Whitespace)),
            ("\"john doe\" @example.com", Err(Whitespace)),
            ("user@example.com\u{a0}", Err(Whitespace)),
            ("\u{3000}user@example.com", Err(Whitespace)),
            ("us\u{2009}er@example.com", Err(Whitespace)),
            ("\"john doe\"@<example.com>", Err(AngleBrackets)),
            ("us<er@example.com", Err(AngleBrackets)),
            ("user@example.com>", Err(AngleBrackets)),
            ("John Doe <jd@example.com>", Err(AngleBrackets)), // named before the spaces
            ("<user>", Err(AngleBrackets)),                     // named before the missing '@'
            (" user", Err(Whitespace)),
            ("\"a\x01 b\"@example.com", Err(AddressProblem::ControlCharacter)),
        ];
        for (input, want) in cases {
            assert_eq!(check_signable(input), *want, "{input:?}");
        }
        // Every position of the space in a long address (word and tail paths of `scan`).
        let base = "abcdefghijklmnopqrstuvwxyz@example.com";
        for i in 0..=base.len() {
            let a = format!("{} {}", &base[..i], &base[i..]);
            assert_eq!(check_signable(&a), Err(Whitespace), "{a:?}");
            let q = format!("\"{} {}\"{}", &base[..i.min(26)], &base[i.min(26)..26], &base[26..]);
            assert_eq!(check_signable(&q), Ok(()), "{q:?}");
        }
    }

    #[test]
    fn too_long_tagged_is_malformed() {
        let a = format!("prvs=1790c1c5ba={}@example.com", "a".repeat(300));
        assert_eq!(parse(&a).err(), Some(Malformation::TooLong));
    }
}
