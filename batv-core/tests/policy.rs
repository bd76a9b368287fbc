//! The bounce policy (SPEC section 7), rule by rule, with exemptions and monitor mode.

use batv_core::{Keyring, Policy, Reason};

const NOW: i64 = 1_795_700_000;

fn keys() -> Keyring {
    Keyring::parse("key 1 hmac-sha256 text:policy secret\n").unwrap()
}

#[test]
fn rule_1_tagged_recipients_are_verified_whatever_the_sender() {
    let k = keys();
    let tagged = k.sign_at("user@example.com", NOW).unwrap().into_owned();
    for sender in ["", "<>", "MAILER-DAEMON@mx.example.net", "alice@example.net"] {
        let v = Policy::new().check(&k, sender, &tagged, NOW);
        assert!(v.accepted && v.reason == Reason::Valid, "{sender}: {v:?}");
        assert_eq!(v.deliver_to.as_deref(), Some("user@example.com"));
        assert_eq!(v.smtp_reply, None);
    }
    let other = Keyring::parse("key 1 hmac-sha256 text:another secret\n").unwrap();
    let forged = other.sign_at("user@example.com", NOW).unwrap().into_owned();
    let cases = [
        (forged.as_str(), Reason::BadSignature, NOW),
        (tagged.as_str(), Reason::Expired, NOW + 30 * 86_400),
        ("prvs=5790aaaaaa=user@example.com", Reason::UnknownKey, NOW),
        ("prvs=1790zzzzzz=user@example.com", Reason::Malformed, NOW),
    ];
    for (rcpt, reason, now) in cases {
        // Even ordinary mail to a bad tag is rejected: nobody legitimately writes to one.
        for sender in ["", "alice@example.net"] {
            let v = Policy::new().check(&k, sender, rcpt, now);
            assert!(!v.accepted, "{rcpt}: {v:?}");
            assert_eq!(v.reason, reason);
            assert_eq!(v.deliver_to, None);
            assert!(v.smtp_reply.unwrap().starts_with("550 5.7.1 "), "{v:?}");
        }
    }
}

#[test]
fn rules_2_to_4_for_untagged_recipients() {
    let k = keys();
    let p = Policy::new()
        .exempt("DMARC-Reports@Example.com").unwrap()
        .exempt("@lists.example.org").unwrap()
        .exempt("postmaster@").unwrap();
    let check = |sender: &str, rcpt: &str| p.check(&k, sender, rcpt, NOW);

    // Rule 2: exempt, in any case.
    for rcpt in ["dmarc-reports@example.com", "owner@LISTS.example.org", "Postmaster@any.example"] {
        let v = check("", rcpt);
        assert!(v.accepted && v.reason == Reason::Exempt, "{rcpt}: {v:?}");
        assert_eq!(v.deliver_to.as_deref(), Some(rcpt));
    }
    // Exemptions match whole parts only.
    assert_eq!(check("", "dmarc-reports@example.com.evil").reason, Reason::Untagged);
    assert_eq!(check("", "owner@sub.lists.example.org").reason, Reason::Untagged);

    // Rule 3: a bounce (null sender or mailer-daemon@ any domain, any case) is rejected.
    for sender in ["", "<>", "mailer-daemon@mx.example.net", "MAILER-DAEMON@X", "Mailer-Daemon"] {
        let v = check(sender, "user@example.com");
        assert!(!v.accepted, "{sender}");
        assert_eq!(v.reason, Reason::Untagged);
        assert_eq!(v.reason.as_str(), "untagged");
        assert!(v.smtp_reply.unwrap().starts_with("550 5.7.1"));
    }
    // Rule 4: ordinary mail is accepted.
    for sender in ["alice@example.net", "mailer-daemon-not@example.net", "daemon@example.net"] {
        let v = check(sender, "user@example.com");
        assert!(v.accepted && v.reason == Reason::NotBounce, "{sender}: {v:?}");
        assert_eq!(v.deliver_to.as_deref(), Some("user@example.com"));
    }
}

#[test]
fn bounce_local_parts_are_configurable() {
    let k = keys();
    let p = Policy::new().bounce_local_parts(["mailer-daemon", "Postmaster"]).unwrap();
    assert!(!p.check(&k, "postmaster@mx.example.net", "user@example.com", NOW).accepted);
    let none = Policy::new().bounce_local_parts(Vec::<String>::new()).unwrap();
    assert!(none.check(&k, "mailer-daemon@mx.example.net", "user@example.com", NOW).accepted);
    // The null sender is always a bounce.
    assert!(!none.check(&k, "", "user@example.com", NOW).accepted);
    assert!(Policy::new().bounce_local_parts([""]).is_err());
    assert!(Policy::new().bounce_local_parts(["a@b"]).is_err());
}

#[test]
fn monitor_mode_accepts_but_keeps_the_verdict() {
    let k = keys();
    let p = Policy::new().monitor(true);
    let v = p.check(&k, "", "user@example.com", NOW);
    assert!(v.accepted && v.monitored);
    assert_eq!(v.reason, Reason::Untagged);
    assert_eq!(v.deliver_to.as_deref(), Some("user@example.com"));
    let tagged = k.sign_at("user@example.com", NOW).unwrap().into_owned();
    let v = p.check(&k, "", &tagged, NOW + 30 * 86_400);
    assert!(v.accepted && v.monitored);
    assert_eq!(v.reason, Reason::Expired);
    assert_eq!(v.deliver_to.as_deref(), Some("user@example.com"));
    // Accepts that would have been accepted anyway are not marked.
    let v = p.check(&k, "", &tagged, NOW);
    assert!(v.accepted && !v.monitored);
}

#[test]
fn bad_exemptions_are_errors() {
    for bad in ["", "@", "user", "a\n@b"] {
        assert!(Policy::new().exempt(bad).is_err(), "{bad:?}");
    }
}
