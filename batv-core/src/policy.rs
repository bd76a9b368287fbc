//! The bounce policy of SPEC section 7: one decision per recipient of one SMTP transaction.

use crate::days;
use crate::error::{Outcome, VerifyError};
use crate::keyring::Keyring;
use crate::wire;
use core::fmt;

/// Why a recipient was accepted or rejected; the word is the same in every binding.
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
    /// The recipient's tag is malformed.
    Malformed,
    /// The recipient's tag names a key that is not in the keyring.
    UnknownKey,
    /// The recipient's tag does not verify.
    BadSignature,
    /// The recipient's tag has expired.
    Expired,
}

impl Reason {
    /// The reason word: `valid`, `exempt`, `not-bounce`, or an outcome word of section 6.
    pub const fn as_str(self) -> &'static str {
        match self {
            Reason::Valid => "valid",
            Reason::Exempt => "exempt",
            Reason::NotBounce => "not-bounce",
            Reason::Untagged => "untagged",
            Reason::Malformed => "malformed",
            Reason::UnknownKey => "unknown-key",
            Reason::BadSignature => "bad-signature",
            Reason::Expired => "expired",
        }
    }

    /// Whether this reason rejects the recipient (outside monitor mode).
    pub const fn rejects(self) -> bool {
        !matches!(self, Reason::Valid | Reason::Exempt | Reason::NotBounce)
    }

    /// The SMTP reply for a rejecting reason.
    pub const fn smtp_reply(self) -> Option<&'static str> {
        Some(match self {
            Reason::Untagged => {
                "550 5.7.1 Bounce rejected: this address did not send the original message (no BATV tag)"
            }
            Reason::Malformed => "550 5.7.1 Bounce rejected: malformed BATV tag",
            Reason::UnknownKey => "550 5.7.1 Bounce rejected: BATV tag signed with an unknown key",
            Reason::BadSignature => "550 5.7.1 Bounce rejected: invalid BATV signature",
            Reason::Expired => "550 5.7.1 Bounce rejected: BATV tag has expired",
            Reason::Valid | Reason::Exempt | Reason::NotBounce => return None,
        })
    }

    fn from_outcome(o: Outcome) -> Reason {
        match o {
            Outcome::Valid => Reason::Valid,
            Outcome::Untagged => Reason::Untagged,
            Outcome::Malformed => Reason::Malformed,
            Outcome::UnknownKey => Reason::UnknownKey,
            Outcome::BadSignature => Reason::BadSignature,
            Outcome::Expired => Reason::Expired,
        }
    }
}

impl fmt::Display for Reason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The decision for one recipient.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verdict {
    /// Whether to accept the recipient (always true in monitor mode).
    pub accepted: bool,
    /// Why.
    pub reason: Reason,
    /// The address to deliver to: the original address for a tagged recipient, the recipient
    /// itself otherwise; `None` when rejected.
    pub deliver_to: Option<String>,
    /// The SMTP reply for a reject (`550 5.7.1 ...`); `None` when accepted.
    pub smtp_reply: Option<&'static str>,
    /// True when monitor mode accepted what would have been rejected.
    pub monitored: bool,
}

/// One exemption: `user@domain`, `@domain` or `user@`, compared case-insensitively.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Exemption {
    local: Option<String>,
    domain: Option<String>,
}

impl Exemption {
    /// Parses an exemption pattern. It must contain `@` and something beside it.
    pub fn parse(pattern: &str) -> Result<Exemption, PolicyError> {
        let at = pattern.rfind('@').ok_or(PolicyError::BadExemption)?;
        let (local, domain) = (&pattern[..at], &pattern[at + 1..]);
        if (local.is_empty() && domain.is_empty()) || pattern.bytes().any(wire::is_forbidden) {
            return Err(PolicyError::BadExemption);
        }
        let part = |s: &str| (!s.is_empty()).then(|| s.to_ascii_lowercase());
        Ok(Exemption { local: part(local), domain: part(domain) })
    }

    fn matches(&self, local: &str, domain: &str) -> bool {
        self.local.as_deref().is_none_or(|l| l.eq_ignore_ascii_case(local))
            && self.domain.as_deref().is_none_or(|d| d.eq_ignore_ascii_case(domain))
    }
}

/// A policy configuration that cannot be used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PolicyError {
    /// An exemption is not `user@domain`, `@domain` or `user@`.
    BadExemption,
    /// A bounce local part is empty or contains `@`.
    BadBounceLocalPart,
}

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PolicyError::BadExemption => {
                "an exemption must be user@domain, @domain or user@ (with no control characters)"
            }
            PolicyError::BadBounceLocalPart => {
                "a bounce local part must be non-empty and contain no '@'"
            }
        })
    }
}

impl std::error::Error for PolicyError {}

/// The bounce policy: exemptions, which senders are bounces, and monitor mode.
///
/// ```
/// use batv_core::{Keyring, Policy};
/// let keys = Keyring::parse("key 1 hmac-sha256 text:secret\n").unwrap();
/// let policy = Policy::new().exempt("dmarc-reports@example.com").unwrap();
/// let now = 1_795_700_000;
/// let v = policy.check(&keys, "", "user@example.com", now);
/// assert!(!v.accepted);
/// assert_eq!(v.reason.as_str(), "untagged");
/// let tagged = keys.sign_at("user@example.com", now).unwrap();
/// let v = policy.check(&keys, "", &tagged, now);
/// assert_eq!(v.deliver_to.as_deref(), Some("user@example.com"));
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Policy {
    exemptions: Vec<Exemption>,
    bounce_local_parts: Vec<String>,
    monitor: bool,
}

impl Default for Policy {
    fn default() -> Self {
        Policy::new()
    }
}

impl Policy {
    /// No exemptions, `mailer-daemon` as the only bounce local part, monitor mode off.
    pub fn new() -> Policy {
        Policy { exemptions: Vec::new(), bounce_local_parts: vec!["mailer-daemon".into()], monitor: false }
    }

    /// Adds an exemption (`user@domain`, `@domain` or `user@`).
    pub fn exempt(mut self, pattern: &str) -> Result<Policy, PolicyError> {
        self.exemptions.push(Exemption::parse(pattern)?);
        Ok(self)
    }

    /// Replaces the local parts whose senders count as bounces (besides the null sender).
    pub fn bounce_local_parts<I, S>(mut self, parts: I) -> Result<Policy, PolicyError>
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
            v.push(p.to_ascii_lowercase());
        }
        self.bounce_local_parts = v;
        Ok(self)
    }

    /// Monitor mode: every reject becomes an accept, and the verdict keeps its reason.
    pub fn monitor(mut self, on: bool) -> Policy {
        self.monitor = on;
        self
    }

    /// Whether monitor mode is on.
    pub fn is_monitor(&self) -> bool {
        self.monitor
    }

    /// Whether a sender is a bounce: the null sender (`""` or `<>`), or one of the bounce local
    /// parts at any domain (ASCII case-insensitive).
    pub fn is_bounce(&self, sender: &str) -> bool {
        if sender.is_empty() || sender == "<>" {
            return true;
        }
        let local = sender.rfind('@').map_or(sender, |at| &sender[..at]);
        self.bounce_local_parts.iter().any(|p| p.eq_ignore_ascii_case(local))
    }

    /// Whether an untagged recipient is exempt.
    pub fn is_exempt(&self, recipient: &str) -> bool {
        let (local, domain) = match recipient.rfind('@') {
            Some(at) => (&recipient[..at], &recipient[at + 1..]),
            None => (recipient, ""),
        };
        self.exemptions.iter().any(|e| e.matches(local, domain))
    }

    /// Decides one recipient as of `now` (Unix seconds).
    pub fn check(&self, keyring: &Keyring, sender: &str, recipient: &str, now: i64) -> Verdict {
        let reason = match keyring.verify_at(recipient, now) {
            Ok(original) => {
                return Verdict {
                    accepted: true,
                    reason: Reason::Valid,
                    deliver_to: Some(original.into()),
                    smtp_reply: None,
                    monitored: false,
                }
            }
            Err(VerifyError::Untagged) if self.is_exempt(recipient) => Reason::Exempt,
            Err(VerifyError::Untagged) if !self.is_bounce(sender) => Reason::NotBounce,
            Err(e) => Reason::from_outcome(e.outcome()),
        };
        if !reason.rejects() {
            return Verdict {
                accepted: true,
                reason,
                deliver_to: Some(recipient.to_string()),
                smtp_reply: None,
                monitored: false,
            };
        }
        if self.monitor {
            return Verdict {
                accepted: true,
                reason,
                deliver_to: Some(crate::strip(recipient).into_owned()),
                smtp_reply: None,
                monitored: true,
            };
        }
        Verdict { accepted: false, reason, deliver_to: None, smtp_reply: reason.smtp_reply(), monitored: false }
    }

    /// [`Policy::check`] with the system clock.
    pub fn check_now(&self, keyring: &Keyring, sender: &str, recipient: &str) -> Verdict {
        self.check(keyring, sender, recipient, days::unix_now())
    }
}
