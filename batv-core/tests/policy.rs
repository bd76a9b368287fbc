//! The bounce policy (docs/scheme.md, "Bounce policy"), rule by rule, with exemptions and
//! monitor mode.

use batv_core::{Keyring, Policy, Reason};

const NOW: i64 = 1_795_700_000;

fn keys() -> Keyring {
    Keyring::parse("key 1 hmac-sha256 text:policy secret\n").unwrap()
}

#[test]
fn rule_1_tagged_recipients_are_verified_whatever_the_sender() {
    let k = keys();
    let tagged = k.sign_at("user@example.com", NOW).unwrap();
    for sender in ["", "<>", "MAILER-DAEMON@mx.example.net", "alice@example.net"] {
        let v = Policy::default().check(&k, sender, &tagged, NOW);
        assert!(v.accepted && v.reason == Reason::Valid, "{sender}: {v:?}");
        assert_eq!(v.deliver_to.as_deref(), Some("user@example.com"));
        assert_eq!(v.smtp_reply, None);
    }
    let other = Keyring::parse("key 1 hmac-sha256 text:another secret\n").unwrap();
    let forged = other.sign_at("user@example.com", NOW).unwrap();
    let cases = [
        (forged.as_str(), Reason::BadSignature, NOW),
        (tagged.as_str(), Reason::Expired, NOW + 30 * 86_400),
        ("prvs=5790aaaaaa=user@example.com", Reason::UnknownKey, NOW),
        ("prvs=1790zzzzzz=user@example.com", Reason::Malformed, NOW),
    ];
    for (rcpt, reason, now) in cases {
        // Even ordinary mail to a bad tag is rejected: nobody legitimately writes to one.
        for sender in ["", "alice@example.net"] {
            let v = Policy::default().check(&k, sender, rcpt, now);
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
    let mut p = Policy::default();
    for pattern in ["DMARC-Reports@Example.com", "@lists.example.org", "postmaster@"] {
        p.add_exempt(pattern).unwrap();
    }
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
    let mut p = Policy::default();
    assert_eq!(p.bounce_local_parts().collect::<Vec<_>>(), ["mailer-daemon"]);
    p.set_bounce_local_parts(["mailer-daemon", "Postmaster"]).unwrap();
    assert!(!p.check(&k, "postmaster@mx.example.net", "user@example.com", NOW).accepted);
    let mut none = Policy::default();
    none.set_bounce_local_parts(Vec::<String>::new()).unwrap();
    assert!(none.check(&k, "mailer-daemon@mx.example.net", "user@example.com", NOW).accepted);
    // The null sender is always a bounce, in each of its spellings.
    for null in ["", "<>", "\"<>\""] {
        assert!(!none.check(&k, null, "user@example.com", NOW).accepted, "{null}");
    }
    // A bad list leaves the policy as it was.
    assert!(p.set_bounce_local_parts(["ok", ""]).is_err());
    assert!(p.set_bounce_local_parts(["a@b"]).is_err());
    assert!(!p.check(&k, "postmaster@mx.example.net", "user@example.com", NOW).accepted);
}

#[test]
fn monitor_mode_accepts_but_keeps_the_verdict() {
    let k = keys();
    let mut p = Policy::default();
    p.set_monitor(true);
    let v = p.check(&k, "", "user@example.com", NOW);
    assert!(v.accepted && v.monitored);
    assert_eq!(v.reason, Reason::Untagged);
    assert_eq!(v.deliver_to.as_deref(), Some("user@example.com"));
    let tagged = k.sign_at("user@example.com", NOW).unwrap();
    let v = p.check(&k, "", &tagged, NOW + 30 * 86_400);
    assert!(v.accepted && v.monitored);
    assert_eq!(v.reason, Reason::Expired);
    assert_eq!(v.deliver_to.as_deref(), Some("user@example.com"));
    // Accepts that would have been accepted anyway are not marked.
    let v = p.check(&k, "", &tagged, NOW);
    assert!(v.accepted && !v.monitored);
    // What is not text has no address to deliver to.
    let v = p.check(&k, "", b"\xff@example.com", NOW);
    assert!(v.accepted && v.monitored && v.deliver_to.is_none());
    assert_eq!(v.reason, Reason::Malformed);
}

#[test]
fn bad_exemptions_are_errors() {
    let mut p = Policy::default();
    for bad in ["", "@", "user", "a\n@b"] {
        assert!(p.add_exempt(bad).is_err(), "{bad:?}");
    }
    assert_eq!(p, Policy::default(), "nothing was added");
}

#[test]
fn what_is_not_an_address_is_rejected_as_malformed_whatever_the_sender() {
    let k = keys();
    let long = format!("{}@example.com", "a".repeat(250));
    let cases: [&[u8]; 5] = [b"us\0er@example.com", b"\xfe@example.com", long.as_bytes(), b"<user@example.com>", b"a b@example.com"];
    for rcpt in cases {
        for sender in ["", "alice@example.net"] {
            let v = Policy::default().check(&k, sender, rcpt, NOW);
            assert!(!v.accepted && v.reason == Reason::Malformed, "{rcpt:?}: {v:?}");
            assert_eq!(v.smtp_reply, Reason::Malformed.smtp_reply());
        }
    }
}

#[test]
fn with_an_unusable_keyring_only_what_needs_no_key_is_decided() {
    let k = keys();
    let mut p = Policy::default();
    p.add_exempt("dmarc@example.com").unwrap();
    let broken: Result<&Keyring, &str> = Err("keyring missing");
    let tagged = k.sign_at("user@example.com", NOW).unwrap();
    // Ordinary mail and an exempt recipient are accepted without a key...
    let v = p.check_with(broken, "friend@example.net", "user@example.com", NOW).unwrap();
    assert!(v.accepted && v.reason == Reason::NotBounce);
    let v = p.check_with(broken, "", "dmarc@example.com", NOW).unwrap();
    assert!(v.accepted && v.reason == Reason::Exempt);
    // ...and everything that could reject waits for the keyring, in monitor mode too.
    for (sender, rcpt) in [("", "user@example.com"), ("friend@example.net", tagged.as_str()), ("", "prvs=x@example.com")] {
        assert_eq!(p.check_with(broken, sender, rcpt, NOW), Err("keyring missing"), "{sender} {rcpt}");
        p.set_monitor(true);
        assert_eq!(p.check_with(broken, sender, rcpt, NOW), Err("keyring missing"), "monitor: {sender} {rcpt}");
        p.set_monitor(false);
    }
    // With the keyring, the same answers as check.
    for (sender, rcpt) in [("", "user@example.com"), ("", tagged.as_str()), ("friend@example.net", "user@example.com")] {
        assert_eq!(p.check_with(Ok::<_, ()>(&k), sender, rcpt, NOW), Ok(p.check(&k, sender, rcpt, NOW)));
    }
}

/// What an exemption matches, written the plain way: split both at the last `@`, compare the
/// parts the pattern names, ASCII case-insensitively.
fn plain_match(pattern: &str, recipient: &[u8]) -> bool {
    let split = |s: &[u8]| match s.iter().rposition(|&b| b == b'@') {
        Some(at) => (s[..at].to_vec(), s[at + 1..].to_vec()),
        None => (s.to_vec(), Vec::new()),
    };
    let (pl, pd) = split(pattern.as_bytes());
    let (rl, rd) = split(recipient);
    (pl.is_empty() || pl.eq_ignore_ascii_case(&rl)) && (pd.is_empty() || pd.eq_ignore_ascii_case(&rd))
}

#[test]
fn exemptions_match_as_the_plain_rule_says() {
    let patterns = [
        "dmarc@example.com", "@lists.example.org", "postmaster@", "\"a@b\"@example.com", "Ünï@example.com",
        "@example.com", "owner@lists.example.org", "x@", "\"a@b\"@",
    ];
    let recipients: [&[u8]; 16] = [
        b"dmarc@example.com", b"DMARC@EXAMPLE.COM", b"dmarc@example.com.evil", b"owner@LISTS.example.org",
        b"owner@sub.lists.example.org", b"postmaster", b"Postmaster@any.example", b"\"a@b\"@example.com",
        b"\"A@B\"@Example.Com", b"b\"@example.com", "Ünï@example.com".as_bytes(), "ünï@example.com".as_bytes(),
        b"@example.com", b"x@", b"", b"x@y@example.net",
    ];
    let k = keys();
    for chosen in 0..(1u32 << patterns.len()) {
        let mut p = Policy::default();
        let set: Vec<&str> = patterns.iter().enumerate().filter(|(i, _)| chosen & (1 << i) != 0).map(|(_, p)| *p).collect();
        for pattern in &set {
            p.add_exempt(pattern).unwrap();
        }
        for rcpt in recipients {
            let want = set.iter().any(|pattern| plain_match(pattern, rcpt));
            assert_eq!(p.is_exempt(rcpt), want, "{set:?} {:?}", String::from_utf8_lossy(rcpt));
        }
    }
    // As the policy decides: an exempt bounce is accepted, any other untagged bounce is not.
    let mut p = Policy::default();
    p.add_exempt("@lists.example.org").unwrap();
    assert_eq!(p.check(&k, "", "owner@Lists.Example.Org", NOW).reason, Reason::Exempt);
    assert_eq!(p.check(&k, "", "owner@example.org", NOW).reason, Reason::Untagged);
}

#[test]
fn twenty_thousand_exemptions_each_work() {
    let k = keys();
    let mut p = Policy::default();
    let n = 20_000;
    // A third of each form.
    let pattern = |i: usize| match i % 3 {
        0 => format!("User{i}@Example.com"),
        1 => format!("@D{i}.example"),
        _ => format!("lp{i}@"),
    };
    let hit = |i: usize| match i % 3 {
        0 => format!("user{i}@EXAMPLE.com"),
        1 => format!("anyone@d{i}.EXAMPLE"),
        _ => format!("LP{i}@somewhere.example"),
    };
    let miss = |i: usize| match i % 3 {
        0 => format!("user{i}x@example.com"),
        1 => format!("anyone@sub.d{i}.example"),
        _ => format!("lp{i}x@somewhere.example"),
    };
    for i in 0..n {
        p.add_exempt(&pattern(i)).unwrap();
    }
    let (mut exempt, mut rejected) = (0, 0);
    for i in 0..n {
        let v = p.check(&k, "", &hit(i), NOW);
        exempt += usize::from(v.accepted && v.reason == Reason::Exempt);
        let v = p.check(&k, "", &miss(i), NOW);
        rejected += usize::from(!v.accepted && v.reason == Reason::Untagged);
    }
    assert_eq!((exempt, rejected), (n, n));
}

#[test]
fn a_pattern_longer_than_an_address_is_refused() {
    use batv_core::{PolicyError, MAX_ADDRESS_LEN};
    let mut p = Policy::default();
    let mega = format!("{}@example.com", "a".repeat(1 << 20));
    let e = p.add_exempt(&mega).unwrap_err();
    assert_eq!(e, PolicyError::ExemptionTooLong { len: mega.len() });
    assert!(e.to_string().contains(&format!("at most {MAX_ADDRESS_LEN} octets")), "{e}");
    // The longest address is still a pattern; one octet more is not.
    let longest = format!("{}@example.com", "a".repeat(MAX_ADDRESS_LEN - 12));
    assert_eq!(longest.len(), MAX_ADDRESS_LEN);
    let mut with_longest = Policy::default();
    with_longest.add_exempt(&longest).unwrap();
    assert!(with_longest.is_exempt(&longest));
    assert!(matches!(p.add_exempt(&format!("a{longest}")), Err(PolicyError::ExemptionTooLong { .. })));
    assert!(p.add_exempt(&"@".repeat(1 << 20)).is_err());
    assert_eq!(p, Policy::default(), "nothing was added");
}

#[test]
fn wildcards_are_refused_with_the_form_that_works() {
    use batv_core::PolicyError;
    let mut p = Policy::default();
    let cases = [
        ("*@lists.example.com", Some("@lists.example.com"), "write '@lists.example.com' for every address of the domain"),
        ("bounces@*", Some("bounces@"), "write 'bounces@' for the local part at every domain"),
        ("*@*", None, "list each address"),
        ("*@*.example.com", None, "list each address"),
        ("bounces@*.example.com", None, "list each address"),
        ("bounce*@example.com", None, "list each address"),
        ("*@", None, "list each address"),
        ("@*", None, "list each address"),
    ];
    for (pattern, instead, says) in cases {
        let e = p.add_exempt(pattern).unwrap_err();
        assert_eq!(e, PolicyError::ExemptionWildcard { instead: instead.map(str::to_owned) }, "{pattern}");
        let message = e.to_string();
        assert!(message.contains("'*' is not a wildcard") && message.contains(says), "{pattern}: {message}");
    }
    assert_eq!(p, Policy::default(), "nothing was added");
}
