//! What the fuzz targets share: the fuzzing keyring, and oracles that recompute batv's answers
//! from docs/scheme.md without batv-core's own admission, wire, MAC and day code, so that a
//! target checks that the library is right and not merely that it does not crash.
//!
//! The oracles work on octets, as every face hands addresses to the core.

use batv_core::{AddressProblem, Keyring, Reason, Scheme, VerifyError};
use hmac::{Hmac, KeyInit, Mac};

/// The keyring every target uses: one key per scheme and encoding, key 1 signs.
pub const KEYRING_TEXT: &str = "\
# the fuzzing keyring
lifetime-days 7
skew-days 1
sign-key 1
key 1 hmac-sha256 text:fuzz key one, sha256
key 0 hmac-sha1 text:fuzz key zero, sha1
key 7 hmac-sha256 hex:000102030405060708090a0b0c0d0e0f
";

/// Secrets of [`KEYRING_TEXT`], by key number, for the oracle.
pub const SECRETS: [(u8, Scheme, &[u8]); 3] = [
    (1, Scheme::HmacSha256, b"fuzz key one, sha256"),
    (0, Scheme::HmacSha1, b"fuzz key zero, sha1"),
    (7, Scheme::HmacSha256, &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15]),
];

/// Lifetime of [`KEYRING_TEXT`].
pub const LIFETIME: i64 = 7;
/// Skew of [`KEYRING_TEXT`].
pub const SKEW: i64 = 1;

/// The reference time of the seed corpora: 2026-11-26 12:53:20 UTC.
pub const NOW: i64 = 1_795_700_000;

/// The fuzzing keyring, parsed once.
pub fn keyring() -> &'static Keyring {
    static RING: std::sync::OnceLock<Keyring> = std::sync::OnceLock::new();
    RING.get_or_init(|| match Keyring::parse(KEYRING_TEXT) {
        Ok(k) => k,
        Err(e) => panic!("the fuzzing keyring does not parse: {e}"),
    })
}

/// The same keys with key 0 (hmac-sha1) signing, to fuzz the Exim-compatible scheme.
pub fn keyring_sha1() -> &'static Keyring {
    static RING: std::sync::OnceLock<Keyring> = std::sync::OnceLock::new();
    RING.get_or_init(|| match Keyring::parse(&KEYRING_TEXT.replace("sign-key 1", "sign-key 0")) {
        Ok(k) => k,
        Err(e) => panic!("the fuzzing keyring does not parse: {e}"),
    })
}

// ---------------------------------------------------------------------------------------------
// Admission and the wire forms (docs/scheme.md, "Admission" and "Wire format"), restated.

/// A tag as the oracle reads it from the octets.
#[derive(Clone, PartialEq, Eq)]
pub struct WantTag {
    /// `K`.
    pub key: u8,
    /// `DDD`.
    pub stamp: u16,
    /// `SSSSSS` as octets.
    pub mac: [u8; 3],
    /// The original address.
    pub original: Vec<u8>,
    /// Which wire form it was written in.
    pub form: Form,
}

impl std::fmt::Debug for WantTag {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{:?} tag {}{:03}{:02x?} of {:?}", self.form, self.key, self.stamp, self.mac, String::from_utf8_lossy(&self.original))
    }
}

/// The three ways a tag is written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Form {
    /// `prvs=KDDDSSSSSS=local@domain`.
    New,
    /// `"prvs=KDDDSSSSSS=local"@domain`.
    Quoted,
    /// `prvs=local/KDDDSSSSSS@domain`.
    Old,
}

/// What admission should say about some octets.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Want {
    /// The null sender.
    Null,
    /// An untagged address.
    Untagged,
    /// A well-formed tag.
    Tagged(WantTag),
    /// Not an address, or a tag that is not one.
    Malformed(AddressProblem),
}

/// Admission, step by step as docs/scheme.md lists it.
pub fn oracle_admit(raw: &[u8]) -> Want {
    use AddressProblem::*;
    if raw.is_empty() || raw == b"<>" || raw == b"\"<>\"" {
        return Want::Null;
    }
    // Step 2 names the first of its reasons, in the order of docs/scheme.md.
    if raw.iter().any(u8::is_ascii_control) {
        return Want::Malformed(ControlCharacter);
    }
    if raw.len() > 254 {
        return Want::Malformed(TooLong { len: raw.len() });
    }
    let Ok(text) = std::str::from_utf8(raw) else { return Want::Malformed(NotUtf8) };
    // The local part is what precedes the last `@` (all of it without one). One that opens a
    // quote must be one quoted string, and then only the rest must be free of `<`, `>` and
    // blanks. The quote is checked before them, as docs/scheme.md's own example of it
    // (`"john doe@example.com`, which has a blank outside any quoted string) requires, though
    // its list names it last.
    let local = text.rsplit_once('@').map_or(text, |(l, _)| l);
    let quoted = text.starts_with('"');
    if quoted && !is_one_quoted_string(local) {
        return Want::Malformed(QuotedLocalPart);
    }
    let free = if quoted { &text[local.len()..] } else { text };
    if free.contains(['<', '>']) {
        return Want::Malformed(AngleBrackets);
    }
    if free.chars().any(char::is_whitespace) {
        return Want::Malformed(Whitespace);
    }
    let body = if quoted { &text[1..] } else { text };
    match body.get(..5) {
        Some(p) if p.eq_ignore_ascii_case("prvs=") => tag_form(quoted, &body[5..]),
        _ => Want::Untagged,
    }
}

/// Whether a problem is one of a tag that is not one (step 3 of admission), as opposed to
/// octets that are not an address at all.
pub fn is_tag_problem(p: AddressProblem) -> bool {
    use AddressProblem::*;
    matches!(p, BadKeyNumber | BadDayStamp | BadHex | MissingSeparator | NoAddress)
}

/// `"`, characters with no unescaped `"` among them (`\` escapes the next one), `"`.
pub fn is_one_quoted_string(s: &str) -> bool {
    let Some(inner) = s.strip_prefix('"').and_then(|r| r.strip_suffix('"')) else { return false };
    let mut escaped = false;
    for c in inner.chars() {
        match (escaped, c) {
            (true, _) => escaped = false,
            (false, '\\') => escaped = true,
            (false, '"') => return false,
            (false, _) => {}
        }
    }
    !escaped
}

/// `t` is what follows `prvs=` (and the opening quote when `quoted`). Ten tag characters and
/// an `=` make the new form; an `=` after ten characters that are not a tag belongs to an old
/// form's local part. Neither form: the first part that is wrong, in the form the input has
/// the shape of.
fn tag_form(quoted: bool, t: &str) -> Want {
    let b = t.as_bytes();
    if b.get(10) == Some(&b'=') {
        if let Ok(f) = fields(&b[..10]) {
            return new_form(quoted, t, f);
        }
    }
    match if quoted { None } else { old_form(t) } {
        Some(Ok(tag)) => Want::Tagged(tag),
        Some(Err(p)) => Want::Malformed(p),
        None => Want::Malformed(fields(b.get(..10).unwrap_or(b)).err().unwrap_or(AddressProblem::MissingSeparator)),
    }
}

/// `KDDDSSSSSS=original`, where the quoted form must keep something between its quotes.
fn new_form(quoted: bool, t: &str, (key, stamp, mac): (u8, u16, [u8; 3])) -> Want {
    let rest = &t[11..];
    let fits = match rest.rsplit_once('@') {
        Some((local, domain)) if quoted => local.len() >= 2 && local.ends_with('"') && !domain.is_empty(),
        Some((local, domain)) => !local.is_empty() && !domain.is_empty(),
        None => false,
    };
    if !fits {
        return Want::Malformed(AddressProblem::NoAddress);
    }
    let original = if quoted { format!("\"{rest}") } else { rest.to_owned() };
    let form = if quoted { Form::Quoted } else { Form::New };
    Want::Tagged(WantTag { key, stamp, mac, original: original.into_bytes(), form })
}

/// `local/KDDDSSSSSS@domain`, if `t` has that shape (a `/` eleven octets before the last `@`).
fn old_form(t: &str) -> Option<Result<WantTag, AddressProblem>> {
    let (front, domain) = t.rsplit_once('@')?;
    let f = front.as_bytes();
    if f.len() < 11 || f[f.len() - 11] != b'/' {
        return None;
    }
    let local = &front[..f.len() - 11];
    Some(fields(&f[f.len() - 10..]).and_then(|(key, stamp, mac)| {
        if local.is_empty() || domain.is_empty() {
            return Err(AddressProblem::NoAddress);
        }
        let original = format!("{local}@{domain}").into_bytes();
        Ok(WantTag { key, stamp, mac, original, form: Form::Old })
    }))
}

/// The ten tag characters, or the first one that is wrong (a missing one is wrong).
fn fields(f: &[u8]) -> Result<(u8, u16, [u8; 3]), AddressProblem> {
    use AddressProblem::*;
    let at = |i: usize| f.get(i).copied().unwrap_or(b' ');
    let digit = |i: usize, p| at(i).is_ascii_digit().then(|| at(i) - b'0').ok_or(p);
    let key = digit(0, BadKeyNumber)?;
    let mut stamp = 0u16;
    for i in 1..4 {
        stamp = stamp * 10 + u16::from(digit(i, BadDayStamp)?);
    }
    let nibble = |i: usize| char::from(at(i)).to_digit(16).map(|d| d as u8).ok_or(BadHex);
    let mut mac = [0u8; 3];
    for (j, m) in mac.iter_mut().enumerate() {
        *m = nibble(4 + 2 * j)? * 16 + nibble(5 + 2 * j)?;
    }
    Ok((key, stamp, mac))
}

/// Checks `batv_core::admit` against [`oracle_admit`] (and the pieces of a tag's original
/// address against the input) and returns the oracle's answer.
pub fn check_admission(raw: &[u8]) -> Want {
    let want = oracle_admit(raw);
    let got = match batv_core::admit(raw) {
        batv_core::Admission::Null => Want::Null,
        batv_core::Admission::Untagged(s) => {
            assert_eq!(s.as_bytes(), raw, "an untagged address is the input");
            Want::Untagged
        }
        batv_core::Admission::Malformed(p) => Want::Malformed(p),
        batv_core::Admission::Tagged(t) => {
            let o = t.original;
            let joined: String = o.pieces().concat();
            assert_eq!(joined.len(), o.len());
            assert!(!o.is_empty());
            assert_eq!(o.to_string(), joined);
            // Only the new form's original is one slice of the input: what follows the tag.
            let form = match o.as_contiguous() {
                Some(s) => {
                    assert_eq!(s.as_bytes(), &raw[16..], "{:?}", String::from_utf8_lossy(raw));
                    Form::New
                }
                None if raw[0] == b'"' => Form::Quoted,
                None => Form::Old,
            };
            Want::Tagged(WantTag {
                key: t.key_number(),
                stamp: t.day_stamp(),
                mac: t.mac(),
                original: joined.into_bytes(),
                form,
            })
        }
    };
    assert_eq!(got, want, "admit({:?})", String::from_utf8_lossy(raw));
    if let Want::Tagged(t) = &want {
        check_written_form(raw, t);
    }
    want
}

/// The input is the tag written in its form, with the hex and `prvs` in any case: 16 octets
/// more than the original.
fn check_written_form(raw: &[u8], t: &WantTag) {
    let fields = format!("{}{:03}{:02x}{:02x}{:02x}", t.key, t.stamp, t.mac[0], t.mac[1], t.mac[2]);
    let o = &t.original;
    let at = o.iter().rposition(|&c| c == b'@').expect("an original has an @");
    let written = match t.form {
        Form::New => [&b"prvs="[..], fields.as_bytes(), b"=", o].concat(),
        Form::Quoted => [&b"\"prvs="[..], fields.as_bytes(), b"=", &o[1..]].concat(),
        Form::Old => [&b"prvs="[..], &o[..at], b"/", fields.as_bytes(), &o[at..]].concat(),
    };
    let show = String::from_utf8_lossy;
    assert!(written.eq_ignore_ascii_case(raw), "{:?} is not {:?}", show(raw), show(&written));
    assert_eq!(raw.len(), o.len() + 16);
}

// ---------------------------------------------------------------------------------------------
// Strip (docs/scheme.md, "Strip"), restated.

/// The original address behind one of the wild tag shapes, if `a` starts with one.
pub fn oracle_wild(a: &[u8]) -> Option<&[u8]> {
    const SHAPES: [(&[u8], &[u8]); 3] = [(b"prvs=", b"="), (b"msprvs1=", b"="), (b"btv1==", b"==")];
    SHAPES.iter().find_map(|&(prefix, suffix)| {
        let head = a.get(..prefix.len()).filter(|h| h.eq_ignore_ascii_case(prefix))?;
        let after = &a[head.len()..];
        let n = after.iter().take_while(|c| c.is_ascii_alphanumeric()).count();
        let original = after[n..].strip_prefix(suffix).filter(|_| (6..=16).contains(&n))?;
        let at = original.iter().rposition(|&c| c == b'@')?;
        (at > 0 && at + 1 < original.len()).then_some(original)
    })
}

/// Tags of both wire forms removed, nested ones too, and the wild shapes from what is an
/// address or starts like a tag; anything else as it is.
pub fn oracle_strip(raw: &[u8]) -> Vec<u8> {
    let mut cur = raw.to_vec();
    loop {
        let next = match oracle_admit(&cur) {
            Want::Tagged(t) => t.original,
            Want::Untagged => match oracle_wild(&cur) {
                Some(o) => o.to_vec(),
                None => return cur,
            },
            Want::Malformed(p) if is_tag_problem(p) => match oracle_wild(&cur) {
                Some(o) => o.to_vec(),
                None => return cur,
            },
            Want::Null | Want::Malformed(_) => return cur,
        };
        assert!(next.len() < cur.len(), "a strip step removes something");
        cur = next;
    }
}

// ---------------------------------------------------------------------------------------------
// MACs (docs/scheme.md, "MAC schemes"), computed with the RustCrypto crates directly.

/// The first three octets of HMAC(secret, kddd || address) under `scheme`.
pub fn oracle_mac(scheme: Scheme, secret: &[u8], kddd: &[u8], address: &[u8]) -> [u8; 3] {
    fn run<M: Mac + KeyInit>(secret: &[u8], kddd: &[u8], address: &[u8]) -> [u8; 3] {
        let mut m = <M as KeyInit>::new_from_slice(secret).expect("HMAC takes any key length");
        m.update(kddd);
        m.update(address);
        let out = m.finalize().into_bytes();
        [out[0], out[1], out[2]]
    }
    match scheme {
        Scheme::HmacSha256 => run::<Hmac<sha2::Sha256>>(secret, kddd, address),
        Scheme::HmacSha1 => run::<Hmac<sha1::Sha1>>(secret, kddd, address),
    }
}

/// The secret and scheme of a key number in the fuzzing keyring.
pub fn oracle_key(number: u8) -> Option<(Scheme, &'static [u8])> {
    SECRETS.iter().find(|(n, _, _)| *n == number).map(|(_, s, k)| (*s, *k))
}

/// `K` and `DDD` as the four ASCII characters that start the MAC input.
pub fn kddd(key: u8, stamp: u16) -> Vec<u8> {
    format!("{key}{stamp:03}").into_bytes()
}

/// The MAC input's address for a scheme: lower-cased (ASCII) for hmac-sha256, as written for
/// hmac-sha1.
pub fn mac_address(scheme: Scheme, address: &[u8]) -> Vec<u8> {
    match scheme {
        Scheme::HmacSha256 => address.to_ascii_lowercase(),
        Scheme::HmacSha1 => address.to_vec(),
    }
}

/// Whether a tag's MAC is right for a key: hmac-sha256 over the lower-cased address;
/// hmac-sha1 over the address as received, with its domain lower-cased, or all lower-cased.
pub fn mac_matches(scheme: Scheme, secret: &[u8], tag: &WantTag) -> bool {
    let k = kddd(tag.key, tag.stamp);
    let o = &tag.original;
    match scheme {
        Scheme::HmacSha256 => oracle_mac(scheme, secret, &k, &o.to_ascii_lowercase()) == tag.mac,
        Scheme::HmacSha1 => {
            let at = o.iter().rposition(|&c| c == b'@').map_or(o.len(), |i| i + 1);
            let domain_lower = [&o[..at], &o[at..].to_ascii_lowercase()].concat();
            [o.clone(), domain_lower, o.to_ascii_lowercase()]
                .iter()
                .any(|a| oracle_mac(scheme, secret, &k, a) == tag.mac)
        }
    }
}

/// What verifying `raw` with the fuzzing keyring should give at `now` (docs/scheme.md,
/// "Outcomes"): the original address, or why not.
pub fn oracle_verify(raw: &[u8], now: i64) -> Result<Vec<u8>, VerifyError> {
    match oracle_admit(raw) {
        Want::Null | Want::Untagged => Err(VerifyError::Untagged),
        Want::Malformed(p) => Err(VerifyError::Malformed(p)),
        Want::Tagged(t) => match oracle_key(t.key) {
            None => Err(VerifyError::UnknownKey(t.key)),
            Some((scheme, secret)) if !mac_matches(scheme, secret, &t) => Err(VerifyError::BadSignature),
            Some(_) if !oracle_in_window(t.stamp, now, LIFETIME, SKEW) => Err(VerifyError::Expired),
            Some(_) => Ok(t.original),
        },
    }
}

// ---------------------------------------------------------------------------------------------
// Days (docs/scheme.md, "Days and expiry"), in 128-bit arithmetic so that they share no
// overflow behaviour with the library's i64 code.

/// UTC days since 1970 for `now`, rounding towards minus infinity.
pub fn oracle_day(now: i64) -> i128 {
    let n = i128::from(now);
    if n >= 0 {
        n / 86_400
    } else {
        -((-n + 86_399) / 86_400)
    }
}

fn mod1000(x: i128) -> i128 {
    let r = x % 1000;
    if r < 0 {
        r + 1000
    } else {
        r
    }
}

/// The `DDD` of a tag signed at `now`.
pub fn oracle_stamp(now: i64, lifetime: i64) -> u16 {
    mod1000(oracle_day(now) + i128::from(lifetime)) as u16
}

/// `(DDD - today mod 1000) mod 1000`.
pub fn oracle_remaining(stamp: u16, now: i64) -> u16 {
    mod1000(i128::from(stamp) - mod1000(oracle_day(now))) as u16
}

/// Whether a tag with this stamp is inside the window at `now`.
pub fn oracle_in_window(stamp: u16, now: i64, lifetime: i64, skew: i64) -> bool {
    i128::from(oracle_remaining(stamp, now)) <= i128::from(lifetime) + i128::from(skew)
}

// ---------------------------------------------------------------------------------------------
// The bounce policy's replies (docs/scheme.md, "Bounce policy").

/// The SMTP reply of a rejecting reason, from the table of docs/scheme.md.
pub fn oracle_reply(r: Reason) -> Option<&'static str> {
    Some(match r {
        Reason::Untagged => "550 5.7.1 Bounce rejected: this address did not send the original message (no BATV tag)",
        Reason::Malformed => "550 5.7.1 Rejected: malformed address or BATV tag",
        Reason::UnknownKey => "550 5.7.1 Bounce rejected: BATV tag signed with an unknown key",
        Reason::BadSignature => "550 5.7.1 Bounce rejected: invalid BATV signature",
        Reason::Expired => "550 5.7.1 Bounce rejected: BATV tag has expired",
        Reason::Valid | Reason::Exempt | Reason::NotBounce => return None,
    })
}

/// The reason a policy gives a recipient whose verification failed.
pub fn reason_of(e: &VerifyError) -> Reason {
    match e {
        VerifyError::Untagged => Reason::Untagged,
        VerifyError::Malformed(_) => Reason::Malformed,
        VerifyError::UnknownKey(_) => Reason::UnknownKey,
        VerifyError::BadSignature => Reason::BadSignature,
        VerifyError::Expired => Reason::Expired,
    }
}

/// The local part and domain of some octets, split at the last `@` (no `@`: all local part).
pub fn split_at_last_at(a: &[u8]) -> (&[u8], &[u8]) {
    match a.iter().rposition(|&c| c == b'@') {
        Some(i) => (&a[..i], &a[i + 1..]),
        None => (a, b""),
    }
}

/// Reads a little-endian i64 from up to 8 bytes (missing bytes are zero).
pub fn read_i64(bytes: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    i64::from_le_bytes(b)
}
