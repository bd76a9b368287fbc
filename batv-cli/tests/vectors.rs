//! The test vectors of `tests/vectors/` through the real `batv` binary: what Exim 4.96's `${prvs}` produced, and
//! the project's scheme vectors, signed and verified on the command line and on stdin.

mod common;

use common::{noon_utc, vector_rows, Scratch};

#[test]
fn exim_prvs_rows_sign_and_verify_byte_for_byte() {
    let rows = vector_rows("exim-prvs.tsv");
    for (i, row) in rows.iter().enumerate() {
        let [date, secret, key, address, signed] = &row[..] else {
            panic!("exim-prvs.tsv row {} has {} fields", i + 1, row.len())
        };
        let s = Scratch::new("exim");
        let keys = s.write_keyring(
            "exim.keys",
            &format!("# shared with exim\nkey {key} hmac-sha1 text:{secret}\n"),
            0o600,
        );
        let keys = keys.to_str().unwrap();
        let now = noon_utc(date).to_string();

        let run = s.run(&["--keys", keys, "--now", &now, "sign", address], b"");
        run.expect_code(0);
        assert_eq!(run.out(), format!("{signed}\n"), "sign, row {}", i + 1);

        // The same through stdin, with a CRLF line end.
        let run = s.run(
            &["--keys", keys, "--now", &now, "sign"],
            format!("{address}\r\n").as_bytes(),
        );
        assert_eq!(
            run.expect_code(0).out(),
            format!("{signed}\n"),
            "sign on stdin, row {}",
            i + 1
        );

        let run = s.run(&["--keys", keys, "--now", &now, "verify", signed], b"");
        assert_eq!(
            run.expect_code(0).out(),
            format!("{address}\n"),
            "verify, row {}",
            i + 1
        );

        // Exim compares the hex case-sensitively; we accept either case.
        let upper =
            format!("{}{}", &signed[..9], signed[9..15].to_ascii_uppercase()) + &signed[15..];
        let run = s.run(&["--keys", keys, "--now", &now, "status", &upper], b"");
        assert_eq!(
            run.expect_code(0).out(),
            "valid\n",
            "upper-case hex, row {}",
            i + 1
        );

        // A 7-day tag is valid through its expiry day (signing day + 7), and one day early
        // (a signer whose clock runs a day ahead, skew 1); outside that it has expired.
        let at = |days: i64| (noon_utc(date) + days * 86_400).to_string();
        for (days, want, code) in [
            (7, address.as_str(), 0),
            (8, "expired", 1),
            (-1, address, 0),
            (-2, "expired", 1),
        ] {
            let run = s.run(&["--keys", keys, "--now", &at(days), "verify", signed], b"");
            assert_eq!(
                run.expect_code(code).out(),
                format!("{want}\n"),
                "row {}, day {days}",
                i + 1
            );
        }

        // A different secret does not verify it.
        let other = s.write_keyring(
            "other.keys",
            &format!("key {key} hmac-sha1 text:{secret}x\n"),
            0o600,
        );
        let run = s.run(
            &[
                "--keys",
                other.to_str().unwrap(),
                "--now",
                &now,
                "verify",
                signed,
            ],
            b"",
        );
        assert_eq!(run.expect_code(1).out(), "bad-signature\n");
    }
}

#[test]
fn scheme_vectors_sign_on_stdin_and_verify() {
    for (i, row) in vector_rows("batv-scheme.tsv").iter().enumerate() {
        let [algorithm, secret, key, address, now, lifetime, signed] = &row[..] else {
            panic!("batv-scheme.tsv row {} has {} fields", i + 1, row.len())
        };
        let s = Scratch::new("scheme");
        let keys = s.write_keyring(
            "scheme.keys",
            &format!("lifetime-days {lifetime}\nkey {key} {algorithm} text:{secret}\n"),
            0o600,
        );
        let keys = keys.to_str().unwrap();
        let run = s.run(
            &["--keys", keys, "--now", now, "sign"],
            format!("{address}\n").as_bytes(),
        );
        assert_eq!(
            run.expect_code(0).out(),
            format!("{signed}\n"),
            "row {}",
            i + 1
        );
        let run = s.run(
            &["--keys", keys, "--now", now, "verify"],
            format!("{signed}\n").as_bytes(),
        );
        assert_eq!(
            run.expect_code(0).out(),
            format!("{address}\n"),
            "row {}",
            i + 1
        );
        let run = s.run(&["strip", signed], b"");
        assert_eq!(
            run.expect_code(0).out(),
            format!("{address}\n"),
            "row {}",
            i + 1
        );
    }
}
