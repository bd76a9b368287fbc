//! What each subcommand does with one address, and the line it prints for it.
//!
//! Every input line gets exactly one output line, so the output stays aligned with the input
//! in a pipeline: an address that cannot be handled gets an empty line (sign, strip, check) or
//! its outcome word (verify, status), and the reason goes to standard error.

use crate::input::{each_address, Address};
use crate::{say, Fatal};
use batv_core::{AddressProblem, Admission, Keyring, Outcome, Policy, Signed, SIGNED_MAX};
use std::ffi::OsString;
use std::fmt;
use std::io::{self, Write};

/// `now` from `--now`, else the system clock, read per address so a long-running pipeline
/// never signs with a stale day.
#[derive(Clone, Copy)]
pub struct Clock(pub Option<i64>);

impl Clock {
    #[inline]
    pub fn now(self) -> i64 {
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

/// Why `strip` cannot print an address back on one output line, if it cannot: a line longer
/// than the reader keeps is not held whole, and a control character (an LF above all) would
/// break the line. Both are the core's problems of the address.
fn unprintable(address: &Address<'_>) -> Option<AddressProblem> {
    if address.is_truncated() {
        return Some(AddressProblem::TooLong { len: address.full_len });
    }
    match batv_core::admit(address.bytes) {
        Admission::Malformed(p @ AddressProblem::ControlCharacter) => Some(p),
        _ => None,
    }
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
            return skip(out, &address, AddressProblem::TooLong { len: address.full_len });
        }
        match keyring.sign_into(address.bytes, clock.now(), &mut buf[..SIGNED_MAX]) {
            Ok(Signed::Written(n)) => {
                buf[n] = b'\n';
                out.write_all(&buf[..=n])?;
            }
            Ok(Signed::Unchanged) => {
                out.write_all(address.bytes)?;
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
        // A cut over-long line: its first 4096 octets already make it too long.
        let valid = match keyring.verify_at(address.bytes, clock.now()) {
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
        word(out, keyring.status_at(address.bytes, clock.now())).map(|()| true)
    })
}

/// `batv strip`: the original address of a tagged address, unverified; others unchanged.
pub fn strip(args: &[OsString], out: &mut impl Write) -> Result<bool, Fatal> {
    each_address(args, out, |address, out| match unprintable(&address) {
        None => {
            out.write_all(&batv_core::strip(address.bytes))?;
            out.write_all(b"\n")?;
            Ok(true)
        }
        Some(problem) => skip(out, &address, problem),
    })
}

/// `batv check`: one verdict line per recipient. True when every recipient was accepted.
pub fn check(
    keyring: &Keyring,
    policy: &Policy,
    clock: Clock,
    sender: &[u8],
    recipients: &[OsString],
    out: &mut impl Write,
) -> Result<bool, Fatal> {
    each_address(recipients, out, |address, out| {
        if address.is_truncated() {
            return skip(out, &address, AddressProblem::TooLong { len: address.full_len });
        }
        let verdict = policy.check(keyring, sender, address.bytes, clock.now());
        let reason = verdict.reason.as_str();
        if verdict.accepted {
            // A monitored recipient that is not an address has none: an empty field.
            let to = verdict.deliver_to.as_deref().unwrap_or_default();
            write!(out, "accept\t{reason}\t{to}")?;
            if verdict.monitored {
                let would = verdict.reason.smtp_reply().unwrap_or_default();
                write!(out, "\tmonitor: would reject with {would}")?;
            }
            out.write_all(b"\n")?;
        } else {
            writeln!(out, "reject\t{reason}\t{}", verdict.smtp_reply.unwrap_or_default())?;
        }
        Ok(verdict.accepted)
    })
}
