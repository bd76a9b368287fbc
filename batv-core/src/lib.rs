#![doc = include_str!("../README.md")]
#![forbid(unsafe_code)]
#![warn(missing_docs)]
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used, clippy::panic))]
#[cfg(not(unix))]
compile_error!("batv-core runs on Unix, where mail servers run: its keyring checks are Unix's.");

mod address;
mod cache;
mod days;
mod error;
mod keyfile;
mod keys;
mod mac;
mod policy;
pub mod store;
mod wire;

use std::borrow::Cow;

pub use address::{admit, unbracket, Admission};
pub use cache::{CachedKeyring, KeyringCache, CHECK_INTERVAL};
pub use days::{unix_now, DEFAULT_LIFETIME_DAYS, DEFAULT_SKEW_DAYS};
pub use error::{
    AclGrant, AddressProblem, FileWord, KeyringError, KeyringErrorKind, Outcome,
    PolicyError, SignError, VerifyError, WordKind,
};
pub use keys::{
    Key, Keyring, SecretEncoding, Signed, GENERATED_SECRET_LEN, KEY_SLOTS, MIN_ENCODED_SECRET_LEN,
    SIGNED_MAX,
};
pub use mac::Scheme;
pub use policy::{Policy, Reason, Verdict, DEFAULT_BOUNCE_LOCAL_PARTS};
pub use wire::{Original, Tag, MAX_ADDRESS_LEN};

/// The address without its tags (docs/scheme.md, "Strip"), unverified, for allow-lists and logs;
/// anything else comes back as it is.
///
/// ```
/// assert_eq!(&*batv_core::strip("prvs=1790c1c5ba=user@example.com"), b"user@example.com");
/// assert_eq!(&*batv_core::strip("prvs=234d5777c=user@example.com"), b"user@example.com");
/// assert_eq!(&*batv_core::strip("user@example.com"), b"user@example.com");
/// ```
pub fn strip<A: AsRef<[u8]> + ?Sized>(address: &A) -> Cow<'_, [u8]> {
    let mut current = Cow::Borrowed(address.as_ref());
    // Each round removes a tag, so this ends.
    loop {
        current = match untag(&current) {
            None => return current,
            Some(Untagged::From(start)) => match current {
                Cow::Borrowed(b) => Cow::Borrowed(&b[start..]),
                Cow::Owned(mut v) => {
                    v.drain(..start);
                    Cow::Owned(v)
                }
            },
            Some(Untagged::Joined(v)) => Cow::Owned(v),
        };
    }
}

/// What one tag removed leaves: the address from an offset on, or two pieces joined.
enum Untagged {
    From(usize),
    Joined(Vec<u8>),
}

fn untag(a: &[u8]) -> Option<Untagged> {
    let may_be_wild = match admit(a) {
        Admission::Tagged(t) => {
            return Some(match t.original.as_contiguous() {
                Some(s) => Untagged::From(a.len() - s.len()),
                None => Untagged::Joined(String::from(t.original).into_bytes()),
            })
        }
        Admission::Malformed(p) => p.is_tag_problem(),
        Admission::Untagged(_) => true,
        Admission::Null => false,
    };
    let text = std::str::from_utf8(a).ok().filter(|_| may_be_wild)?;
    wire::strip_wild(text).map(|s| Untagged::From(a.len() - s.len()))
}

/// Whether an address carries a well-formed `prvs=` tag (either wire form), verified or not.
pub fn is_tagged<A: AsRef<[u8]> + ?Sized>(address: &A) -> bool {
    matches!(admit(address.as_ref()), Admission::Tagged(_))
}

/// The internals the fuzz targets and benchmarks check directly; not a stable API.
#[doc(hidden)]
pub mod internals {
    pub use crate::days::{day_number, expiry_stamp, remaining_days, within_window};
    pub use crate::keyfile::{date_of_day, day_of_date, judge_acl};
}
