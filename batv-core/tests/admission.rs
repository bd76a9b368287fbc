//! Admission and the wire format through the public API: what raw octets are (docs/scheme.md,
//! "Admission"), how tags parse and are written ("Wire format"), and the wild shapes `strip`
//! removes ("Strip").

use batv_core::{admit, strip, unbracket, AddressProblem, Admission, Keyring, SignError, Signed, Tag};
use AddressProblem::*;

const NOW: i64 = 1_795_700_000;

fn problem(raw: &[u8]) -> Option<AddressProblem> {
    match admit(raw) {
        Admission::Malformed(p) => Some(p),
        _ => None,
    }
}

fn tag(s: &str) -> Tag<'_> {
    match admit(s.as_bytes()) {
        Admission::Tagged(t) => t,
        other => panic!("{s:?} is not a tag: {other:?}"),
    }
}

#[test]
fn the_null_sender_in_its_three_spellings() {
    for null in [&b""[..], b"<>", b"\"<>\""] {
        assert_eq!(admit(null), Admission::Null, "{null:?}");
    }
    assert_eq!(problem(b"< >"), Some(AngleBrackets));
}

#[test]
fn what_is_not_an_address() {
    let long = [b'a'; 255];
    let cases: &[(&[u8], AddressProblem)] = &[
        (&long, TooLong { len: 255 }),
        (b"\xff@example.com", NotUtf8),
        (b"prvs=1790c1c5ba=\xff@example.com", NotUtf8),
        (b"us\0er@example.com", ControlCharacter),
        (b"\tuser@example.com", ControlCharacter),
        (b"user@example.com\r", ControlCharacter),
        (b"<user@example.com>", AngleBrackets),
        (b"John <j@example.com>", AngleBrackets),
        (b"\"john doe\"@<example.com>", AngleBrackets),
        (b" user@example.com", Whitespace),
        (b"user@exa mple.com", Whitespace),
        ("us\u{a0}er@example.com".as_bytes(), Whitespace),
        (b"\"a\" \"b\"@example.com", QuotedLocalPart),
        (b"\"a \\\"@example.com", QuotedLocalPart), // the closing quote is escaped
        (b"\"xy@example.com", QuotedLocalPart),
        (b"\"a\"b@example.com", QuotedLocalPart),
        (b"\"prvs=1790c1c5ba=user@example.com", QuotedLocalPart),
        (b"\"prvs=1790c1c5ba=a\"b@example.com", QuotedLocalPart),
    ];
    for (raw, want) in cases {
        assert_eq!(problem(raw), Some(*want), "{:?}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn what_is_an_address() {
    let fits = [b'a'; 254];
    let untagged: &[&[u8]] = &[
        b"user@example.com",
        b"postmaster",
        b"\"john doe\"@example.com",
        b"\"<john>\"@example.com",
        b"\"a\\\" b\"@example.com",
        "jos\u{e9}@ex\u{e4}mple.org".as_bytes(),
        &fits,
    ];
    for raw in untagged {
        assert!(matches!(admit(raw), Admission::Untagged(_)), "{:?}", String::from_utf8_lossy(raw));
    }
}

#[test]
fn the_new_form() {
    let t = tag("prvs=1790c1c5ba=user@example.com");
    assert_eq!((t.key_number(), t.day_stamp(), t.mac()), (1, 790, [0xc1, 0xc5, 0xba]));
    assert_eq!(t.original.as_contiguous(), Some("user@example.com"));
    let t = tag("prvs=74759482dc=list=owner@lists.example.org");
    assert_eq!(t.original.to_string(), "list=owner@lists.example.org");
    assert_eq!(tag("PRVS=1790C1C5BA=user@example.com").mac(), [0xc1, 0xc5, 0xba]);
}

#[test]
fn the_quoted_and_the_old_form_give_two_pieces() {
    let t = tag("\"prvs=0790e9e584=john doe\"@example.com");
    assert_eq!(t.original.to_string(), "\"john doe\"@example.com");
    assert_eq!(t.original.as_contiguous(), None);
    let t = tag("prvs=user/1790c1c5ba@example.com");
    assert_eq!(t.original.pieces(), ["user", "@example.com"]);
    // An `=` at the tenth octet of an old form's local part is not a new form.
    let t = tag("prvs=abcdefghij=x/1790c1c5ba@example.com");
    assert_eq!(t.original.to_string(), "abcdefghij=x@example.com");
    assert_eq!((t.key_number(), t.day_stamp()), (1, 790));
}

#[test]
fn malformed_tags_are_named() {
    let cases: &[(&str, AddressProblem)] = &[
        ("prvs=", BadKeyNumber),
        ("prvs=1234567890=", NoAddress),
        ("prvs=1234567890=@example.com", NoAddress),
        ("prvs=1234567890=user@", NoAddress),
        ("prvs=x790c1c5ba=user@example.com", BadKeyNumber),
        ("prvs=17x0c1c5ba=user@example.com", BadDayStamp),
        ("prvs=1790c1c5bz=user@example.com", BadHex),
        ("prvs=1790c1c5ba-user@example.com", MissingSeparator),
        ("prvs=234d5777c=user@example.com", BadDayStamp),
        ("prvs=user@example.com", BadKeyNumber),
        ("\"prvs=1790c1c5ba=\"@example.com", NoAddress),
        ("prvs=u/1790c1c5bx@example.com", BadHex),
        ("prvs=abcdefghij=x/1790c1c5bz@example.com", BadHex), // an old form with bad hex
    ];
    for (input, want) in cases {
        assert_eq!(problem(input.as_bytes()), Some(*want), "{input:?}");
        assert!(want.is_tag_problem(), "{want:?}");
    }
}

#[test]
fn a_tag_starts_with_prvs_in_any_case_after_an_optional_quote() {
    for yes in ["prvs=", "PrVs=x@y", "\"PRVS=1\"@x"] {
        assert!(problem(yes.as_bytes()).is_some_and(AddressProblem::is_tag_problem), "{yes}");
    }
    for no in ["prvs@x", "\"prvs\"@x", "prvs:x@y", " prvs=x@y", "<prvs=x@y>", "msprvs1=x@y", "\"\"prvs=x@y"] {
        let a = admit(no.as_bytes());
        assert!(!matches!(a, Admission::Tagged(_)), "{no}");
        assert!(!matches!(a, Admission::Malformed(p) if p.is_tag_problem()), "{no}: {a:?}");
    }
}

#[test]
fn unbracket_removes_one_pair() {
    assert_eq!(unbracket(b"<user@example.com>"), b"user@example.com");
    assert_eq!(unbracket(b"<>"), b"");
    assert_eq!(unbracket(b"<<a@b>>"), b"<a@b>");
    assert_eq!(unbracket(b"user@example.com"), b"user@example.com");
    assert_eq!(unbracket(b"<user@example.com"), b"<user@example.com");
    assert_eq!(unbracket(b"<@a.example,@b.example:user@example.com>"), b"user@example.com");
    assert_eq!(unbracket(b"<@relay.example>"), b"@relay.example");
}

#[test]
fn what_cannot_be_signed() {
    let k = Keyring::parse("key 1 hmac-sha1 text:secret\n").unwrap();
    let longest = format!("{}@example.com", "a".repeat(254 - 16 - 12));
    let over = format!("a{longest}");
    let cases = [
        ("user", Some(NoAt)),
        ("@example.com", Some(EmptyLocalPart)),
        ("\"\"@example.com", Some(EmptyLocalPart)),
        ("user@", Some(EmptyDomain)),
        (&longest, None),
        (&over, Some(TooLongToSign { len: 239 })),
    ];
    for (input, want) in cases {
        assert_eq!(k.sign_at(input, NOW).err(), want.map(SignError::Address), "{input}");
    }
}

#[test]
fn the_tag_goes_first_or_inside_the_quotes() {
    let k = Keyring::parse("key 1 hmac-sha1 text:secret\n").unwrap();
    let mut out = [0u8; 254];
    for (address, head, tail) in [("u@x", "prvs=1", "=u@x"), ("\"a b\"@x", "\"prvs=1", "=a b\"@x")] {
        let Ok(Signed::Written(n)) = k.sign_into(address, NOW, &mut out) else { panic!("{address}") };
        let signed = std::str::from_utf8(&out[..n]).unwrap();
        assert_eq!(n, address.len() + 16, "{signed}");
        assert!(signed.starts_with(head) && signed.ends_with(tail), "{signed}");
        assert!(matches!(admit(signed.as_bytes()), Admission::Tagged(_)), "{signed}");
    }
    assert_eq!(k.sign_into("u@x", NOW, &mut out[..18]), Err(SignError::BufferTooSmall { needed: 19 }));
}

#[test]
fn wild_shapes_are_stripped_and_nothing_else() {
    let cases = [
        ("prvs=234d5777c=user@example.com", "user@example.com"),
        ("PRVS=ab12cd=user@example.com", "user@example.com"),
        ("msprvs1=19876AbCdEfGh=bounces-123@mail.example.net", "bounces-123@mail.example.net"),
        ("btv1==4f2c0fa0b2e==user@example.com", "user@example.com"),
        ("prvs=abc=user@example.com", "prvs=abc=user@example.com"), // too short to be a tag
        ("prvs=0123456789abcdefg=u@x", "prvs=0123456789abcdefg=u@x"), // too long
        ("prvs=234d5777c=@example.com", "prvs=234d5777c=@example.com"), // no local part
        ("prvs=234d5777c=user", "prvs=234d5777c=user"),           // no domain
        ("btv1=4f2c0fa0b2e=user@example.com", "btv1=4f2c0fa0b2e=user@example.com"), // Barracuda doubles its '='
        ("user@example.com", "user@example.com"),
    ];
    for (input, want) in cases {
        assert_eq!(&*strip(input), want.as_bytes(), "{input:?}");
    }
}
