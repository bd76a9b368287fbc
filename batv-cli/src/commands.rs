//! What each subcommand does with one address, and the line it prints for it.
//!
//! Every input line gets exactly one output line, so the output stays aligned with the input
//! in a pipeline: an address that cannot be handled gets an empty line (sign, strip, check) or
//! its outcome word (verify, status), and the reason goes to standard error.

use crate::input::{each_address, Address};
use crate::{say, Fatal};
use batv_core::{AddressProblem, Keyring, Outcome, Policy, Signed, SIGNED_MAX};
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};

/// `now` from `--now`, else the system clock, read per address so a long-running pipeline
/// never signs with a stale day.
#[derive(Clone, Copy)]
pub struct Clock(pub Option<i64>);

impl Clock {
    #[inline]
    fn now(self) -> i64 {
        self.0.unwrap_or_else(batv_core::unix_now)
    }
}

/// Prints the empty placeholder line for an address that could not be handled and says why on
/// standard error. Returns `Ok(false)`: the command will exit 1.
fn skip(
    out: &mut impl Write,
    address: &Address<'_>,
    problem: impl fmt::Display,
) -> io::Result<bool> {
    say(format_args!(
        "{}: {}: {problem}",
        address.place,
        address.preview()
    ));
    out.write_all(b"\n")?;
    Ok(false)
}

/// Prints an outcome word on a line of its own.
fn word(out: &mut impl Write, outcome: Outcome) -> io::Result<()> {
    out.write_all(outcome.as_str().as_bytes())?;
    out.write_all(b"\n")
}

/// The address as text for commands that pass it on (strip, check): UTF-8, no control
/// characters, not over-long.
fn plain_text<'a>(address: &Address<'a>) -> Result<&'a str, String> {
    if address.is_truncated() {
        return Err(AddressProblem::TooLong {
            len: address.full_len,
        }
        .to_string());
    }
    let text = address.text().map_err(|e| e.to_string())?;
    if text.bytes().any(|b| b < 0x20 || b == 0x7f) {
        return Err(AddressProblem::ControlCharacter.to_string());
    }
    Ok(text)
}

/// `batv sign`: one signed address per line.
pub fn sign(
    keyring: &Keyring,
    clock: Clock,
    args: &[OsString],
    out: &mut impl Write,
) -> Result<bool, Fatal> {
    // One extra octet for the newline, so each signed line is a single write.
    let mut buf = [0u8; SIGNED_MAX + 1];
    each_address(args, out, |address, out| {
        if address.is_truncated() {
            return skip(
                out,
                &address,
                AddressProblem::TooLong {
                    len: address.full_len,
                },
            );
        }
        let text = match address.text() {
            Ok(text) => text,
            Err(e) => return skip(out, &address, e),
        };
        match keyring.sign_into(text, clock.now(), &mut buf[..SIGNED_MAX]) {
            Ok(Signed::Written(n)) => {
                buf[n] = b'\n';
                out.write_all(&buf[..=n])?;
            }
            Ok(Signed::Unchanged) => {
                out.write_all(text.as_bytes())?;
                out.write_all(b"\n")?;
            }
            Err(e) => return skip(out, &address, e),
        }
        Ok(true)
    })
}

/// `batv verify`: the original address when the tag is valid, else the outcome word.
pub fn verify(
    keyring: &Keyring,
    clock: Clock,
    args: &[OsString],
    out: &mut impl Write,
) -> Result<bool, Fatal> {
    each_address(args, out, |address, out| {
        // A line that is not text is not an address; the core sees everything else, including
        // a cut over-long line, whose first 4096 octets already decide it.
        let Ok(text) = address.text() else {
            return word(out, Outcome::Malformed).map(|()| false);
        };
        let valid = match keyring.verify_at(text, clock.now()) {
            Ok(original) => {
                for piece in original.pieces() {
                    out.write_all(piece.as_bytes())?;
                }
                true
            }
            Err(e) => {
                out.write_all(e.outcome().as_str().as_bytes())?;
                false
            }
        };
        out.write_all(b"\n")?;
        Ok(valid)
    })
}

/// `batv status`: the outcome word for every address. Always succeeds once the words are out:
/// it reports, `verify` judges.
pub fn status(
    keyring: &Keyring,
    clock: Clock,
    args: &[OsString],
    out: &mut impl Write,
) -> Result<bool, Fatal> {
    each_address(args, out, |address, out| {
        let outcome = match address.text() {
            Ok(text) => keyring.status_at(text, clock.now()),
            Err(_) => Outcome::Malformed,
        };
        word(out, outcome).map(|()| true)
    })
}

/// `batv strip`: the original address of a tagged address, unverified; others unchanged.
pub fn strip(args: &[OsString], out: &mut impl Write) -> Result<bool, Fatal> {
    each_address(args, out, |address, out| match plain_text(&address) {
        Ok(text) => {
            out.write_all(batv_core::strip(text).as_bytes())?;
            out.write_all(b"\n")?;
            Ok(true)
        }
        Err(problem) => skip(out, &address, problem),
    })
}

/// `batv check`: one verdict line per recipient. True when every recipient was accepted.
pub fn check(
    keyring: &Keyring,
    policy: &Policy,
    clock: Clock,
    sender: &str,
    recipients: &[OsString],
    out: &mut impl Write,
) -> Result<bool, Fatal> {
    each_address(recipients, out, |address, out| {
        let recipient = match plain_text(&address) {
            Ok(text) => text,
            Err(problem) => return skip(out, &address, problem),
        };
        let verdict = policy.check(keyring, sender, recipient, clock.now());
        let reason = verdict.reason.as_str();
        match (verdict.accepted, &verdict.deliver_to, verdict.smtp_reply) {
            (true, Some(to), _) if verdict.monitored => {
                let would = verdict.reason.smtp_reply().unwrap_or("reject");
                writeln!(
                    out,
                    "accept\t{reason}\t{to}\tmonitor: would reject with {would}"
                )?;
            }
            (true, Some(to), _) => writeln!(out, "accept\t{reason}\t{to}")?,
            (true, None, _) => writeln!(out, "accept\t{reason}\t{recipient}")?,
            (false, _, reply) => writeln!(
                out,
                "reject\t{reason}\t{}",
                reply.unwrap_or("550 5.7.1 Bounce rejected")
            )?,
        }
        Ok(verdict.accepted)
    })
}
