//! What the fuzz targets share: the fuzzing keyring, and oracles that recompute the answers of
//! SPEC sections 2-4 without batv-core's own MAC, day and wire code, so a target checks that
//! the library is right and not merely that it does not crash.

use batv_core::wire::Tag;
use batv_core::{Keyring, Scheme};
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
    (
        7,
        Scheme::HmacSha256,
        &[0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15],
    ),
];

/// Lifetime and skew of [`KEYRING_TEXT`].
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
    RING.get_or_init(|| {
        match Keyring::parse(&KEYRING_TEXT.replace("sign-key 1", "sign-key 0")) {
            Ok(k) => k,
            Err(e) => panic!("the fuzzing keyring does not parse: {e}"),
        }
    })
}

/// The first three bytes of HMAC(secret, kddd || address) under `scheme`, computed with the
/// RustCrypto crates directly.
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

/// Whether a parsed tag's MAC is right for the fuzzing keyring (SPEC section 3): hmac-sha256
/// over the lower-cased address; hmac-sha1 over the address as written, with the domain
/// lower-cased, or fully lower-cased.
pub fn oracle_mac_matches(tag: &Tag<'_>) -> Option<bool> {
    let (scheme, secret) = oracle_key(tag.key_number())?;
    let original: String = tag.original.into();
    let k = kddd(tag.key_number(), tag.day_stamp());
    let lower = original.to_ascii_lowercase();
    Some(match scheme {
        Scheme::HmacSha256 => oracle_mac(scheme, secret, &k, lower.as_bytes()) == tag.mac(),
        Scheme::HmacSha1 => {
            let domain_lower = match original.rfind('@') {
                Some(at) => format!("{}{}", &original[..=at], original[at + 1..].to_ascii_lowercase()),
                None => original.clone(),
            };
            [original.as_bytes(), domain_lower.as_bytes(), lower.as_bytes()]
                .iter()
                .any(|a| oracle_mac(scheme, secret, &k, a) == tag.mac())
        }
    })
}

/// UTC days since 1970 for `now`, rounding towards minus infinity, in 128-bit arithmetic so it
/// shares no overflow behaviour with the library's `i64` code.
pub fn oracle_day(now: i64) -> i128 {
    let n = i128::from(now);
    if n >= 0 {
        n / 86_400
    } else {
        -((-n + 86_399) / 86_400)
    }
}

/// The `DDD` of a tag signed at `now` (SPEC section 4).
pub fn oracle_stamp(now: i64, lifetime: i64) -> u16 {
    let d = (oracle_day(now) + i128::from(lifetime)) % 1000;
    (if d < 0 { d + 1000 } else { d }) as u16
}

/// Whether a tag with this stamp is inside the window at `now` (SPEC section 4).
pub fn oracle_in_window(stamp: u16, now: i64, lifetime: i64, skew: i64) -> bool {
    let today = oracle_day(now) % 1000;
    let today = if today < 0 { today + 1000 } else { today };
    let remaining = (i128::from(stamp) - today + 1000) % 1000;
    remaining <= i128::from(lifetime + skew)
}

/// Checks that a parsed tag is exactly what the input says, in one of the wire forms of SPEC
/// section 2: `prvs=KDDDSSSSSS=orig`, `"prvs=KDDDSSSSSS=local"@domain`, or the old
/// `prvs=local/KDDDSSSSSS@domain`. Panics with a description otherwise.
pub fn check_tag_matches_input(input: &str, tag: &Tag<'_>) {
    let fields = format!(
        "{}{:03}{:02x}{:02x}{:02x}",
        tag.key_number(), tag.day_stamp(), tag.mac()[0], tag.mac()[1], tag.mac()[2]
    );
    let [head, tail] = tag.original.pieces();
    let b = input.as_bytes();
    let new_prefix = format!("prvs={fields}=");
    let ok = match head {
        "" => {
            b.len() == 16 + tail.len()
                && b[..16].eq_ignore_ascii_case(new_prefix.as_bytes())
                && &input[16..] == tail
        }
        "\"" => {
            b.len() == 17 + tail.len()
                && b[0] == b'"'
                && b[1..17].eq_ignore_ascii_case(new_prefix.as_bytes())
                && &input[17..] == tail
        }
        local => {
            // Old form: prvs=local/KDDDSSSSSS@domain
            let old_mid = format!("/{fields}");
            b.len() == 5 + local.len() + 11 + tail.len()
                && b[..5].eq_ignore_ascii_case(b"prvs=")
                && &input[5..5 + local.len()] == local
                && b[5 + local.len()..16 + local.len()].eq_ignore_ascii_case(old_mid.as_bytes())
                && &input[16 + local.len()..] == tail
                && tail.starts_with('@')
        }
    };
    assert!(ok, "parsed tag {tag:?} does not match input {input:?}");
    assert!(
        tag.original.len() + 16 == input.len(),
        "a tag is 16 octets: {input:?} -> {tag:?}"
    );
}

/// Interprets fuzzer bytes as an address: the bytes themselves when they are UTF-8, else
/// their lossy conversion (so invalid UTF-8 still reaches the parser as replacement chars).
pub fn text(data: &[u8]) -> std::borrow::Cow<'_, str> {
    String::from_utf8_lossy(data)
}

/// Reads a little-endian i64 from up to 8 bytes (missing bytes are zero).
pub fn read_i64(bytes: &[u8]) -> i64 {
    let mut b = [0u8; 8];
    let n = bytes.len().min(8);
    b[..n].copy_from_slice(&bytes[..n]);
    i64::from_le_bytes(b)
}
