//! Shared by the CLI tests: a scratch directory per test, a runner for the real `batv` binary,
//! and the check that no secret from any keyring in the scratch directory ever reaches stdout
//! or stderr. Every run goes through [`Scratch::run`], so every test makes that check.

#![allow(dead_code)] // each test binary uses a different part of this module

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

#[allow(unused_imports)] // each test binary uses a different part of this module
pub use batv_test_support::{noon_utc, vector_rows};

/// A directory of its own for one test, removed when the test ends.
pub struct Scratch {
    pub dir: PathBuf,
    _tmp: batv_test_support::TempDir,
}

/// What one run of `batv` produced.
#[derive(Debug)]
pub struct Run {
    pub code: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

impl Run {
    pub fn out(&self) -> String {
        String::from_utf8(self.stdout.clone()).expect("batv wrote non-UTF-8 to stdout")
    }

    pub fn lines(&self) -> Vec<String> {
        self.out().lines().map(str::to_owned).collect()
    }

    /// Panics with the whole run shown unless the exit code is `code`.
    #[track_caller]
    pub fn expect_code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code,
            code,
            "exit code; stdout: {:?}; stderr: {}",
            String::from_utf8_lossy(&self.stdout),
            self.stderr
        );
        self
    }
}

impl Scratch {
    pub fn new(name: &str) -> Scratch {
        let tmp = batv_test_support::TempDir::new(&format!("cli-{name}"));
        Scratch { dir: tmp.path().to_path_buf(), _tmp: tmp }
    }

    /// A scratch directory with `text` as its default keyring `batv.keys` (mode 0600).
    pub fn with_keyring(name: &str, text: &str) -> Scratch {
        let s = Scratch::new(name);
        s.write_keyring("batv.keys", text, 0o600);
        s
    }

    /// The default keyring path, as `batv` resolves it in this directory.
    pub fn keys(&self) -> PathBuf {
        self.dir.join("batv.keys")
    }

    /// Writes a keyring file with the given mode.
    pub fn write_keyring(&self, name: &str, text: &str, mode: u32) -> PathBuf {
        use std::os::unix::fs::PermissionsExt;
        let path = self.dir.join(name);
        fs::write(&path, text).expect("write keyring");
        fs::set_permissions(&path, fs::Permissions::from_mode(mode)).expect("chmod keyring");
        path
    }

    /// `batv` with this directory as working directory and no `$BATV_KEYS`.
    pub fn command(&self) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_batv"));
        cmd.current_dir(&self.dir).env_remove("BATV_KEYS");
        cmd
    }

    /// Starts `batv ARGS` with all three streams piped, for tests that talk to it.
    pub fn spawn(&self, args: &[&str]) -> std::process::Child {
        self.command()
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn batv")
    }

    /// Runs `batv ARGS` with `stdin` as standard input.
    pub fn run(&self, args: &[&str], stdin: &[u8]) -> Run {
        let mut cmd = self.command();
        cmd.args(args);
        self.run_command(cmd, stdin)
    }

    /// Runs a prepared command, feeds it `stdin`, and checks its output for secrets.
    pub fn run_command(&self, mut cmd: Command, stdin: &[u8]) -> Run {
        let mut child = cmd
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn batv");
        let mut pipe = child.stdin.take().expect("stdin pipe");
        let input = stdin.to_vec();
        // A writer thread, so a large input cannot deadlock against a full stdout pipe.
        let writer = std::thread::spawn(move || {
            let _ = pipe.write_all(&input);
        });
        let output = child.wait_with_output().expect("wait for batv");
        writer.join().expect("stdin writer");
        let run = Run {
            code: output.status.code().expect("batv was killed by a signal"),
            stdout: output.stdout,
            stderr: String::from_utf8(output.stderr).expect("batv wrote non-UTF-8 to stderr"),
        };
        assert!(
            !run.stderr.contains("panicked") && run.code != 101,
            "batv panicked: {}",
            run.stderr
        );
        self.assert_no_secrets(&run);
        run
    }

    /// No secret of any keyring file in this directory appears in the run's output.
    pub fn assert_no_secrets(&self, run: &Run) {
        let stdout = String::from_utf8_lossy(&run.stdout);
        for needle in secrets_in(&self.dir) {
            assert!(
                !stdout.contains(&needle) && !run.stderr.contains(&needle),
                "a keyring secret appeared in batv's output"
            );
        }
    }

    /// Reads a file in the scratch directory.
    pub fn read(&self, path: &Path) -> String {
        fs::read_to_string(path).expect("read file")
    }
}

/// Every form in which a secret of a keyring file under `dir` could leak: the secret as
/// written, its bytes in hex, and the start of its bytes as a Debug list.
pub fn secrets_in(dir: &Path) -> Vec<String> {
    let mut needles = Vec::new();
    let Ok(entries) = fs::read_dir(dir) else {
        return needles;
    };
    for entry in entries.flatten() {
        let Ok(text) = fs::read_to_string(entry.path()) else {
            continue;
        };
        for line in text.lines() {
            let mut words = line.trim_start().splitn(4, [' ', '\t']);
            if words.next() != Some("key") {
                continue;
            }
            let Some(secret) = words.nth(2) else { continue };
            let secret = secret.trim_start();
            needles.push(secret.to_string());
            let bytes = if let Some(t) = secret.strip_prefix("text:") {
                // A short text secret ("secret") is also an ordinary word; its prefixed form
                // above still catches a printed key line.
                if t.len() >= 8 {
                    needles.push(t.to_string());
                }
                t.as_bytes().to_vec()
            } else if let Some(b) = secret.strip_prefix("base64:") {
                needles.push(b.trim().to_string());
                base64_decode(b.trim())
            } else if let Some(h) = secret.strip_prefix("hex:") {
                needles.push(h.trim().to_string());
                hex_decode(h.trim())
            } else {
                continue;
            };
            if bytes.len() >= 8 {
                needles.push(bytes.iter().map(|b| format!("{b:02x}")).collect());
                needles.push(bytes.iter().map(|b| format!("{b:02X}")).collect());
                needles.push(
                    format!("{:?}", &bytes[..])
                        .trim_end_matches(']')
                        .to_string(),
                );
            }
        }
    }
    needles
}

/// The secret text of every `key` line of a keyring file, as written after the scheme.
pub fn key_lines(text: &str) -> Vec<(u8, String, String)> {
    text.lines()
        .filter_map(|line| {
            let mut w = line.splitn(4, ' ');
            (w.next()? == "key").then_some(())?;
            let n = w.next()?.parse().ok()?;
            Some((n, w.next()?.to_string(), w.next()?.to_string()))
        })
        .collect()
}

pub fn base64_decode(s: &str) -> Vec<u8> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter(|&c| c != b'=') {
        let Some(v) = ALPHABET.iter().position(|&a| a == c) else {
            return Vec::new();
        };
        acc = acc << 6 | v as u32;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
        }
    }
    out
}

fn hex_decode(s: &str) -> Vec<u8> {
    (0..s.len() / 2)
        .filter_map(|i| u8::from_str_radix(s.get(2 * i..2 * i + 2)?, 16).ok())
        .collect()
}
