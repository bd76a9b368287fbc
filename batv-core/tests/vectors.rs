//! The test vectors of `tests/vectors/`, reproduced byte for byte: `batv-scheme.tsv` (both
//! schemes, docs/scheme.md) and `exim-prvs.tsv` (made by a real Exim 4.96 `${prvs}`).

use batv_core::{Keyring, Outcome};
use batv_test_support::{noon_utc, vector_rows as rows};

fn check_row(keys: &Keyring, address: &str, now: i64, want: &str) {
    let signed = keys.sign_at(address, now).unwrap();
    assert_eq!(signed, want, "signing {address:?}");
    let original = keys.verify_at(want, now).unwrap();
    assert_eq!(original.to_string(), address, "verifying {want:?}");
    assert_eq!(&*batv_core::strip(want), address.as_bytes());
    // Any change to the tag's hex is caught.
    let mut tampered = want.to_string().into_bytes();
    let hex_at = want.find("prvs=").unwrap() + 9;
    tampered[hex_at] = if tampered[hex_at] == b'0' { b'1' } else { b'0' };
    let tampered = String::from_utf8(tampered).unwrap();
    assert_eq!(keys.status_at(&tampered, now), Outcome::BadSignature, "{tampered:?}");
}

#[test]
fn batv_scheme_vectors() {
    let rows = rows("batv-scheme.tsv");
    for r in &rows {
        let [algorithm, secret, key, address, now, lifetime, signed] = &r[..] else {
            panic!("bad row {r:?}")
        };
        let text = format!("lifetime-days {lifetime}\nkey {key} {algorithm} text:{secret}\n");
        let keys = Keyring::parse(&text).unwrap();
        check_row(&keys, address, now.parse().unwrap(), signed);
    }
    assert_eq!(rows.len(), 6);
}

#[test]
fn exim_prvs_vectors() {
    let rows = rows("exim-prvs.tsv");
    for r in &rows {
        let [date, secret, key, address, signed] = &r[..] else { panic!("bad row {r:?}") };
        let keys = Keyring::parse(&format!("key {key} hmac-sha1 text:{secret}\n")).unwrap();
        let now = noon_utc(date);
        check_row(&keys, address, now, signed);
        // Exim's tag expires 7 days after signing: valid through that whole day, then not.
        assert_eq!(keys.status_at(signed, now + 7 * 86_400 + 43_199), Outcome::Valid);
        assert_eq!(keys.status_at(signed, now + 7 * 86_400 + 43_200), Outcome::Expired);
        // A remote MTA that smashes case: hmac-sha1 retries with the domain, then the whole
        // address, lower-cased, which recovers an address that was signed in lower case.
        let (tag, addr) = signed.split_at(16);
        if addr == addr.to_ascii_lowercase() {
            let (local, domain) = addr.rsplit_once('@').unwrap();
            let smashed_domain = format!("{tag}{local}@{}", domain.to_ascii_uppercase());
            assert_eq!(keys.status_at(&smashed_domain, now), Outcome::Valid, "{smashed_domain}");
            let smashed_all = format!("{tag}{}", addr.to_ascii_uppercase());
            assert_eq!(keys.status_at(&smashed_all, now), Outcome::Valid, "{smashed_all}");
        } else {
            // Signed in mixed case: the lower-cased form is a different address.
            let lowered = format!("{tag}{}", addr.to_ascii_lowercase());
            assert_eq!(keys.status_at(&lowered, now), Outcome::BadSignature, "{lowered}");
        }
        // And upper-case hex, which Exim itself rejects, is accepted here.
        let upper = signed.replacen(&signed[5..15], &signed[5..15].to_ascii_uppercase(), 1);
        assert_eq!(keys.status_at(&upper, now), Outcome::Valid, "{upper}");
    }
    assert_eq!(rows.len(), 5);
}
