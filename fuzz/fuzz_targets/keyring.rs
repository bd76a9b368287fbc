//! Keyring-file parsing on arbitrary text.
//!
//! Invariants: a keyring that parses is usable (1-10 keys, its sign key among them, lifetime
//! 1-365, skew 0-7) and survives `to_file_text` and a re-parse unchanged (same keys, settings
//! and signatures); an error names a line of the input; and no error, in `Display` or
//! `Debug`, echoes a secret: a word that follows `base64:`, `hex:` or `text:` never appears,
//! and a word echoed from the file is short and has no `:`.
#![no_main]

use batv_core::{Keyring, KeyringErrorKind};
use batv_fuzz::NOW;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let text = batv_fuzz::text(data);
    match Keyring::parse(&text) {
        Ok(ring) => check_usable(&ring),
        Err(e) => {
            let lines = text.split('\n').count();
            let line = e.line.expect("a parse error names its line");
            assert!((1..=lines).contains(&line), "line {line} of {lines}: {e}");
            assert!(e.path.is_none());
            for shown in [e.to_string(), format!("{e:?}"), format!("{:?}", e.kind)] {
                assert_no_secret(&shown);
            }
            if let KeyringErrorKind::UnknownDirective(w) | KeyringErrorKind::UnknownScheme(w) = &e.kind {
                assert!(w.len() <= 40 && !w.contains(':'), "echoes a word that may be a secret: {w:?}");
            }
        }
    }
});

/// The prefixes of a secret are only ever followed by `,`, a space or the end in the error
/// messages' own text; anything else is text from the file.
fn assert_no_secret(shown: &str) {
    for prefix in ["base64:", "hex:", "text:"] {
        for (i, _) in shown.match_indices(prefix) {
            let next = shown[i + prefix.len()..].chars().next();
            assert!(
                matches!(next, None | Some(' ' | ',')),
                "an error shows what follows {prefix}: {shown:?}"
            );
        }
    }
}

fn check_usable(ring: &Keyring) {
    let numbers: Vec<u8> = ring.keys().map(|k| k.number()).collect();
    assert!((1..=10).contains(&numbers.len()));
    assert!(numbers.windows(2).all(|w| w[0] < w[1]), "keys in number order, once each");
    assert!(numbers.contains(&ring.signing_key().number()));
    assert!((1..=365).contains(&ring.lifetime_days()));
    assert!(ring.skew_days() <= 7);
    // Debug never shows a secret (it cannot know them all, but it must redact the field).
    assert!(format!("{ring:?}").contains("<redacted>"));

    let again = match Keyring::parse(&ring.to_file_text()) {
        Ok(k) => k,
        Err(e) => panic!("to_file_text does not re-parse: {e}"),
    };
    let shape = |k: &Keyring| {
        (
            k.keys().map(|k| (k.number(), k.scheme())).collect::<Vec<_>>(),
            k.signing_key().number(),
            k.lifetime_days(),
            k.skew_days(),
        )
    };
    assert_eq!(shape(ring), shape(&again));
    for addr in ["user@example.com", "User.Name@Example.COM"] {
        let a = ring.sign_at(addr, NOW).map(|s| s.into_owned());
        let b = again.sign_at(addr, NOW).map(|s| s.into_owned());
        assert_eq!(a, b);
        // Every key verifies what the sign key signed, in both copies.
        if let Ok(s) = a {
            assert!(again.verify_at(&s, NOW).is_ok());
            assert!(ring.verify_at(&s, NOW).is_ok());
        }
    }
}
