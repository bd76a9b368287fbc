//! Input that is not an address never makes `batv` panic: every line gets its output line, and
//! standard error names the line and what is wrong with it.

mod common;

use common::Scratch;
use std::ffi::OsString;
use std::os::unix::ffi::OsStringExt;

const NOW: &str = "1795700000";
const KEYRING: &str = "key 1 hmac-sha256 hex:00112233445566778899aabbccddeeff\n";

fn scratch(name: &str) -> Scratch {
    Scratch::with_keyring(name, KEYRING)
}

fn long_address(len: usize) -> Vec<u8> {
    let mut a = vec![b'a'; len - "@example.com".len()];
    a.extend_from_slice(b"@example.com");
    a
}

/// (input line, words the message for it must contain); `None`: the line is fine.
fn bad_lines() -> Vec<(Vec<u8>, Option<&'static str>)> {
    vec![
        (b"good@example.com".to_vec(), None),
        (b"prvs=".to_vec(), Some("the key number after prvs= is not a digit")),
        (b"prvs=1234567890=".to_vec(), Some("no local@domain address follows the tag")),
        (b"user.example.com".to_vec(), Some("no '@'")),
        (b"@example.com".to_vec(), Some("local part")),
        (b"user@".to_vec(), Some("domain")),
        (long_address(300), Some("300 octets")),
        (long_address(239), Some("239 octets")), // 239 + 16 = 255: the signed form is too long
        (b"nul\0byte@example.com".to_vec(), Some("control character")),
        (b"bell\x07@example.com".to_vec(), Some("control character")),
        (b"del\x7f@example.com".to_vec(), Some("control character")),
        (
            b"cr\rinside@example.com".to_vec(),
            Some("control character"),
        ),
        (b"<user@example.com>".to_vec(), Some("give the address inside <...>")),
        (b" user@example.com".to_vec(), Some("whitespace outside a quoted local part")),
        (b"user@example.com ".to_vec(), Some("whitespace outside a quoted local part")),
        (b"caf\xe9@example.com".to_vec(), Some("not UTF-8")),
        (b"\xff\xfe".to_vec(), Some("not UTF-8")),
        (long_address(100_000), Some("100000 octets")),
        (b"".to_vec(), None),      // the null sender: stays empty
        (long_address(238), None), // exactly 254 once signed
        (b"tail@example.com".to_vec(), None),
    ]
}

#[test]
fn sign_on_stdin_keeps_lines_aligned_and_names_each_bad_line() {
    let s = scratch("bad-sign-stdin");
    let cases = bad_lines();
    let mut input = Vec::new();
    for (line, _) in &cases {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    let run = s.run(&["--now", NOW, "sign"], &input);
    run.expect_code(1);
    let out = run.out();
    let lines: Vec<&str> = out.split_terminator('\n').collect();
    assert_eq!(
        lines.len(),
        cases.len(),
        "one output line per input line: {out:?}"
    );
    let messages: Vec<&str> = run.stderr.lines().collect();
    let mut bad = 0;
    for (i, ((input, problem), output)) in cases.iter().zip(&lines).enumerate() {
        let n = i + 1;
        match problem {
            Some(words) => {
                bad += 1;
                assert_eq!(*output, "", "line {n} must print an empty line");
                let message = messages
                    .iter()
                    .find(|m| m.starts_with(&format!("batv: line {n}: ")))
                    .unwrap_or_else(|| panic!("no message for line {n}: {}", run.stderr));
                assert!(message.contains(words), "line {n}: {message}");
                // The message is short even for a huge line, and escapes what it shows.
                assert!(message.len() < 300, "{message}");
                assert!(!message.bytes().any(|b| b < 0x20), "{message:?}");
            }
            None if input.is_empty() => assert_eq!(*output, ""),
            None => {
                assert!(output.starts_with("prvs=1790"), "line {n}: {output}");
                assert_eq!(output.len(), input.len() + 16, "line {n}");
            }
        }
    }
    assert_eq!(messages.len(), bad, "{}", run.stderr);
}

#[test]
fn sign_arguments_get_the_same_treatment() {
    let s = scratch("bad-sign-args");
    // An argument cannot hold a NUL (execve ends it there); every other case can be one.
    for (line, problem) in bad_lines().into_iter().filter(|(l, _)| !l.contains(&0)) {
        let mut cmd = s.command();
        cmd.args(["--now", NOW, "sign", "--"])
            .arg(OsString::from_vec(line.clone()));
        let run = s.run_command(cmd, b"");
        match problem {
            Some(words) => {
                run.expect_code(1);
                assert_eq!(run.out(), "\n");
                assert!(
                    run.stderr.starts_with("batv: argument 1: "),
                    "{}",
                    run.stderr
                );
                assert!(run.stderr.contains(words), "{}", run.stderr);
            }
            None => {
                run.expect_code(0);
            }
        }
    }
}

#[test]
fn verify_and_status_answer_every_bad_line_with_an_outcome() {
    let s = scratch("bad-verify");
    let cases: Vec<(&[u8], &str)> = vec![
        (b"", "untagged"),
        (b"prvs=", "malformed"),
        (b"prvs=1234567890=", "malformed"),
        (b"PRVS=1234567890=user", "malformed"),
        (b"prvs=1790c1c5ba=user@", "malformed"),
        (b"prvs=1790c1c5ba=nul\0@example.com", "malformed"),
        (b"prvs=1790c1c5bz=user@example.com", "malformed"),
        (b"prvs=x790c1c5ba=user@example.com", "malformed"),
        (b"prvs=1790c1c5ba=caf\xe9@example.com", "malformed"),
        (b"\xff", "malformed"),
        (b"user@example.com", "untagged"),
        (b"no-at-sign", "untagged"),
        (b"prvs=5790c1c5ba=user@example.com", "unknown-key"),
        (b"prvs=1790c1c5ba=user@example.com", "bad-signature"),
    ];
    let mut input = Vec::new();
    let mut want = String::new();
    for (line, word) in &cases {
        input.extend_from_slice(line);
        input.push(b'\n');
        want.push_str(word);
        want.push('\n');
    }
    let mut long = b"prvs=1790c1c5ba=".to_vec();
    long.extend(long_address(300));
    input.extend_from_slice(&long);
    input.push(b'\n');
    want.push_str("malformed\n");
    // Over 254 octets is not an address, tagged or not; so is a line cut at 4096 octets.
    input.extend(long_address(255));
    input.push(b'\n');
    want.push_str("malformed\n");
    input.extend(long_address(50_000));
    want.push_str("malformed\n");

    let run = s.run(&["--now", NOW, "status"], &input);
    assert_eq!(run.expect_code(0).out(), want);
    let run = s.run(&["--now", NOW, "verify"], &input);
    assert_eq!(run.expect_code(1).out(), want);
    assert!(run.stderr.is_empty(), "{}", run.stderr);

    let mut cmd = s.command();
    cmd.args(["--now", NOW, "verify"])
        .arg(OsString::from_vec(b"prvs=\xff@x".to_vec()));
    assert_eq!(s.run_command(cmd, b"").expect_code(1).out(), "malformed\n");
}

#[test]
fn strip_gives_back_what_it_cannot_strip_and_check_rejects_it() {
    let s = scratch("bad-strip");
    let input =
        b"prvs=1790c1c5ba=ok@example.com\nnul\0@example.com\n\xff@example.com\nplain@example.com\n";
    let run = s.run(&["strip"], input);
    // Octets that are not UTF-8 come back as they are; a control character cannot go on an
    // output line, so that line is empty and the reason is named.
    assert_eq!(run.expect_code(1).stdout, b"ok@example.com\n\n\xff@example.com\nplain@example.com\n");
    assert!(run.stderr.contains("line 2: \"nul\\0@example.com\": it contains a control character"), "{}", run.stderr);

    // Not an address is malformed whatever the sender, with the reply of docs/scheme.md.
    let run = s.run(&["--now", NOW, "check", "--sender", "friend@example.net"], input);
    let out = run.expect_code(1).out();
    let lines: Vec<&str> = out.split_terminator('\n').collect();
    assert_eq!(lines.len(), 4, "{out:?}");
    assert!(lines[0].starts_with("reject\tbad-signature"), "{out}");
    let malformed = "reject\tmalformed\t550 5.7.1 Rejected: malformed address or BATV tag";
    assert_eq!((lines[1], lines[2]), (malformed, malformed));
    assert_eq!(lines[3], "accept\tnot-bounce\tplain@example.com");

    // A sender's octets need not be UTF-8 to tell whether it is a bounce.
    let mut cmd = s.command();
    cmd.args(["check", "--sender"])
        .arg(OsString::from_vec(b"\xff@x".to_vec()));
    cmd.args(["--recipient", "a@example.com"]);
    let run = s.run_command(cmd, b"");
    assert_eq!(run.expect_code(0).out(), "accept\tnot-bounce\ta@example.com\n");
}

#[test]
fn a_huge_line_without_newline_is_reported_not_buffered() {
    let s = scratch("bad-huge");
    let input = vec![b'x'; 8 << 20];
    let run = s.run(&["--now", NOW, "sign"], &input);
    run.expect_code(1);
    assert_eq!(run.out(), "\n");
    assert!(
        run.stderr.contains("line 1") && run.stderr.contains("8388608 octets"),
        "{}",
        run.stderr
    );
}
