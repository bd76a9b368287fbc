//! The two MAC schemes of SPEC section 3 and the per-key prepared HMAC state.
//!
//! A key's HMAC is keyed once, when the keyring is built; each signature clones that state
//! (the inner and outer hash states, already past the padded key block), so a short address
//! costs the two compressions of an HMAC over one block and nothing more.

use crate::wire::{Original, Tag};
use core::fmt;
use hmac::{Hmac, KeyInit, Mac};

/// How a key computes its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// HMAC-SHA-256 over `K DDD lowercase(address)`: the default, immune to remote MTAs that
    /// change case.
    HmacSha256,
    /// HMAC-SHA-1 over `K DDD address` as written: byte-identical with draft-01 and Exim's
    /// `${prvs}`, so a fleet can share a key with them.
    HmacSha1,
}

impl Scheme {
    /// The scheme's name in the keyring file: `hmac-sha256` or `hmac-sha1`.
    pub const fn as_str(self) -> &'static str {
        match self {
            Scheme::HmacSha256 => "hmac-sha256",
            Scheme::HmacSha1 => "hmac-sha1",
        }
    }

    /// The scheme for a keyring-file name (case-insensitive).
    pub fn from_name(name: &str) -> Option<Scheme> {
        [Scheme::HmacSha256, Scheme::HmacSha1]
            .into_iter()
            .find(|s| s.as_str().eq_ignore_ascii_case(name))
    }
}

impl fmt::Display for Scheme {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Which part of the address is ASCII-lower-cased before it enters the MAC.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Fold {
    None,
    Domain,
    All,
}

/// A key's HMAC, keyed once. The states are zeroized on drop (the `zeroize` feature of the
/// RustCrypto crates).
#[derive(Clone)]
pub(crate) enum PreparedMac {
    Sha256(Hmac<sha2::Sha256>),
    Sha1(Hmac<sha1::Sha1>),
}

impl PreparedMac {
    pub(crate) fn new(scheme: Scheme, secret: &[u8]) -> PreparedMac {
        // HMAC accepts keys of any length, so these cannot fail; an empty slice is also fine
        // for HMAC, although the keyring never passes one.
        match scheme {
            Scheme::HmacSha256 => PreparedMac::Sha256(
                Hmac::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key")),
            ),
            Scheme::HmacSha1 => PreparedMac::Sha1(
                Hmac::new_from_slice(secret).unwrap_or_else(|_| unreachable!("HMAC takes any key")),
            ),
        }
    }

    /// The three tag bytes for `K DDD address` under this key's scheme (the signing form).
    pub(crate) fn tag(&self, kddd: &[u8; 4], address: Original<'_>) -> [u8; 3] {
        match self {
            PreparedMac::Sha256(m) => truncate(feed(m.clone(), kddd, address, Fold::All)),
            PreparedMac::Sha1(m) => truncate(feed(m.clone(), kddd, address, Fold::None)),
        }
    }

    /// Whether the parsed tag's MAC matches, compared in constant time.
    ///
    /// `hmac-sha1` tries the address as received, then with the domain lower-cased, then fully
    /// lower-cased, because Exim lower-cases addresses in its ACL variables.
    pub(crate) fn matches(&self, tag: &Tag<'_>) -> bool {
        match self {
            PreparedMac::Sha256(m) => {
                feed(m.clone(), &tag.kddd, tag.original, Fold::All).verify_truncated_left(&tag.mac).is_ok()
            }
            PreparedMac::Sha1(m) => {
                let o = tag.original;
                let domain = o.domain_start().unwrap_or(o.len());
                let (mut local_upper, mut domain_upper) = (false, false);
                let mut pos = 0;
                o.for_each_piece_from(0, |p| {
                    for &b in p {
                        if b.is_ascii_uppercase() {
                            if pos < domain { local_upper = true } else { domain_upper = true }
                        }
                        pos += 1;
                    }
                });
                let check = |fold| {
                    feed(m.clone(), &tag.kddd, o, fold).verify_truncated_left(&tag.mac).is_ok()
                };
                // Each extra try only when it feeds different bytes.
                check(Fold::None)
                    || (domain_upper && check(Fold::Domain))
                    || (local_upper && check(Fold::All))
            }
        }
    }
}

fn truncate<M: Mac>(m: M) -> [u8; 3] {
    let out = m.finalize().into_bytes();
    [out[0], out[1], out[2]]
}

/// Feeds `K DDD` and the address to the MAC, ASCII-lower-casing per `fold` through a small
/// stack buffer (no allocation).
fn feed<M: Mac>(mut m: M, kddd: &[u8; 4], address: Original<'_>, fold: Fold) -> M {
    m.update(kddd);
    let lower_from = match fold {
        Fold::None => {
            address.for_each_piece_from(0, |p| m.update(p));
            return m;
        }
        Fold::All => 0,
        Fold::Domain => address.domain_start().unwrap_or(address.len()),
    };
    let mut pos = 0usize;
    address.for_each_piece_from(0, |piece| {
        let (keep, lower) = piece.split_at(lower_from.saturating_sub(pos).min(piece.len()));
        pos += piece.len();
        m.update(keep);
        let mut buf = [0u8; 64];
        for chunk in lower.chunks(buf.len()) {
            let dst = &mut buf[..chunk.len()];
            dst.copy_from_slice(chunk);
            dst.make_ascii_lowercase();
            m.update(dst);
        }
    });
    m
}
