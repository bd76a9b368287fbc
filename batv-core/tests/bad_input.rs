//! Hostile and broken input: nothing panics, and each input gets an error or outcome that names
//! what is wrong.

use batv_core::{AddressProblem as P, Keyring, Outcome, Policy, SignError, VerifyError};

const NOW: i64 = 1_795_700_000;

fn keys() -> Keyring {
    Keyring::parse("key 1 hmac-sha256 text:bad input secret\n").unwrap()
}

#[test]
fn sign_rejects_what_is_not_an_address() {
    let k = keys();
    let long = format!("{}@example.com", "a".repeat(240));
    let cases: &[(&str, SignError)] = &[
        ("user", SignError::Address(P::NoAt)),
        ("@example.com", SignError::Address(P::EmptyLocalPart)),
        ("\"@example.com", SignError::Address(P::QuotedLocalPart)),
        ("\"\"@example.com", SignError::Address(P::EmptyLocalPart)),
        ("user@", SignError::Address(P::EmptyDomain)),
        ("us\0er@example.com", SignError::Address(P::ControlCharacter)),
        ("user@example.com\r\n", SignError::Address(P::ControlCharacter)),
        ("user@exa\x7fmple.com", SignError::Address(P::ControlCharacter)),
        (&long, SignError::Address(P::TooLongToSign { len: long.len() })),
    ];
    for (input, want) in cases {
        assert_eq!(k.sign_at(input, NOW).unwrap_err(), *want, "{input:?}");
        assert!(!want.to_string().is_empty());
    }
    // The longest address that still fits, and the null sender, unchanged.
    let fits = format!("{}@example.com", "a".repeat(254 - 16 - 12));
    assert_eq!(k.sign_at(&fits, NOW).unwrap().len(), 254);
    assert_eq!(k.sign_at("", NOW).unwrap(), "");
    // `<>` and `"<>"` are the null sender too, unchanged, as the policy reads them.
    assert_eq!(k.sign_at("<>", NOW).unwrap(), "<>");
    assert_eq!(k.sign_at("\"<>\"", NOW).unwrap(), "\"<>\"");
    // A 1 MiB address is an error, not a crash.
    let huge = format!("{}@example.com", "x".repeat(1 << 20));
    assert!(matches!(k.sign_at(&huge, NOW), Err(SignError::Address(P::TooLong { .. }))));
    // Neither is what is not text, nor a tag that is not one.
    let mut buf = [0u8; batv_core::SIGNED_MAX];
    assert_eq!(k.sign_into(b"\xffuser@example.com", NOW, &mut buf), Err(SignError::Address(P::NotUtf8)));
    assert_eq!(k.sign_at("prvs=x@example.com", NOW), Err(SignError::Address(P::BadKeyNumber)));
}

#[test]
fn sign_refuses_angle_brackets_and_unquoted_whitespace() {
    // SMTP writes a path as `<user@example.com>`; the address to sign is the one inside. RFC
    // 5321 allows a space (or `<`, `>`) in a local part only inside a quoted string, and in a
    // domain never: no guess at what was meant, an error that names the problem.
    let k = keys();
    let cases: &[(&str, P)] = &[
        ("<user@example.com>", P::AngleBrackets),
        ("<user@example.com", P::AngleBrackets),
        ("user@example.com>", P::AngleBrackets),
        ("Joe User <user@example.com>", P::AngleBrackets),
        ("<prvs@example.com>", P::AngleBrackets),
        ("< >", P::AngleBrackets),
        (" user@example.com", P::Whitespace),
        ("user@example.com ", P::Whitespace),
        ("us er@example.com", P::Whitespace),
        ("user@exa mple.com", P::Whitespace),
        ("user @example.com", P::Whitespace),
        ("user\u{a0}@example.com", P::Whitespace), // a no-break space, as pasted from a document
        ("\"john doe\" smith@example.com", P::QuotedLocalPart), // more after the quotes
        ("\"john doe@example.com", P::QuotedLocalPart),          // the quote never closes
        ("\"xy@example.com", P::QuotedLocalPart), // a tag on it could not be read back
        (" ", P::Whitespace),
        // Tabs and line breaks are control characters, as before.
        ("\tuser@example.com", P::ControlCharacter),
        ("user@example.com\r\n", P::ControlCharacter),
    ];
    for (input, want) in cases {
        assert_eq!(k.sign_at(input, NOW), Err(SignError::Address(*want)), "{input:?}");
        let mut buf = [0u8; batv_core::SIGNED_MAX];
        assert_eq!(k.sign_into(input, NOW, &mut buf), Err(SignError::Address(*want)), "{input:?}");
    }
    let brackets = SignError::Address(P::AngleBrackets).to_string();
    assert!(brackets.contains("angle brackets") && brackets.contains("<...>"), "{brackets}");
    let space = SignError::Address(P::Whitespace).to_string();
    assert!(space.contains("space") && space.contains("quoted local part"), "{space}");

    // A quoted local part keeps its spaces (and may hold `<`, `>`), and signs as before: the
    // tag goes inside the quotes (tests/vectors/batv-scheme.tsv has this one).
    let sha256 = Keyring::parse("key 0 hmac-sha256 text:secret\n").unwrap();
    assert_eq!(
        sha256.sign_at("\"john doe\"@example.com", 1_795_700_000).unwrap(),
        "\"prvs=0790e9e584=john doe\"@example.com"
    );
    let quoted = ["\"john doe\"@example.com", "\" x \"@example.com", "\"<john>\"@example.com", "\"a\\\" b\"@x.org"];
    for q in quoted {
        let signed = k.sign_at(q, NOW).unwrap();
        assert_eq!(k.verify_at(&signed, NOW).map(String::from), Ok(q.to_string()), "{q:?}");
    }
    // `<>` alone is the null sender and comes back unchanged, borrowed.
    assert_eq!(k.sign_at("<>", NOW), Ok("<>".to_string()));
}

#[test]
fn verify_names_what_is_wrong() {
    let k = keys();
    let cases: &[(&str, VerifyError)] = &[
        ("", VerifyError::Untagged),
        ("user@example.com", VerifyError::Untagged),
        ("<>", VerifyError::Untagged),
        ("postmaster", VerifyError::Untagged),
        ("prvs=", VerifyError::Malformed(P::BadKeyNumber)),
        ("PRVS=", VerifyError::Malformed(P::BadKeyNumber)),
        ("prvs=1234567890=", VerifyError::Malformed(P::NoAddress)),
        ("prvs=1234567890=user", VerifyError::Malformed(P::NoAddress)),
        ("prvs=1790abcdef=us\0er@example.com", VerifyError::Malformed(P::ControlCharacter)),
        ("prvs=1790abcdef\nuser@example.com", VerifyError::Malformed(P::ControlCharacter)),
        ("prvs=1790abcdeg=user@example.com", VerifyError::Malformed(P::BadHex)),
        ("us\0er@example.com", VerifyError::Malformed(P::ControlCharacter)),
        ("<prvs=1790abcdef=user@example.com>", VerifyError::Malformed(P::AngleBrackets)),
        (" prvs=1790abcdef=user@example.com", VerifyError::Malformed(P::Whitespace)),
        ("prvs=3790abcdef=user@example.com", VerifyError::UnknownKey(3)),
        ("prvs=1790abcdef=user@example.com", VerifyError::BadSignature),
    ];
    for (input, want) in cases {
        assert_eq!(k.verify_at(input, NOW).unwrap_err(), *want, "{input:?}");
        let text = want.to_string();
        assert!(text.starts_with(want.outcome().as_str()), "{text}");
    }
    let huge = format!("prvs=1790abcdef={}@example.com", "x".repeat(1 << 20));
    assert_eq!(k.verify_at(&huge, NOW), Err(VerifyError::Malformed(P::TooLong { len: huge.len() })));
    assert_eq!(k.status_at(b"\xff@example.com", NOW), Outcome::Malformed);
    // strip gives back what it cannot strip, as it is.
    assert_eq!(&*batv_core::strip(&huge), huge.as_bytes());
}

#[test]
fn nothing_panics_on_odd_strings() {
    let k = keys();
    let p = Policy::default();
    let odd = [
        "", "\0", "@", "@@", "\"", "\"\"", "\"prvs=", "prvs=\"", "prvs==", "prvs=1", "prvs=1234567890",
        "prvs=1234567890=@", "prvs=1234567890=a@", "prvs=a/1234567890@", "prvs=/1234567890@x",
        "prvs=é/1234567890@x", "prvs=1234567890=é@日本", "\u{feff}prvs=1", "prvs=12345678é0=a@b",
        "prvs=1234567890=prvs=1234567890=a@b",
    ];
    for s in odd {
        let _ = k.sign_at(s, NOW);
        let _ = k.status_at(s, NOW);
        let stripped = batv_core::strip(s);
        assert!(!batv_core::is_tagged(&stripped), "{s:?} -> {stripped:?}");
        for now in [i64::MIN, 0, NOW, i64::MAX] {
            let _ = p.check(&k, s, s, now);
        }
    }
}
