#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]

pub mod cache;
pub mod days;
mod error;
mod keyring;
mod mac;
mod policy;
pub mod wire;
mod wide;

use std::borrow::Cow;

pub use cache::{CachedKeyring, KeyringCache};
pub use days::unix_now;
pub use error::{AddressProblem, Malformation, Outcome, SignError, VerifyError};
pub use keyring::{
    Key, Keyring, KeyringError, KeyringErrorKind, SecretEncoding, Signed, GENERATED_SECRET_LEN,
    KEY_SLOTS, MIN_ENCODED_SECRET_LEN, SIGNED_MAX,
};
pub use mac::Scheme;
pub use policy::{Exemption, Policy, PolicyError, Reason, Verdict};
pub use wire::{Original, Tag, MAX_ADDRESS_LEN};

/// The original address of a tagged address, without verifying anything (for allow-lists and
/// logs); the address itself when it is untagged or its tag is malformed.
///
/// Nested tags are all removed, so the result is never itself tagged.
///
/// ```
/// assert_eq!(batv_core::strip("prvs=1790c1c5ba=user@example.com"), "user@example.com");
/// assert_eq!(batv_core::strip("user@example.com"), "user@example.com");
/// ```
pub fn strip(address: &str) -> Cow<'_, str> {
    let mut current = Cow::Borrowed(address);
    // Each round removes at least the 16 octets of a tag, so this ends.
    loop {
        let next = match (&current, wire::parse(&current)) {
            (_, Ok(None) | Err(_)) => return current,
            (Cow::Borrowed(_), Ok(Some(tag))) => match tag.original.as_contiguous() {
                // Re-borrow from `address` so the common case never allocates.
                Some(s) => Cow::Borrowed(&address[address.len() - s.len()..]),
                None => Cow::Owned(tag.original.into()),
            },
            (Cow::Owned(_), Ok(Some(tag))) => Cow::Owned(tag.original.into()),
        };
        current = next;
    }
}

/// Whether an address carries a well-formed `prvs=` tag (either wire form), verified or not.
pub fn is_tagged(address: &str) -> bool {
    matches!(wire::parse(address), Ok(Some(_)))
}
