//! Large and hostile input to the `batv` command: a 1 MiB address, the longest
//! argument Linux passes, NUL, CR and LF inside addresses, invalid UTF-8 and binary noise, on
//! standard input and as arguments, through every subcommand.
//!
//! For all of it: no panic (a panic exits 101), exit 0 or 1 (never 2: the input is bad, the
//! set-up is fine), exactly one output line per input line (so a pipeline stays aligned and no
//! input can inject a line of its own), the expected answer on each line, and a bounded
//! standard error that does not echo a huge input back. The 10,000,000-line runs with peak
//! memory are in tests/reliability/run (release binary).

use std::io::Write;
use std::os::unix::ffi::OsStrExt;
use std::process::{Command, Stdio};

const NOW: &str = "1795700000";
const KEYRING: &str = "key 1 hmac-sha256 text:hostile input test key\n";
const MIB: usize = 1 << 20;
/// The longest single argument execve accepts on Linux (MAX_ARG_STRLEN, 32 pages), NUL included.
const MAX_ARG: usize = 32 * 4096 - 1;

mod common;

use common::Scratch;

fn scratch(name: &str) -> Scratch {
    Scratch::with_keyring(&format!("hostile-{name}"), KEYRING)
}

struct Run {
    code: i32,
    stdout: Vec<u8>,
    stderr: Vec<u8>,
}

impl Run {
    fn lines(&self) -> Vec<&[u8]> {
        assert!(self.stdout.is_empty() || self.stdout.ends_with(b"\n"), "output ends mid-line");
        self.stdout.split(|&b| b == b'\n').collect::<Vec<_>>().split_last().map_or(vec![], |(_, l)| l.to_vec())
    }
}

fn batv(s: &Scratch, args: &[&[u8]], stdin: &[u8]) -> Run {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_batv"));
    cmd.arg("--keys").arg(s.dir.join("batv.keys")).arg("--now").arg(NOW);
    for a in args {
        cmd.arg(std::ffi::OsStr::from_bytes(a));
    }
    cmd.env_remove("BATV_KEYS").current_dir(&s.dir);
    cmd.stdin(Stdio::piped()).stdout(Stdio::piped()).stderr(Stdio::piped());
    let mut child = cmd.spawn().expect("run batv");
    let mut input = child.stdin.take().unwrap();
    let data = stdin.to_vec();
    // Feed standard input from another thread, so a large output cannot deadlock the pipes.
    let feeder = std::thread::spawn(move || {
        let _ = input.write_all(&data); // batv may exit before reading everything (it must not)
    });
    let out = child.wait_with_output().unwrap();
    feeder.join().unwrap();
    let code = out.status.code().unwrap_or(-1);
    assert_ne!(code, 101, "batv panicked: {}", String::from_utf8_lossy(&out.stderr));
    assert!(code != -1, "batv was killed by a signal");
    Run { code, stdout: out.stdout, stderr: out.stderr }
}

/// A short printable rendering of bytes for assertion messages (never a megabyte of them).
fn show(b: &[u8]) -> String {
    let s = String::from_utf8_lossy(&b[..b.len().min(80)]).escape_debug().to_string();
    if b.len() > 80 { format!("{s}... ({} octets)", b.len()) } else { s }
}

fn big_address(len: usize, tagged: bool) -> Vec<u8> {
    let mut a = Vec::with_capacity(len);
    if tagged {
        a.extend_from_slice(b"prvs=1790c1c5ba=");
    }
    a.resize(len - "@example.com".len(), b'a');
    a.extend_from_slice(b"@example.com");
    a
}

/// The five subcommands with what they print for an over-long input line (see
/// docs/scheme.md, "Where the faces differ").
const COMMANDS: [(&str, &[u8]); 5] = [
    ("sign", b""),
    ("verify", b"malformed"),
    ("status", b"malformed"),
    ("strip", b""),
    ("check", b""),
];

const MALFORMED_REPLY: &[u8] = b"reject\tmalformed\t550 5.7.1 Rejected: malformed address or BATV tag";

fn command_args(cmd: &str) -> Vec<&'static [u8]> {
    match cmd {
        "check" => vec![b"check", b"--sender", b""],
        "sign" => vec![b"sign"],
        "verify" => vec![b"verify"],
        "status" => vec![b"status"],
        _ => vec![b"strip"],
    }
}

/// The arguments that hand one address to a command (`check` takes it as `--recipient`).
fn with_address<'a>(cmd: &str, address: &'a [u8]) -> Vec<&'a [u8]> {
    let mut args = command_args(cmd);
    if cmd == "check" {
        args.push(b"--recipient");
    }
    args.push(address);
    args
}

/// What each command prints for `good@example.com`.
fn good_line(cmd: &str, s: &Scratch) -> Vec<u8> {
    match cmd {
        "sign" => batv(s, &[b"sign", b"good@example.com"], b"").stdout.trim_ascii_end().to_vec(),
        "verify" => b"untagged".to_vec(),
        "status" => b"untagged".to_vec(),
        "strip" => b"good@example.com".to_vec(),
        _ => b"reject\tuntagged\t550 5.7.1 Bounce rejected: this address did not send the original message (no BATV tag)".to_vec(),
    }
}

#[test]
fn a_one_mebibyte_address_on_standard_input() {
    let s = scratch("mib");
    for tagged in [false, true] {
        let mut input = big_address(MIB, tagged);
        input.extend_from_slice(b"\ngood@example.com\n");
        for (cmd, bad_answer) in COMMANDS {
            let r = batv(&s, &command_args(cmd), &input);
            let lines = r.lines();
            assert_eq!(lines.len(), 2, "{cmd}: one line per input line");
            assert!(lines[0] == bad_answer, "{cmd} (tagged {tagged}): {}", show(lines[0]));
            assert!(lines[1] == &good_line(cmd, &s)[..], "{cmd}: the line after: {}", show(lines[1]));
            let want_code = if cmd == "status" { 0 } else { 1 };
            assert_eq!(r.code, want_code, "{cmd}: {}", String::from_utf8_lossy(&r.stderr));
            assert!(r.stderr.len() < 2048, "{cmd}: {} octets of stderr for one bad line", r.stderr.len());
            if matches!(cmd, "sign" | "strip" | "check") {
                let err = String::from_utf8_lossy(&r.stderr);
                assert!(err.contains("line 1") && err.contains(&MIB.to_string()), "{cmd}: {err}");
            }
        }
    }
}

#[test]
fn the_longest_argument_linux_passes() {
    let s = scratch("maxarg");
    let big = big_address(MAX_ARG, false);
    for (cmd, bad_answer) in COMMANDS {
        let mut args = command_args(cmd);
        if cmd == "check" {
            args.extend([b"--recipient".as_slice(), &big, b"--recipient", b"good@example.com"]);
        } else {
            args.extend([big.as_slice(), b"good@example.com"]);
        }
        let r = batv(&s, &args, b"");
        let lines = r.lines();
        assert_eq!(lines.len(), 2, "{cmd}");
        match cmd {
            // strip gives back what it cannot strip, whatever its length (on standard input a
            // line over 4096 octets is refused as too long instead), and check judges it: not
            // an address, so malformed.
            "strip" => assert!(lines[0] == big.as_slice(), "{}", show(lines[0])),
            "check" => assert!(lines[0] == MALFORMED_REPLY, "{}", show(lines[0])),
            _ => assert!(lines[0] == bad_answer, "{cmd}: {}", show(lines[0])),
        }
        assert!(lines[1] == &good_line(cmd, &s)[..], "{cmd}: {}", show(lines[1]));
        assert!(r.stderr.len() < 2048, "{cmd}: stderr of {} octets", r.stderr.len());
    }
}

/// (input line as bytes, what it is) for lines with control characters and bad UTF-8.
fn hostile_lines() -> Vec<(&'static [u8], &'static str)> {
    vec![
        (b"nul\0inside@example.com", "NUL inside"),
        (b"\0", "a lone NUL"),
        (b"cr\rinside@example.com", "CR inside"),
        (b"trailing-cr@example.com\r\r", "two CRs at the end"),
        (b"prvs=1790c1c5ba=nul\0@example.com", "NUL in a tagged address"),
        (b"\xff@example.com", "an invalid octet"),
        (b"caf\xc3@example.com", "a cut multi-octet character"),
        (b"\xc0\xaf@example.com", "an overlong encoding"),
        (b"\xed\xa0\x80@example.com", "a UTF-16 surrogate"),
        (b"prvs=1790c1c5ba=\xfe@example.com", "bad UTF-8 in a tagged address"),
        (b"esc\x1b[31mred@example.com", "a terminal escape"),
        (b"tab\tinside@example.com", "a TAB (would split check's fields)"),
    ]
}

#[test]
fn control_characters_and_invalid_utf8_on_standard_input() {
    let s = scratch("stdin");
    let cases = hostile_lines();
    let mut input = Vec::new();
    for (line, _) in &cases {
        input.extend_from_slice(line);
        input.push(b'\n');
    }
    input.extend_from_slice(b"good@example.com\r\n"); // CRLF ends a line like LF
    for (cmd, _) in COMMANDS {
        let r = batv(&s, &command_args(cmd), &input);
        let lines = r.lines();
        assert_eq!(lines.len(), cases.len() + 1, "{cmd}: one output line per input line");
        for (i, (line, what)) in cases.iter().enumerate() {
            let l = lines[i];
            let control = line.iter().any(|&b| b < 0x20 || b == 0x7f);
            match cmd {
                // Not an address: the empty placeholder line, and the reason on stderr.
                "sign" => assert!(l.is_empty(), "{cmd} {what}: {}", show(l)),
                // strip gives it back unless a control character would break the line.
                "strip" if control => assert!(l.is_empty(), "{cmd} {what}: {}", show(l)),
                "strip" => assert!(l == *line, "{cmd} {what}: {}", show(l)),
                // A verdict, without the address.
                "check" => assert!(l == MALFORMED_REPLY, "{cmd} {what}: {}", show(l)),
                _ => assert!(l == b"malformed", "{cmd} {what}: {}", show(l)),
            }
            // No control character reaches the output.
            assert!(!l.iter().any(|&b| b < 0x20 && b != b'\t'), "{cmd} {what}");
        }
        assert!(lines[cases.len()] == &good_line(cmd, &s)[..], "{cmd}: the CRLF line: {}", show(lines[cases.len()]));
        let err = String::from_utf8_lossy(&r.stderr);
        if cmd == "sign" {
            for (i, (_, what)) in cases.iter().enumerate() {
                assert!(err.contains(&format!("line {}:", i + 1)), "{cmd}: stderr names line {} ({what}): {err}", i + 1);
            }
            assert!(err.contains("not UTF-8") && err.contains("control character"), "{cmd}: {err}");
        }
        if matches!(cmd, "sign" | "strip") {
            // Shown escaped: no raw control character or ESC reaches the terminal.
            assert!(!r.stderr.iter().any(|&b| b == 0 || b == 0x1b || b == b'\r'), "{cmd}: raw bytes on stderr");
        }
        let want_code = if cmd == "status" { 0 } else { 1 };
        assert_eq!(r.code, want_code, "{cmd}: {err}");
    }
}

#[test]
fn an_argument_with_a_newline_inside_gives_one_line() {
    // On the command line an LF can sit inside an address; it must not come out as two lines.
    let s = scratch("argv-lf");
    let signed = batv(&s, &[b"sign", b"user@example.com"], b"").stdout;
    let signed = signed.trim_ascii_end();
    let mut tagged_lf = signed.to_vec();
    tagged_lf.splice(16..16, b"x\n".iter().copied());
    for arg in [b"lf\ninjected@example.com".as_slice(), b"a@example.com\nb@example.com", &tagged_lf] {
        for (cmd, _) in COMMANDS {
            let r = batv(&s, &with_address(cmd, arg), b"");
            assert_eq!(r.lines().len(), 1, "{cmd} {}: {}", show(arg), show(&r.stdout));
            if cmd == "status" {
                // status reports and does not judge: exit 0, the word says it.
                assert!(r.stdout == b"malformed\n" || r.stdout == b"untagged\n", "{}", show(&r.stdout));
            } else {
                assert_ne!(r.code, 0, "{cmd} accepted an address with a newline inside");
            }
            let out = &r.stdout;
            assert!(!out.windows(8).any(|w| w == b"injected" || w == b"b@exampl"), "{cmd}: {}", show(out));
        }
    }
    for arg in [b"\xff\xfe@example.com".as_slice(), b"caf\xc3@example.com"] {
        for (cmd, _) in COMMANDS {
            let r = batv(&s, &with_address(cmd, arg), b"");
            assert_eq!(r.lines().len(), 1, "{cmd}");
        }
    }
}

#[test]
fn a_hostile_sender_for_check() {
    // The sender is not printed, but it must be judged sanely: not UTF-8 or with a newline it
    // is refused or treated as an ordinary sender; never a crash, never an injected line.
    let s = scratch("sender");
    for sender in [b"\xff@example.com".as_slice(), b"a\nb@example.com", b"mailer-daemon\r@x", b"<>"] {
        let r = batv(&s, &[b"check", b"--sender", sender, b"--recipient", b"user@example.com"], b"");
        assert!(r.code == 0 || r.code == 1 || r.code == 2, "{sender:?}: exit {}", r.code);
        assert!(r.lines().len() <= 1, "{}: {}", show(sender), show(&r.stdout));
        if r.code == 2 {
            assert!(!r.stderr.is_empty(), "{sender:?}: a refusal says why");
        }
    }
}

#[test]
fn binary_noise_on_standard_input() {
    // 256 KiB of deterministic pseudo-random bytes (xorshift), newlines wherever they fall.
    let s = scratch("noise");
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    let noise: Vec<u8> = (0..256 * 1024)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            x as u8
        })
        .collect();
    let lines_in = noise.split(|&b| b == b'\n').count(); // the last piece has no newline
    for (cmd, _) in COMMANDS {
        let r = batv(&s, &command_args(cmd), &noise);
        assert_eq!(r.lines().len(), lines_in, "{cmd}: one output line per input line");
        assert!(r.code == 0 || r.code == 1, "{cmd}: exit {}", r.code);
    }
}

#[test]
fn no_newline_at_the_end_and_empty_input() {
    let s = scratch("edges");
    for (cmd, _) in COMMANDS {
        let r = batv(&s, &command_args(cmd), b"good@example.com");
        assert!(r.lines() == vec![&good_line(cmd, &s)[..]], "{cmd}: {}", show(&r.stdout));
        let r = batv(&s, &command_args(cmd), b"");
        assert!(r.stdout.is_empty() && r.code == 0, "{cmd}: empty input gives no output");
    }
}
