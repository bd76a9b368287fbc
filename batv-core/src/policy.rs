//! The bounce policy (docs/scheme.md, "Bounce policy"): one decision per recipient.

use crate::address::{admit, Admission};
use crate::error::{Outcome, PolicyError, VerifyError};
use crate::keys::Keyring;
use crate::wire::MAX_ADDRESS_LEN;
use core::fmt;
use std::borrow::Cow;
use std::collections::BTreeSet;

/// Why a recipient was accepted or rejected; the same word in every face.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Reason {
    /// The recipient carries a valid tag.
    Valid,
    /// The recipient is untagged but exempt.
    Exempt,
    /// The recipient is untagged and the sender is not a bounce: ordinary mail.
    NotBounce,
    /// A bounce to an untagged recipient: the joe-job case.
    Untagged,
    /// The recipient is not an address, or its tag is malformed.
    Malformed,
    /// The recipient's tag names a key that is not in the keyring.
    UnknownKey,
    /// The recipient's tag does not verify.
    BadSignature,
    /// The recipient's tag has expired.
    Expired,
}

impl Reason {
    /// Every reason, accepting ones first.
    pub const ALL: [Reason; 8] = [
        Reason::Valid,
        Reason::Exempt,
        Reason::NotBounce,
        Reason::Untagged,
        Reason::Malformed,
        Reason::UnknownKey,
        Reason::BadSignature,
        Reason::Expired,
    ];

    /// The reason word: `valid`, `exempt`, `not-bounce`, or an outcome word.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Exempt => "exempt",
            Reason::NotBounce => "not-bounce",
            r => match r.outcome() {
                Some(o) => o.as_str(),
                None => "",
            },
        }
    }

    /// The verification outcome this reason stands for (`None` for `exempt`, `not-bounce`).
    pub const fn outcome(self) -> Option<Outcome> {
        Some(match self {
            Reason::Valid => Outcome::Valid,
            Reason::Untagged => Outcome::Untagged,
            Reason::Malformed => Outcome::Malformed,
            Reason::UnknownKey => Outcome::UnknownKey,
            Reason::BadSignature => Outcome::BadSignature,
            Reason::Expired => Outcome::Expired,
            Reason::Exempt | Reason::NotBounce => return None,
        })
    }

    /// Whether this reason rejects the recipient (outside monitor mode).
    pub const fn rejects(self) -> bool {
        self.smtp_reply().is_some()
    }

    /// The SMTP reply for a rejecting reason.
    pub const fn smtp_reply(self) -> Option<&'static str> {
        Some(match self {
            Reason::Untagged => {
                "550 5.7.1 Bounce rejected: this address did not send the original message (no BATV tag)"
            }
            Reason::Malformed => "550 5.7.1 Rejected: malformed address or BATV tag",
            Reason::UnknownKey => "550 5.7.1 Bounce rejected: BATV tag signed with an unknown key",
            Reason::BadSignature => "550 5.7.1 Bounce rejected: invalid BATV signature",
            Reason::Expired => "550 5.7.1 Bounce rejected: BATV tag has expired",
            Reason::Valid | Reason::Exempt | Reason::NotBounce => return None,
        })
    }

    fn from_error(e: VerifyError) -> Reason {
        match e {
            VerifyError::Untagged => Reason::Untagged,
            VerifyError::Malformed(_) => Reason::Malformed,
            VerifyError::UnknownKey(_) => Reason::UnknownKey,
            VerifyError::BadSignature => Reason::BadSignature,
            VerifyError::Expired => Reason::Expired,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision for one recipient.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Verdict {
    /// Whether to accept the recipient (always true in monitor mode).
    pub accepted: bool,
    /// Why; in monitor mode, why it would have been rejected.
    pub reason: Reason,
    /// The address to deliver to: the original address of a tagged recipient, the recipient
    /// itself otherwise, in monitor mode the recipient without its tags. `None` when rejected,
    /// and for a monitored recipient that is not an address (docs/scheme.md, "Admission").
    pub deliver_to: Option<String>,
    /// The SMTP reply for a reject (`550 5.7.1 ...`); `None` when accepted.
    pub smtp_reply: Option<&'static str>,
    /// True when monitor mode accepted what would have been rejected.
    pub monitored: bool,
}

/// The exemptions, ASCII-lowercased: a check is three lookups (`user@domain`, `user@`,
/// `@domain`) of slices of the recipient's lowercased form.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Exemptions(BTreeSet<Box<[u8]>>);

/// The rule for an exemption pattern: the one place every face gets it from.
fn parse_exemption(pattern: &str) -> Result<Box<[u8]>, PolicyError> {
    // Checked first, so that a huge pattern is refused before it is scanned twice.
    if pattern.len() > MAX_ADDRESS_LEN {
        return Err(PolicyError::ExemptionTooLong { len: pattern.len() });
    }
    let at = pattern.rfind('@').ok_or(PolicyError::BadExemption)?;
    let (local, domain) = (&pattern[..at], &pattern[at + 1..]);
    if (local.is_empty() && domain.is_empty()) || pattern.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(PolicyError::BadExemption);
    }
    // Patterns are literal: a `*` would be compared as an octet and match nothing anyone meant.
    if pattern.contains('*') {
        let instead = match (local, domain) {
            ("*", d) if !d.is_empty() && !d.contains('*') => Some(format!("@{d}")),
            (l, "*") if !l.is_empty() && !l.contains('*') => Some(format!("{l}@")),
            _ => None,
        };
        return Err(PolicyError::ExemptionWildcard { instead });
    }
    Ok(pattern.to_ascii_lowercase().into_bytes().into_boxed_slice())
}

impl Exemptions {
    const EMPTY: Exemptions = Exemptions(BTreeSet::new());

    fn matches(&self, recipient: &[u8]) -> bool {
        if self.0.is_empty() {
            return false;
        }
        let mut key = recipient.to_ascii_lowercase();
        // An address without `@` is all local part: `user@` exempts it, as before.
        let at = match key.iter().rposition(|&b| b == b'@') {
            Some(at) => at,
            None => {
                key.push(b'@');
                key.len() - 1
            }
        };
        // `user@domain`, then `user@` (the local part and its `@`), then `@domain`.
        [&key[..], &key[..=at], &key[at..]].iter().any(|k| self.0.contains(*k))
    }
}

/// The bounce policy: exemptions, which senders are bounces, and monitor mode.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    exemptions: Exemptions,
    bounce_local_parts: Cow<'static, [Cow<'static, str>]>,
    monitor: bool,
}

/// The local parts whose senders are bounces by default, besides the null sender.
pub const DEFAULT_BOUNCE_LOCAL_PARTS: &[Cow<'static, str>] = &[Cow::Borrowed("mailer-daemon")];

impl Default for Policy {
    fn default() -> Self {
        Policy::DEFAULT
    }
}

impl Policy {
    /// No exemptions, `mailer-daemon` as the only bounce local part, monitor mode off.
    pub const DEFAULT: Policy =
        Policy { exemptions: Exemptions::EMPTY, bounce_local_parts: Cow::Borrowed(DEFAULT_BOUNCE_LOCAL_PARTS), monitor: false };

    /// Adds an exemption: `user@domain`, `@domain` or `user@`, literal (no `*`), compared ASCII
    /// case-insensitively. On an error the policy is unchanged.
    pub fn add_exempt(&mut self, pattern: &str) -> Result<(), PolicyError> {
        self.exemptions.0.insert(parse_exemption(pattern)?);
        Ok(())
    }

    /// Replaces the local parts whose senders count as bounces besides the null sender. On an
    /// error the policy is unchanged.
    pub fn set_bounce_local_parts<I, S>(&mut self, parts: I) -> Result<(), PolicyError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut v = Vec::new();
        for p in parts {
            let p = p.as_ref();
            if p.is_empty() || p.contains('@') {
                return Err(PolicyError::BadBounceLocalPart);
            }
            v.push(Cow::Owned(p.to_owned()));
        }
        self.bounce_local_parts = Cow::Owned(v);
        Ok(())
    }

    /// Monitor mode: every reject becomes an accept, and the verdict keeps its reason.
    pub fn set_monitor(&mut self, on: bool) {
        self.monitor = on;
    }

    /// Whether monitor mode is on.
    pub fn is_monitor(&self) -> bool {
        self.monitor
    }

    /// The local parts whose senders count as bounces besides the null sender.
    pub fn bounce_local_parts(&self) -> impl Iterator<Item = &str> {
        self.bounce_local_parts.iter().map(|p| &**p)
    }

    /// Whether a sender is a bounce: the null sender, or a bounce local part at any domain
    /// (ASCII case-insensitive).
    pub fn is_bounce<A: AsRef<[u8]> + ?Sized>(&self, sender: &A) -> bool {
        let sender = sender.as_ref();
        if admit(sender) == Admission::Null {
            return true;
        }
        let local = sender.iter().rposition(|&b| b == b'@').map_or(sender, |at| &sender[..at]);
        self.bounce_local_parts().any(|p| p.as_bytes().eq_ignore_ascii_case(local))
    }

    /// Whether an untagged recipient is exempt.
    pub fn is_exempt<A: AsRef<[u8]> + ?Sized>(&self, recipient: &A) -> bool {
        self.exemptions.matches(recipient.as_ref())
    }

    /// Decides one recipient as of `now` (Unix seconds).
    pub fn check<S, R>(&self, keyring: &Keyring, sender: &S, recipient: &R, now: i64) -> Verdict
    where
        S: AsRef<[u8]> + ?Sized,
        R: AsRef<[u8]> + ?Sized,
    {
        match self.check_with(Ok::<_, core::convert::Infallible>(keyring), sender, recipient, now) {
            Ok(v) => v,
            Err(never) => match never {},
        }
    }

    /// [`Policy::check`] with a keyring that may be unusable: what needs no key is decided
    /// anyway; every decision that could reject gives back the keyring's error (tempfail).
    pub fn check_with<E, S, R>(
        &self,
        keyring: Result<&Keyring, E>,
        sender: &S,
        recipient: &R,
        now: i64,
    ) -> Result<Verdict, E>
    where
        S: AsRef<[u8]> + ?Sized,
        R: AsRef<[u8]> + ?Sized,
    {
        let recipient = recipient.as_ref();
        let accept = |reason, to: &str| Verdict {
            accepted: true,
            reason,
            deliver_to: Some(to.to_owned()),
            smtp_reply: None,
            monitored: false,
        };
        if let Admission::Null | Admission::Untagged(_) = admit(recipient) {
            let reason = if self.is_exempt(recipient) {
                Some(Reason::Exempt)
            } else {
                (!self.is_bounce(sender)).then_some(Reason::NotBounce)
            };
            if let Some(reason) = reason {
                // Untagged, so admitted as text.
                return Ok(accept(reason, std::str::from_utf8(recipient).unwrap_or_default()));
            }
        }
        let error = match keyring?.verify_at(recipient, now) {
            Ok(original) => return Ok(accept(Reason::Valid, &String::from(original))),
            Err(e) => e,
        };
        let reason = Reason::from_error(error);
        if self.monitor {
            // What is not an address has none to deliver to; a bad tag, the address behind it.
            let deliver_to = match error {
                VerifyError::Malformed(p) if !p.is_tag_problem() => None,
                _ => std::str::from_utf8(&crate::strip(recipient)).ok().map(str::to_owned),
            };
            return Ok(Verdict { accepted: true, reason, deliver_to, smtp_reply: None, monitored: true });
        }
        Ok(Verdict { accepted: false, reason, deliver_to: None, smtp_reply: reason.smtp_reply(), monitored: false })
    }
}
