//! The bounce policy (docs/scheme.md, "Bounce policy") on arbitrary sender and recipient
//! octets.
//!
//! Input: one flags byte (bit 0 monitor mode, bit 1 exemptions, bit 2 extra bounce local
//! parts, bit 3 no bounce local parts at all, bits 4-7 the day offset), then
//! `sender NUL recipient`.
//! Invariants: the verdict follows the five rules of "Bounce policy", with independent
//! admission, verification, bounce and exemption tests (a malformed recipient is rejected
//! whatever the sender); a reject carries the SMTP reply of the table and no address, an
//! accept the address to deliver to and no reply; monitor mode accepts, keeps the reason and
//! delivers to the recipient stripped (to nothing when it is not an address); and good mail is
//! never rejected: whatever the sender, the signed form of the stripped recipient is accepted
//! and delivered to it for its lifetime.
#![no_main]

use batv_core::{Policy, Reason, Signed};
use batv_fuzz::*;
use libfuzzer_sys::fuzz_target;

const EXEMPT: [&str; 3] = ["postmaster@", "@lists.example.org", "dmarc@example.com"];

fuzz_target!(|data: &[u8]| {
    let Some((&flags, rest)) = data.split_first() else { return };
    let (sender, recipient) = match rest.iter().position(|&b| b == 0) {
        Some(i) => (&rest[..i], &rest[i + 1..]),
        None => (rest, &[][..]),
    };
    let now = NOW + (i64::from(flags >> 4) - 4) * 86_400;
    let monitor = flags & 1 != 0;
    let exempting = flags & 2 != 0;
    let bounce_parts: &[&str] = match (flags & 4 != 0, flags & 8 != 0) {
        (_, true) => &[],
        (true, false) => &["MAILER-DAEMON", "postmaster"],
        (false, false) => &["mailer-daemon"],
    };

    let mut policy = Policy::default();
    policy.set_monitor(monitor);
    if exempting {
        for e in EXEMPT {
            policy.add_exempt(e).expect("a valid exemption");
        }
    }
    if flags & 12 != 0 {
        policy.set_bounce_local_parts(bounce_parts).expect("valid local parts");
    }
    let ring = keyring();
    let v = policy.check(ring, sender, recipient, now);

    // Rule by rule.
    let is_bounce = oracle_admit(sender) == Want::Null || {
        let (local, _) = split_at_last_at(sender);
        bounce_parts.iter().any(|p| p.as_bytes().eq_ignore_ascii_case(local))
    };
    let is_exempt = exempting && {
        let (l, d) = split_at_last_at(recipient);
        l.eq_ignore_ascii_case(b"postmaster")
            || d.eq_ignore_ascii_case(b"lists.example.org")
            || (l.eq_ignore_ascii_case(b"dmarc") && d.eq_ignore_ascii_case(b"example.com"))
    };
    let verified = oracle_verify(recipient, now);
    let want = match &verified {
        Ok(_) => Reason::Valid,
        Err(batv_core::VerifyError::Untagged) if is_exempt => Reason::Exempt,
        Err(batv_core::VerifyError::Untagged) if !is_bounce => Reason::NotBounce,
        Err(e) => reason_of(e),
    };
    let show = (String::from_utf8_lossy(sender), String::from_utf8_lossy(recipient));
    assert_eq!(v.reason, want, "check{show:?} at {now}");
    match oracle_reply(want) {
        Some(_) if monitor => {
            assert!(v.accepted && v.monitored && v.smtp_reply.is_none(), "{v:?}");
            // The recipient stripped; what is not an address has none.
            let stripped = match oracle_admit(recipient) {
                Want::Malformed(p) if !is_tag_problem(p) => None,
                _ => Some(String::from_utf8(oracle_strip(recipient)).expect("admitted as text")),
            };
            assert_eq!(v.deliver_to, stripped, "monitored check{show:?}");
        }
        Some(reply) => {
            assert!(!v.accepted && !v.monitored && v.deliver_to.is_none(), "{v:?}");
            assert_eq!(v.smtp_reply, Some(reply));
        }
        None => {
            assert!(v.accepted && !v.monitored && v.smtp_reply.is_none(), "{v:?}");
            let deliver = verified.unwrap_or_else(|_| recipient.to_vec());
            assert_eq!(v.deliver_to.map(String::into_bytes), Some(deliver));
        }
    }

    // Good mail is never rejected: a bounce to the signed recipient, within its lifetime,
    // whatever the sender says.
    let plain = batv_core::strip(recipient);
    let mut buf = [0u8; batv_core::SIGNED_MAX];
    if let Ok(Signed::Written(n)) = ring.sign_into(&*plain, now, &mut buf) {
        let signed = &buf[..n];
        for later in [now, now + 7 * 86_400, now - 86_400] {
            let v = policy.check(ring, sender, signed, later);
            let shown = String::from_utf8_lossy(signed);
            assert!(v.accepted && v.reason == Reason::Valid, "{shown} from {:?}: {v:?}", show.0);
            assert_eq!(v.deliver_to.as_deref().map(str::as_bytes), Some(&*plain));
        }
    }
});
