//! The two MAC schemes (docs/scheme.md, "MAC schemes"), on RustCrypto's `hmac`, keyed once.

use crate::wire::{Original, Tag};
use core::fmt;
use hmac::{Hmac, KeyInit, Mac};
use sha1::Sha1;
use sha2::Sha256;

/// How a key computes its tag.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Scheme {
    /// HMAC-SHA-256 over `K DDD lowercase(address)`: the default, immune to remote MTAs that
    /// change case.
    HmacSha256,
    /// HMAC-SHA-1 over `K DDD address` as written: byte-identical with Exim's `${prvs}`, so a
    /// fleet can share a key with it.
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

/// One key's HMAC, keyed once. RustCrypto wipes its state on drop (its `zeroize` feature).
#[derive(Clone)]
pub(crate) enum KeyMac {
    Sha256(Hmac<Sha256>),
    Sha1(Hmac<Sha1>),
}

// The keyed state stands for the secret: this fails to compile without `hmac`'s `zeroize`.
const _: () = {
    const fn wiped_on_drop<T: zeroize::ZeroizeOnDrop>() {}
    wiped_on_drop::<<Sha256 as hmac::EagerHash>::Core>();
    wiped_on_drop::<<Sha1 as hmac::EagerHash>::Core>();
};

impl KeyMac {
    pub(crate) fn new(scheme: Scheme, secret: &[u8]) -> KeyMac {
        // HMAC takes a key of any length, so neither arm can fail.
        match scheme {
            Scheme::HmacSha256 => KeyMac::Sha256(<Hmac<Sha256>>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())),
            Scheme::HmacSha1 => KeyMac::Sha1(<Hmac<Sha1>>::new_from_slice(secret).unwrap_or_else(|_| unreachable!())),
        }
    }

    /// The three tag octets for `K DDD address`, as `sign` writes them.
    pub(crate) fn tag(&self, kddd: &[u8; 4], address: Original<'_>) -> [u8; 3] {
        let mut out = [0u8; 3];
        match self {
            KeyMac::Sha256(m) => out.copy_from_slice(&mac(m, kddd, address, 0).finalize().into_bytes()[..3]),
            KeyMac::Sha1(m) => out.copy_from_slice(&mac(m, kddd, address, address.len()).finalize().into_bytes()[..3]),
        }
        out
    }

    /// Whether a tag's MAC matches, in constant time. `hmac-sha1` tries the address as received,
    /// its domain lower-cased (as Exim signs), then all of it lower-cased.
    pub(crate) fn matches(&self, tag: &Tag<'_>) -> bool {
        let (o, kddd, want) = (tag.original, tag.kddd(), tag.mac());
        match self {
            KeyMac::Sha256(m) => mac(m, kddd, o, 0).verify_truncated_left(&want).is_ok(),
            KeyMac::Sha1(m) => {
                let try_fold = |from| mac(m, kddd, o, from).verify_truncated_left(&want).is_ok();
                if try_fold(o.len()) {
                    return true;
                }
                // Each fold only when it changes what is hashed.
                let d = o.domain_start();
                let (mut local_upper, mut domain_upper) = (false, false);
                let octets = o.pieces().into_iter().flat_map(str::bytes);
                for (i, _) in octets.enumerate().filter(|(_, b)| b.is_ascii_uppercase()) {
                    local_upper |= i < d;
                    domain_upper |= i >= d;
                }
                (domain_upper && try_fold(d)) || (local_upper && try_fold(0))
            }
        }
    }
}

/// The keyed state fed `K DDD` and the address, ASCII-lower-cased from octet `fold_from` on.
fn mac<M: Mac + Clone>(m: &M, kddd: &[u8; 4], address: Original<'_>, fold_from: usize) -> M {
    let mut m = m.clone();
    m.update(kddd);
    let mut at = 0;
    for piece in address.pieces().map(str::as_bytes) {
        let (as_is, folded) = piece.split_at(fold_from.saturating_sub(at).min(piece.len()));
        at += piece.len();
        m.update(as_is);
        if !folded.iter().any(u8::is_ascii_uppercase) {
            m.update(folded);
            continue;
        }
        // Lower-cased a stack block at a time: no copy of the whole address, no allocation.
        for chunk in folded.chunks(64) {
            let mut block = [0u8; 64];
            let block = &mut block[..chunk.len()];
            block.copy_from_slice(chunk);
            block.make_ascii_lowercase();
            m.update(block);
        }
    }
    m
}
