//! The `batv` command: sign, verify, strip and check BATV (`prvs=`) addresses from the command
//! line or from standard input, for mail administrators and their scripts.

// Unsafe code only in src/stdio.rs, where it says why.
#![deny(unsafe_code)]
#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod commands;
mod generate;
mod input;
mod keyfile;
mod stdio;

use batv_core::{Policy, Scheme};
use clap::{CommandFactory, FromArgMatches, Parser, Subcommand, ValueEnum};
use commands::Clock;
use std::ffi::OsString;
use std::fmt;
use std::io::{self, BufWriter, Write};
use std::path::PathBuf;
use std::process::ExitCode;

const EXIT_CODES: &str = "\
Exit status:
  0  every address was handled: signed, valid, stripped or accepted
  1  at least one was not: an address that cannot be signed, a tag that is not valid, a
     rejected recipient, or an input line that is not an address (it still gets its output
     line, so output stays line by line with input; the reason goes to standard error)
  2  nothing useful was done: a usage error, a missing, unreadable or insecure keyring, or an
     input/output error

The keyring is --keys FILE, else $BATV_KEYS, else ./batv.keys. Only ./batv.keys is created
by sign when it is missing; a missing keyring named by --keys or $BATV_KEYS is an error (exit
2). With no ADDRESS arguments, addresses are read from standard input, one per line (\\n or
\\r\\n).";

/// BATV (prvs=) bounce address tags: sign envelope senders, verify and strip tags on bounce
/// recipients, and decide whether to accept a bounce.
#[derive(Parser)]
#[command(
    name = "batv",
    version,
    after_help = EXIT_CODES,
    long_about = "BATV (Bounce Address Tag Validation, the prvs= scheme) signs every outgoing \
envelope sender with a short tag that expires, user@example.com -> \
prvs=1790c1c5ba=user@example.com, and rejects bounces whose recipient carries no valid tag: \
the backscatter of mail that forged your users' addresses.\n\n\
Every command takes addresses as arguments, or reads them from standard input one per line \
when none are given, and prints one line per address."
)]
struct Cli {
    /// The keyring file (secret keys; must not be readable by other users). sign creates a
    /// missing keyring only at the default ./batv.keys, never one named here or by $BATV_KEYS
    /// [default: $BATV_KEYS when set and not empty, else ./batv.keys]
    #[arg(long, global = true, value_name = "FILE")]
    keys: Option<PathBuf>,

    /// Act as if the time were this (Unix seconds, may be negative), for replays and tests.
    #[arg(
        long,
        global = true,
        value_name = "UNIX_SECONDS",
        allow_negative_numbers = true
    )]
    now: Option<i64>,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create the keyring file (mode 0600), or change its keys: --add, --promote, --prune, --rotate.
    #[command(
        long_about = "Create the keyring file with one new random key (32 bytes from the \
operating system), mode 0600. An existing keyring is never overwritten.\n\n\
The other forms change an existing keyring, in the steps of a rotation across hosts that share \
it (docs/operations.md): --add adds a new key that verifies but does not sign; once every host \
has it, --promote N makes key N the key that signs and records that the old one stopped signing \
today; --prune removes the keys that stopped signing more than lifetime + skew days (8 by \
default) ago, whose tags can no longer verify. --rotate is --add and --promote in one step, for \
a single host.\n\n\
A new key takes the first free number after the signing key (9 wraps to 0). When all ten are \
taken, it replaces only a key that --prune would remove; otherwise the change is refused, and \
the message says which key to retire first.\n\n\
The file is replaced atomically and keeps its owner, group and permissions (so an MTA group \
that may read it still can). Changes run at the same time take turns (an exclusive lock on the \
keyring file, from the read to the rename), so none loses a key. --now sets the day recorded.",
        after_help = "Exit status: 0 done; 2 the keyring exists (when creating it), is missing \
(when changing it), is invalid or insecure, the change is refused (say, --add while every key \
number holds a key whose tags may still verify), or the file cannot be written."
    )]
    Keygen {
        /// Add a new key that signs from now on (one host: --add and --promote in one step).
        #[arg(long, group = "change")]
        rotate: bool,
        /// Add a new key that verifies but does not sign yet (the first step on a fleet).
        #[arg(long, group = "change")]
        add: bool,
        /// Make key N (0-9) the key that signs.
        #[arg(long, value_name = "N", group = "change", value_parser = clap::value_parser!(u8).range(0..=9))]
        promote: Option<u8>,
        /// Remove the keys that stopped signing more than lifetime + skew days ago.
        #[arg(long, group = "change")]
        prune: bool,
        /// MAC scheme of the new key: hmac-sha256 (case-insensitive addresses; the default for
        /// a new keyring) or hmac-sha1 (Exim ${prvs} compatible). With --rotate and --add the
        /// default is the signing key's scheme; name the other one to move the keyring to it.
        #[arg(long, value_enum, conflicts_with_all = ["promote", "prune"])]
        scheme: Option<SchemeName>,
    },

    /// Sign envelope senders: print each address with its prvs= tag.
    #[command(
        long_about = "Sign envelope senders: print each address with a prvs= tag made by the \
keyring's sign key, one per line. The null sender (an empty line) and addresses that already \
carry a tag are printed unchanged. An address that cannot be signed (no @, empty local part or \
domain, a control character, not UTF-8, or over 254 octets once signed) gets an empty output \
line and a message on standard error naming its line; send such mail untagged.\n\n\
When no keyring is named (no --keys, no $BATV_KEYS) and ./batv.keys does not exist, sign \
creates it (mode 0600) and says so on standard error: a new installation needs no set-up. A \
keyring named by --keys or $BATV_KEYS is never created by sign: a mistyped path would sign with \
a key that no verifier has. sign then exits 2 and prints the keygen command that creates it.",
        after_help = "Exit status: 0 every address signed (or passed unchanged); 1 some could \
not be signed; 2 keyring or usage error.\n\nExample: batv sign user@example.com\n  \
prvs=1790c1c5ba=user@example.com"
    )]
    Sign {
        /// Addresses to sign; none means standard input, one per line.
        #[arg(value_name = "ADDRESS")]
        addresses: Vec<OsString>,
    },

    /// Verify tagged addresses: print the original address when valid, else the outcome.
    #[command(
        long_about = "Verify tagged addresses (bounce recipients): print the original address \
when the tag is valid, otherwise the outcome word: untagged, malformed, unknown-key, \
bad-signature or expired. A line that is not UTF-8 is malformed.",
        after_help = "Exit status: 0 every address valid; 1 at least one was not; 2 keyring or \
usage error."
    )]
    Verify {
        /// Addresses to verify; none means standard input, one per line.
        #[arg(value_name = "ADDRESS")]
        addresses: Vec<OsString>,
    },

    /// Print the outcome word for each address (valid, untagged, expired, ...).
    #[command(
        long_about = "Print one outcome word per address: valid, untagged, malformed, \
unknown-key, bad-signature or expired. A line that is not UTF-8 is malformed. Unlike verify, \
this reports and does not judge: the exit status is 0 whatever the outcomes.",
        after_help = "Exit status: 0 an outcome was printed for every address; 2 keyring or \
usage error."
    )]
    Status {
        /// Addresses to classify; none means standard input, one per line.
        #[arg(value_name = "ADDRESS")]
        addresses: Vec<OsString>,
    },

    /// Remove prvs= tags without verifying them (for allow-lists and logs).
    #[command(
        long_about = "Print each address without its tags, unverified, for allow-lists, logs and \
statistics: the prvs= tags batv writes, and the tag shapes other implementations write \
(IronPort's prvs=, msprvs1=, Barracuda's btv1==). Anything else is printed as it is. Needs no \
keyring.",
        after_help = "Exit status: 0 every line printed; 1 some line could not be printed on a \
line of its own (a control character, or a line over 4096 octets) and got an empty output \
line; 2 usage error."
    )]
    Strip {
        /// Addresses to strip; none means standard input, one per line.
        #[arg(value_name = "ADDRESS")]
        addresses: Vec<OsString>,
    },

    /// Decide one SMTP recipient: accept or reject a bounce to an untagged or badly tagged address.
    #[command(
        long_about = "Apply the bounce policy to one SMTP transaction: for each recipient, \
print a tab-separated verdict line:\n\n  \
accept<TAB>REASON<TAB>DELIVER-TO\n  \
reject<TAB>REASON<TAB>SMTP-REPLY\n\n\
A tagged recipient is accepted when its tag is valid (deliver to the original address) and \
rejected otherwise. An untagged recipient is accepted when it is exempt or the sender is not a \
bounce; a bounce (the null sender <> or a mailer-daemon@ sender) to an untagged recipient is \
rejected: that is backscatter. REASON is valid, exempt, not-bounce, untagged, malformed, \
unknown-key, bad-signature or expired.\n\n\
With --monitor nothing is rejected: such lines read accept, the reason, the address, and a \
fourth field saying what would have been rejected, for a trial period.",
        after_help = "Exit status: 0 every recipient accepted; 1 at least one rejected (or not \
an address); 2 keyring or usage error.\n\nExample: batv check --sender '' --recipient \
user@example.com\n  reject\tuntagged\t550 5.7.1 Bounce rejected: ..."
    )]
    Check {
        /// The envelope sender (MAIL FROM); '' or '<>' for the null sender of a bounce.
        #[arg(long, value_name = "SENDER")]
        sender: OsString,
        /// A recipient (RCPT TO); repeat for several. None means standard input, one per line.
        #[arg(long = "recipient", value_name = "RECIPIENT")]
        recipients: Vec<OsString>,
        /// Accept untagged bounces to this address: user@domain, @domain (a whole domain) or
        /// user@ (a local part in every domain); repeatable, literal (no '*' wildcards). For
        /// list VERP returns, DMARC report addresses, and mail that does not pass this signer.
        #[arg(long, value_name = "PATTERN")]
        exempt: Vec<String>,
        /// A sender local part that marks a bounce besides the null sender; repeatable, and it
        /// replaces the default (mailer-daemon), so name that too if you want to keep it.
        #[arg(long = "bounce-local-part", value_name = "LOCAL_PART")]
        bounce_local_parts: Vec<String>,
        /// Accept what would be rejected, and say so: for a trial period.
        #[arg(long)]
        monitor: bool,
    },
}

#[derive(Clone, Copy, ValueEnum)]
enum SchemeName {
    #[value(name = "hmac-sha256")]
    HmacSha256,
    #[value(name = "hmac-sha1")]
    HmacSha1,
}

impl From<SchemeName> for Scheme {
    fn from(s: SchemeName) -> Scheme {
        match s {
            SchemeName::HmacSha256 => Scheme::HmacSha256,
            SchemeName::HmacSha1 => Scheme::HmacSha1,
        }
    }
}

/// Why the command could not do its job (exit 2).
#[derive(Debug)]
pub enum Fatal {
    /// Printed as `batv: MESSAGE` on standard error.
    Message(String),
    /// Standard output was closed by its reader (`batv sign | head`): stop without a word.
    Quiet,
}

impl Fatal {
    /// A failed write to standard output.
    pub fn writing(e: io::Error) -> Fatal {
        if e.kind() == io::ErrorKind::BrokenPipe {
            Fatal::Quiet
        } else {
            Fatal::Message(format!("cannot write standard output: {e}"))
        }
    }
}

/// Writes `batv: MESSAGE` on standard error. A failing standard error is not worth a panic.
pub fn say(message: fmt::Arguments<'_>) {
    let _ = writeln!(io::stderr().lock(), "batv: {message}");
}

fn main() -> ExitCode {
    // clap exits 2 on a usage error and 0 for --help and --version.
    let matches = Cli::command()
        .subcommand(generate::subcommand())
        .get_matches();
    if let Some((generate::NAME, m)) = matches.subcommand() {
        if let Err(e) = closed_streams(true, false) {
            say(format_args!("{e}"));
            return ExitCode::from(2);
        }
        return generate::run(m, Cli::command());
    }
    let cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.format(&mut Cli::command()).exit(),
    };
    match run(cli) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(Fatal::Quiet) => ExitCode::from(2),
        Err(Fatal::Message(m)) => {
            say(format_args!("{m}"));
            ExitCode::from(2)
        }
    }
}

/// An error when a stream the command needs was closed when batv started: the runtime put
/// /dev/null there, and the results would be lost (or the input would seem empty) without a
/// word. `>/dev/null` is a choice, and passes.
fn closed_streams(writes_stdout: bool, reads_stdin: bool) -> Result<(), String> {
    if writes_stdout && stdio::closed_at_start(1) {
        return Err("standard output is closed, so the results would be lost; redirect it to a \
                    file, or to /dev/null to discard them"
            .into());
    }
    if reads_stdin && stdio::closed_at_start(0) {
        return Err("standard input is closed, and with no addresses given batv reads them \
                    there; give the addresses as arguments, or </dev/null for none"
            .into());
    }
    Ok(())
}

fn run(cli: Cli) -> Result<bool, Fatal> {
    // keygen writes only to standard error; the others print their results.
    let (writes_stdout, reads_stdin) = match &cli.command {
        Command::Keygen { .. } => (false, false),
        Command::Sign { addresses }
        | Command::Verify { addresses }
        | Command::Status { addresses }
        | Command::Strip { addresses } => (true, addresses.is_empty()),
        Command::Check { recipients, .. } => (true, recipients.is_empty()),
    };
    closed_streams(writes_stdout, reads_stdin).map_err(Fatal::Message)?;
    let keys = &keyfile::KeyringPath::resolve(cli.keys)?;
    let clock = Clock(cli.now);
    let stdout = io::stdout();
    let mut out = BufWriter::with_capacity(input::IO_CHUNK, stdout.lock());
    let result = match &cli.command {
        Command::Keygen { rotate, add, promote, prune, scheme } => {
            let scheme = scheme.map(Scheme::from);
            let change = match (rotate, add, promote, prune) {
                (true, ..) => Some(keyfile::Change::Rotate(scheme)),
                (_, true, ..) => Some(keyfile::Change::Add(scheme)),
                (_, _, Some(n), _) => Some(keyfile::Change::Promote(*n)),
                (.., true) => Some(keyfile::Change::Prune),
                _ => None,
            };
            match change {
                Some(change) => keyfile::keygen_change(keys, change, clock.now()),
                None => keyfile::keygen_new(keys, scheme.unwrap_or(Scheme::HmacSha256)),
            }
            .map(|()| true)
        }
        Command::Sign { addresses } => {
            let keyring = keyfile::load_or_create(keys)?;
            commands::sign(&keyring, clock, addresses, &mut out)
        }
        Command::Verify { addresses } => {
            commands::verify(&keyfile::load(keys)?, clock, addresses, &mut out)
        }
        Command::Status { addresses } => {
            commands::status(&keyfile::load(keys)?, clock, addresses, &mut out)
        }
        Command::Strip { addresses } => commands::strip(addresses, &mut out),
        Command::Check {
            sender,
            recipients,
            exempt,
            bounce_local_parts,
            monitor,
        } => {
            let sender = sender.as_encoded_bytes();
            let policy = build_policy(exempt, bounce_local_parts, *monitor)?;
            let keyring = keyfile::load(keys)?;
            commands::check(&keyring, &policy, clock, sender, recipients, &mut out)
        }
    }?;
    out.flush().map_err(Fatal::writing)?;
    Ok(result)
}

fn build_policy(
    exempt: &[String],
    bounce_local_parts: &[String],
    monitor: bool,
) -> Result<Policy, Fatal> {
    let mut policy = Policy::default();
    policy.set_monitor(monitor);
    for pattern in exempt {
        policy
            .add_exempt(pattern)
            .map_err(|e| Fatal::Message(format!("--exempt {pattern:?}: {e}")))?;
    }
    if !bounce_local_parts.is_empty() {
        policy.set_bounce_local_parts(bounce_local_parts).map_err(|e| {
            Fatal::Message(format!(
                "--bounce-local-part {:?}: {e}",
                bounce_local_parts.join(",")
            ))
        })?;
    }
    Ok(policy)
}
