//! The bounce policy (SPEC section 7) on arbitrary sender and recipient pairs.
//!
//! Input: one flags byte (bit 0 monitor mode, bit 1 exemptions, bit 2 extra bounce local
//! part, bits 4-7 the day offset), then `sender NUL recipient`.
//! Invariants: the verdict follows the four rules of section 7 with an independent bounce and
//! exemption test; rejects carry a 550 reply and no delivery address, accepts the reverse;
//! monitor mode keeps the reason but accepts; and good mail is never rejected: whatever the
//! sender, the signed form of the recipient is accepted and delivered to the plain address.
#![no_main]

use batv_core::{Outcome, Policy, Reason};
use batv_fuzz::*;
use libfuzzer_sys::fuzz_target;

const EXEMPT: [&str; 3] = ["postmaster@", "@lists.example.org", "dmarc@example.com"];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let (sender, recipient) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let (sender, recipient) = (text(sender), text(recipient));
    let now = NOW + (i64::from(flags >> 4) - 4) * 86_400;
    let monitor = flags & 1 != 0;
    let exempting = flags & 2 != 0;
    let extra_bounce = flags & 4 != 0;

    let mut policy = Policy::new().monitor(monitor);
    if exempting {
        for e in EXEMPT {
            policy = policy.exempt(e).expect("a valid exemption");
        }
    }
    if extra_bounce {
        policy = policy.bounce_local_parts(["MAILER-DAEMON", "postmaster"]).expect("valid parts");
    }
    let ring = keyring();
    let v = policy.check(ring, &sender, &recipient, now);

    // Rule by rule, with an independent bounce and exemption test.
    let is_bounce = {
        let local = sender.rfind('@').map_or(&*sender, |at| &sender[..at]);
        sender.is_empty()
            || &*sender == "<>"
            || local.eq_ignore_ascii_case("mailer-daemon")
            || (extra_bounce && local.eq_ignore_ascii_case("postmaster"))
    };
    let is_exempt = exempting && {
        let (l, d) = recipient.rfind('@').map_or((&*recipient, ""), |at| (&recipient[..at], &recipient[at + 1..]));
        l.eq_ignore_ascii_case("postmaster")
            || d.eq_ignore_ascii_case("lists.example.org")
            || (l.eq_ignore_ascii_case("dmarc") && d.eq_ignore_ascii_case("example.com"))
    };
    let status = ring.status_at(&recipient, now);
    let want = match status {
        Outcome::Valid => Reason::Valid,
        Outcome::Untagged if is_exempt => Reason::Exempt,
        Outcome::Untagged if !is_bounce => Reason::NotBounce,
        Outcome::Untagged => Reason::Untagged,
        o => {
            assert_eq!(v.reason.as_str(), o.as_str());
            v.reason
        }
    };
    assert_eq!(v.reason, want, "check({sender:?}, {recipient:?}) at {now}");
    if want.rejects() {
        if monitor {
            assert!(v.accepted && v.monitored && v.smtp_reply.is_none());
            assert_eq!(v.deliver_to.as_deref(), Some(&*batv_core::strip(&recipient)));
        } else {
            assert!(!v.accepted && !v.monitored && v.deliver_to.is_none());
            assert!(v.smtp_reply.is_some_and(|r| r.starts_with("550 5.7.1 ")));
        }
    } else {
        assert!(v.accepted && !v.monitored && v.smtp_reply.is_none());
        let deliver = match ring.verify_at(&recipient, now) {
            Ok(o) => String::from(o),
            Err(_) => recipient.to_string(),
        };
        assert_eq!(v.deliver_to, Some(deliver));
    }

    // Good mail is never rejected: a bounce to the signed recipient, within its lifetime,
    // whatever the sender says.
    let plain = batv_core::strip(&recipient);
    if let Ok(signed) = ring.sign_at(&plain, now) {
        if signed != plain {
            for later in [now, now + 7 * 86_400, now - 86_400] {
                let v = policy.check(ring, &sender, &signed, later);
                assert!(v.accepted && v.reason == Reason::Valid, "{signed} from {sender:?}: {v:?}");
                assert_eq!(v.deliver_to.as_deref(), Some(&*plain));
            }
        }
    }
});
