//! Each subcommand through the real binary: arguments and stdin, output lines, exit codes, help.

mod common;

use common::Scratch;
use std::io::{BufRead, BufReader, Read, Write};
use std::sync::mpsc;
use std::time::Duration;

const NOW: &str = "1795700000"; // 2026-11-26
const DAY: i64 = 86_400;
/// Key 1 is the Exim-compatible vector key; key 2 signs.
const KEYRING: &str = "lifetime-days 7\nskew-days 1\nsign-key 2\n\
key 1 hmac-sha1 text:secret\nkey 2 hmac-sha256 hex:000102030405060708090a0b0c0d0e0f\n";

fn scratch(name: &str) -> Scratch {
    Scratch::with_keyring(name, KEYRING)
}

fn at(days: i64) -> String {
    (NOW.parse::<i64>().unwrap() + days * DAY).to_string()
}

fn sign(s: &Scratch, address: &str) -> String {
    let run = s.run(&["--now", NOW, "sign", address], b"");
    run.expect_code(0);
    run.out().trim_end_matches('\n').to_string()
}

#[test]
fn sign_prints_one_tagged_line_per_address() {
    let s = scratch("sign");
    let run = s.run(
        &[
            "--now",
            NOW,
            "sign",
            "user@example.com",
            "\"john doe\"@example.com",
            "list=owner@lists.example.org",
        ],
        b"",
    );
    let lines = run.expect_code(0).lines();
    assert_eq!(lines.len(), 3);
    assert!(
        lines[0].starts_with("prvs=2790") && lines[0].ends_with("=user@example.com"),
        "{lines:?}"
    );
    assert!(
        lines[1].starts_with("\"prvs=2790") && lines[1].ends_with("=john doe\"@example.com"),
        "{lines:?}"
    );
    assert!(
        lines[2].ends_with("=list=owner@lists.example.org"),
        "{lines:?}"
    );
    assert!(run.stderr.is_empty(), "{}", run.stderr);

    // Deterministic for one day; a tagged address and the null sender come back unchanged.
    let later_same_day = (NOW.parse::<i64>().unwrap() + 3600).to_string();
    let run = s.run(
        &[
            "--now",
            &later_same_day,
            "sign",
            &lines[0],
            "",
            "user@example.com",
        ],
        b"",
    );
    assert_eq!(
        run.expect_code(0).out(),
        format!("{}\n\n{}\n", lines[0], lines[0])
    );
}

#[test]
fn sign_uses_the_system_clock_without_now() {
    let s = scratch("sign-clock");
    let run = s.run(&["sign", "user@example.com"], b"");
    let tag = run.expect_code(0).out();
    let today = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
        / DAY;
    // The day could roll over between the two clock reads; accept either day.
    let ok = [today, today + 1]
        .iter()
        .any(|d| tag.starts_with(&format!("prvs=2{:03}", (d + 7) % 1000)));
    assert!(ok, "{tag}");
    s.run(&["verify", tag.trim_end()], b"").expect_code(0);
}

#[test]
fn stdin_mode_signs_and_verifies_many_lines_in_order() {
    let s = scratch("stdin");
    let input: String = (0..20_000)
        .map(|i| format!("user{i}@example.com\n"))
        .collect();
    let run = s.run(&["--now", NOW, "sign"], input.as_bytes());
    let signed = run.expect_code(0).out();
    let lines: Vec<&str> = signed.lines().collect();
    assert_eq!(lines.len(), 20_000);
    for (i, line) in lines.iter().enumerate() {
        assert!(
            line.starts_with("prvs=2790") && line.ends_with(&format!("=user{i}@example.com")),
            "{line}"
        );
    }
    let run = s.run(&["--now", NOW, "verify"], signed.as_bytes());
    assert_eq!(run.expect_code(0).out(), input);
    let run = s.run(&["strip"], signed.as_bytes());
    assert_eq!(run.expect_code(0).out(), input);
    let run = s.run(&["--now", NOW, "status"], signed.as_bytes());
    assert_eq!(run.expect_code(0).out(), "valid\n".repeat(20_000));
}

#[test]
fn stdin_mode_accepts_crlf_and_a_last_line_without_newline() {
    let s = scratch("crlf");
    let run = s.run(&["--now", NOW, "sign"], b"a@example.com\r\nb@example.com");
    let lines = run.expect_code(0).lines();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].ends_with("=a@example.com") && lines[1].ends_with("=b@example.com"),
        "{lines:?}"
    );
    // Empty input: no output, success.
    let run = s.run(&["--now", NOW, "sign"], b"");
    assert!(run.expect_code(0).stdout.is_empty());
}

#[test]
fn verify_prints_the_original_or_the_outcome_word() {
    let s = scratch("verify");
    let good = sign(&s, "user@example.com");
    let mut bad_hex = good.clone().into_bytes();
    bad_hex[14] = if bad_hex[14] == b'0' { b'1' } else { b'0' };
    let bad_hex = String::from_utf8(bad_hex).unwrap();
    let unknown_key = format!("prvs=7{}", &good[6..]);

    let run = s.run(&["--now", NOW, "verify", &good], b"");
    assert_eq!(run.expect_code(0).out(), "user@example.com\n");

    let cases = [
        ("user@example.com", "untagged"),
        ("prvs=27x0aaaaaa=user@example.com", "malformed"),
        (unknown_key.as_str(), "unknown-key"),
        (bad_hex.as_str(), "bad-signature"),
    ];
    for (address, word) in cases {
        let run = s.run(&["--now", NOW, "verify", address], b"");
        assert_eq!(run.expect_code(1).out(), format!("{word}\n"), "{address}");
    }
    let run = s.run(&["--now", &at(8), "verify", &good], b"");
    assert_eq!(run.expect_code(1).out(), "expired\n");
    let run = s.run(&["--now", &at(7), "verify", &good], b"");
    assert_eq!(run.expect_code(0).out(), "user@example.com\n");

    // Several addresses: one line each, in order, exit 1 when any is not valid.
    let run = s.run(
        &["--now", NOW, "verify", &good, "user@example.com", &good],
        b"",
    );
    assert_eq!(
        run.expect_code(1).out(),
        "user@example.com\nuntagged\nuser@example.com\n"
    );
    let run = s.run(
        &["--now", NOW, "verify"],
        format!("{good}\n{good}\n").as_bytes(),
    );
    run.expect_code(0);
}

#[test]
fn verify_takes_exim_style_upper_case_and_old_form_tags() {
    let s = scratch("verify-forms");
    // The Exim vector of key 1 (hmac-sha1, text:secret).
    let run = s.run(
        &["--now", NOW, "verify", "PRVS=1790C1C5BA=user@example.com"],
        b"",
    );
    assert_eq!(run.expect_code(0).out(), "user@example.com\n");
    let run = s.run(
        &["--now", NOW, "verify", "prvs=user/1790c1c5ba@example.com"],
        b"",
    );
    assert_eq!(run.expect_code(0).out(), "user@example.com\n");
}

#[test]
fn status_prints_words_and_succeeds() {
    let s = scratch("status");
    let good = sign(&s, "user@example.com");
    let input = format!("{good}\nuser@example.com\nprvs=\n\n");
    let run = s.run(&["--now", &at(30), "status"], input.as_bytes());
    assert_eq!(
        run.expect_code(0).out(),
        "expired\nuntagged\nmalformed\nuntagged\n"
    );
    let run = s.run(&["--now", NOW, "status", &good], b"");
    assert_eq!(run.expect_code(0).out(), "valid\n");
}

#[test]
fn strip_removes_tags_without_verifying() {
    let s = Scratch::new("strip");
    let run = s.run(
        &[
            "strip",
            "prvs=9999999999=user@example.com",
            "user@example.com",
            "\"prvs=0790e9e584=john doe\"@example.com",
            "prvs=user/1790c1c5ba@example.com",
            "prvs=1790c1c5ba=prvs=1790c1c5ba=nested@example.com",
            "",
        ],
        b"",
    );
    assert_eq!(
        run.expect_code(0).out(),
        "user@example.com\nuser@example.com\n\"john doe\"@example.com\nuser@example.com\nnested@example.com\n\n"
    );
}

#[test]
fn check_rejects_backscatter_and_accepts_real_bounces() {
    let s = scratch("check");
    let tagged = sign(&s, "user@example.com");
    let check = |args: &[&str]| {
        let mut all = vec!["--now", NOW, "check"];
        all.extend_from_slice(args);
        s.run(&all, b"")
    };

    // A bounce to an untagged address: the joe-job.
    for sender in ["", "<>", "MAILER-DAEMON@mx.example.net"] {
        let run = check(&["--sender", sender, "--recipient", "user@example.com"]);
        let line = run.expect_code(1).out();
        assert!(
            line.starts_with("reject\tuntagged\t550 5.7.1 "),
            "{sender:?}: {line}"
        );
    }
    // A real bounce to a tagged sender: deliver to the original address.
    let run = check(&["--sender", "", "--recipient", &tagged]);
    assert_eq!(
        run.expect_code(0).out(),
        "accept\tvalid\tuser@example.com\n"
    );
    // Ordinary mail to an untagged address.
    let run = check(&[
        "--sender",
        "friend@example.net",
        "--recipient",
        "user@example.com",
    ]);
    assert_eq!(
        run.expect_code(0).out(),
        "accept\tnot-bounce\tuser@example.com\n"
    );
    // A forged tag is rejected whoever sends it.
    let forged = format!("prvs=2790000000={}", "user@example.com");
    let run = check(&["--sender", "friend@example.net", "--recipient", &forged]);
    let line = run.expect_code(1).out();
    assert!(
        line.starts_with("reject\tbad-signature\t550 5.7.1 "),
        "{line}"
    );
    let run = s.run(
        &[
            "--now",
            &at(9),
            "check",
            "--sender",
            "",
            "--recipient",
            &tagged,
        ],
        b"",
    );
    assert!(run
        .expect_code(1)
        .out()
        .starts_with("reject\texpired\t550 5.7.1 "));

    // Several recipients: a line each, exit 1 when any is rejected.
    let run = check(&[
        "--sender",
        "",
        "--recipient",
        &tagged,
        "--recipient",
        "user@example.com",
    ]);
    let lines = run.expect_code(1).lines();
    assert_eq!(lines.len(), 2);
    assert!(
        lines[0].starts_with("accept\t") && lines[1].starts_with("reject\t"),
        "{lines:?}"
    );
}

#[test]
fn check_exemptions_bounce_local_parts_and_monitor() {
    let s = scratch("check-policy");
    let check = |args: &[&str]| {
        let mut all = vec!["--now", NOW, "check", "--sender", ""];
        all.extend_from_slice(args);
        s.run(&all, b"")
    };
    for pattern in ["dmarc@example.com", "@lists.example.com", "dmarc@"] {
        let rcpt = if pattern.starts_with('@') {
            "owner@LISTS.example.com"
        } else {
            "DMARC@example.com"
        };
        let run = check(&["--exempt", pattern, "--recipient", rcpt]);
        assert_eq!(
            run.expect_code(0).out(),
            format!("accept\texempt\t{rcpt}\n"),
            "{pattern}"
        );
    }
    let run = check(&[
        "--exempt",
        "dmarc@example.com",
        "--exempt",
        "@other.example",
        "--recipient",
        "user@example.com",
    ]);
    run.expect_code(1);

    let run = check(&["--exempt", "no-at-sign", "--recipient", "user@example.com"]);
    run.expect_code(2);
    assert!(
        run.stderr.contains("--exempt") && run.stderr.contains("no-at-sign"),
        "{}",
        run.stderr
    );

    // A glob would be a literal that matches nothing: refused, naming it and what works.
    for (pattern, instead) in [
        ("*@lists.example.com", "write '@lists.example.com' for every address of the domain"),
        ("bounces@*", "write 'bounces@' for the local part at every domain"),
        ("*@*.example.com", "list each address (user@domain), domain (@domain) or local part (user@)"),
    ] {
        let run = check(&["--exempt", pattern, "--recipient", "user@example.com"]);
        run.expect_code(2);
        assert!(
            run.stderr.contains(&format!("--exempt \"{pattern}\"")) && run.stderr.contains(instead),
            "{}",
            run.stderr
        );
    }
    // So is a pattern longer than any address.
    let long = format!("{}@example.com", "a".repeat(300));
    let run = check(&["--exempt", &long, "--recipient", "user@example.com"]);
    run.expect_code(2);
    assert!(run.stderr.contains("at most 254 octets"), "{}", run.stderr);

    // --bounce-local-part replaces the default list.
    let bounce = |parts: &[&str], sender: &str| {
        let mut all = vec![
            "--now",
            NOW,
            "check",
            "--sender",
            sender,
            "--recipient",
            "user@example.com",
        ];
        for p in parts {
            all.extend_from_slice(&["--bounce-local-part", p]);
        }
        s.run(&all, b"").code
    };
    assert_eq!(bounce(&[], "mailer-daemon@x.example"), 1);
    assert_eq!(bounce(&[], "postmaster@x.example"), 0);
    assert_eq!(bounce(&["postmaster"], "postmaster@x.example"), 1);
    assert_eq!(bounce(&["postmaster"], "mailer-daemon@x.example"), 0);
    assert_eq!(
        bounce(&["postmaster", "mailer-daemon"], "Mailer-Daemon@x.example"),
        1
    );
    assert_eq!(
        bounce(&["postmaster"], ""),
        1,
        "the null sender is always a bounce"
    );
    let run = s.run(
        &[
            "check",
            "--sender",
            "",
            "--bounce-local-part",
            "a@b",
            "--recipient",
            "u@x.example",
        ],
        b"",
    );
    run.expect_code(2);

    let run = check(&["--monitor", "--recipient", "user@example.com"]);
    let line = run.expect_code(0).out();
    assert!(
        line.starts_with(
            "accept\tuntagged\tuser@example.com\tmonitor: would reject with 550 5.7.1 "
        ),
        "{line}"
    );
}

#[test]
fn check_reads_recipients_from_stdin() {
    let s = scratch("check-stdin");
    let tagged = sign(&s, "user@example.com");
    let input = format!("{tagged}\nuser@example.com\n\n{tagged}\r\n");
    let run = s.run(&["--now", NOW, "check", "--sender", "<>"], input.as_bytes());
    let lines = run.expect_code(1).lines();
    assert_eq!(lines.len(), 4, "{lines:?}");
    assert_eq!(lines[0], "accept\tvalid\tuser@example.com");
    assert!(lines[1].starts_with("reject\tuntagged\t"));
    assert!(
        lines[2].starts_with("reject\tuntagged\t"),
        "an empty recipient is untagged: {lines:?}"
    );
    assert_eq!(lines[3], "accept\tvalid\tuser@example.com");
}

#[test]
fn now_accepts_negative_and_extreme_times() {
    let s = scratch("now");
    for now in [
        "-1",
        "-86400",
        "0",
        "-9223372036854775808",
        "9223372036854775807",
    ] {
        let run = s.run(&["--now", now, "sign", "user@example.com"], b"");
        let tag = run.expect_code(0).out();
        let run = s.run(&["--now", now, "verify", tag.trim_end()], b"");
        assert_eq!(
            run.expect_code(0).out(),
            "user@example.com\n",
            "--now {now}"
        );
    }
    // -1 is the last second of 1969-12-31, day -1: expiry day 6.
    let run = s.run(&["sign", "--now=-1", "user@example.com"], b"");
    assert!(run.expect_code(0).out().starts_with("prvs=2006"));
}

#[test]
fn usage_errors_exit_2() {
    let s = scratch("usage");
    for args in [
        &[][..],
        &["frobnicate"],
        &["check", "--recipient", "user@example.com"],
        &["--now", "yesterday", "sign", "a@example.com"],
        &["--now", "99999999999999999999", "sign", "a@example.com"],
        &["sign", "--no-such-option"],
    ] {
        let run = s.run(args, b"");
        run.expect_code(2);
        assert!(run.stdout.is_empty(), "{args:?}");
        assert!(!run.stderr.is_empty(), "{args:?}");
    }
}

#[test]
fn help_explains_every_command_and_the_exit_codes() {
    let s = Scratch::new("help");
    let run = s.run(&["--help"], b"");
    let top = run.expect_code(0).out();
    for word in [
        "keygen",
        "sign",
        "verify",
        "status",
        "strip",
        "check",
        "Exit status",
        "BATV_KEYS",
        "./batv.keys",
    ] {
        assert!(top.contains(word), "--help lacks {word}");
    }
    for (cmd, words) in [
        (
            "keygen",
            &["--rotate", "--add", "--promote", "--prune", "0600", "--scheme", "Exit status"][..],
        ),
        (
            "sign",
            &["null sender", "standard input", "creates", "Exit status"],
        ),
        (
            "verify",
            &["original address", "bad-signature", "Exit status"],
        ),
        ("status", &["outcome", "Exit status"]),
        ("strip", &["unverified", "IronPort", "Exit status"]),
        (
            "check",
            &[
                "--sender",
                "--recipient",
                "--exempt",
                "--bounce-local-part",
                "--monitor",
                "550",
                "Exit status",
            ],
        ),
    ] {
        let run = s.run(&[cmd, "--help"], b"");
        let help = run.expect_code(0).out();
        for word in words {
            assert!(help.contains(word), "batv {cmd} --help lacks {word}");
        }
    }
    let run = s.run(&["--version"], b"");
    assert!(run.expect_code(0).out().starts_with("batv "));
}

fn stderr_of(child: &mut std::process::Child) -> String {
    let mut stderr = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut stderr)
        .unwrap();
    stderr
}

/// Run as a co-process, `batv` answers each line before its input ends.
#[test]
fn answers_line_by_line_as_a_coprocess() {
    let s = scratch("coprocess");
    let mut child = s.spawn(&["--now", NOW, "sign"]);
    let mut stdin = child.stdin.take().unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    let reader = std::thread::spawn(move || {
        let mut lines = BufReader::new(stdout).lines();
        while let Some(Ok(line)) = lines.next() {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    for name in ["first", "second"] {
        stdin
            .write_all(format!("{name}@example.com\n").as_bytes())
            .unwrap();
        stdin.flush().unwrap();
        let line = rx
            .recv_timeout(Duration::from_secs(30))
            .expect("no answer while input is open");
        assert!(line.ends_with(&format!("={name}@example.com")), "{line}");
    }
    drop(stdin);
    assert!(child.wait().unwrap().success());
    reader.join().unwrap();
    let stderr = stderr_of(&mut child);
    assert!(stderr.is_empty(), "{stderr}");
}

/// `batv sign | head -1`: a reader that goes away ends batv quietly, without a panic.
#[test]
fn a_closed_stdout_ends_quietly() {
    let s = scratch("epipe");
    let mut child = s.spawn(&["--now", NOW, "sign"]);
    let mut stdin = child.stdin.take().unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let writer = std::thread::spawn(move || {
        let chunk = "user@example.com\n".repeat(10_000);
        for _ in 0..200 {
            if stdin.write_all(chunk.as_bytes()).is_err() {
                break;
            }
        }
    });
    let mut first = String::new();
    stdout.read_line(&mut first).unwrap();
    assert!(first.ends_with("=user@example.com\n"));
    drop(stdout);
    let status = child.wait().unwrap();
    writer.join().unwrap();
    let stderr = stderr_of(&mut child);
    assert_eq!(status.code(), Some(2), "{stderr}");
    assert!(stderr.is_empty(), "{stderr}");
}

/// `batv CMD ARGS` run by sh with standard output redirected by `redirect` (`>&-`,
/// `>/dev/null`, `>/dev/full`): its exit code and standard error.
fn with_stdout(s: &Scratch, redirect: &str, args: &[&str]) -> (i32, String) {
    let mut cmd = std::process::Command::new("sh");
    cmd.arg("-c")
        .arg(format!("exec \"$0\" \"$@\" {redirect}"))
        .arg(env!("CARGO_BIN_EXE_batv"))
        .args(args);
    cmd.current_dir(&s.dir).env_remove("BATV_KEYS");
    let run = s.run_command(cmd, b"user@example.com\n");
    assert!(run.stdout.is_empty());
    (run.code, run.stderr)
}

/// `batv sign >&-`: a closed standard output is an error (exit 2), as `>/dev/full` is, not
/// output silently lost; `>/dev/null` is a choice and exits 0.
#[test]
fn a_closed_stdout_at_start_is_an_error() {
    let s = scratch("closed-stdout");
    let tag = &sign(&s, "user@example.com");
    let commands: [&[&str]; 6] = [
        &["--now", NOW, "sign", "user@example.com"],
        &["--now", NOW, "sign"],
        &["--now", NOW, "verify", tag],
        &["--now", NOW, "status", tag],
        &["strip", tag],
        &["--now", NOW, "check", "--sender", "", "--recipient", tag],
    ];
    let mut lost = 0;
    for args in commands {
        let (code, stderr) = with_stdout(&s, ">&-", args);
        if code != 2 || !stderr.contains("standard output is closed") {
            lost += 1;
            eprintln!("{args:?} >&-: exit {code}, {stderr:?}");
        }
        let (code, stderr) = with_stdout(&s, ">/dev/full", args);
        assert_eq!(code, 2, "{args:?} >/dev/full: {stderr}");
        assert!(stderr.contains("cannot write standard output"), "{stderr}");
    }
    assert_eq!(lost, 0, "{lost} of {} commands exited without a word with stdout closed", commands.len());
    for args in commands {
        let (code, stderr) = with_stdout(&s, ">/dev/null", args);
        assert_eq!(code, 0, "{args:?} >/dev/null: {stderr}");
        assert!(!stderr.contains("standard output"), "{stderr}");
    }
}

/// The other streams: a closed standard input is an error only for a command that would read
/// it (no addresses given); keygen prints nothing on standard output, so a closed one is no
/// loss; with standard error closed too, the exit code still says it.
#[test]
fn closed_standard_streams_where_they_matter() {
    let s = scratch("closed-streams");
    let (code, stderr) = with_stdout(&s, "<&-", &["--now", NOW, "sign"]);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("standard input is closed"), "{stderr}");
    let (code, stderr) = with_stdout(&s, ">/dev/null <&-", &["--now", NOW, "sign", "user@example.com"]);
    assert_eq!(code, 0, "addresses as arguments need no standard input: {stderr}");
    let (code, stderr) = with_stdout(&s, "2>&- >&-", &["--now", NOW, "sign", "user@example.com"]);
    assert_eq!(code, 2, "{stderr}");
    let (code, stderr) = with_stdout(&s, ">&-", &["--now", NOW, "keygen", "--add"]);
    assert_eq!(code, 0, "{stderr}");
    assert!(stderr.contains("added key 3"), "{stderr}");
}
