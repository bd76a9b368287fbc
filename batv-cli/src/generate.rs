//! `batv generate man|complete-bash|complete-zsh`: the batv(1) man page and the shell
//! completions, made from the same clap definition as `--help`, so that neither can drift from
//! it. Packaging runs it (`make deb`); the subcommand is hidden from `--help`, from the page and
//! from the completions, because it is not for mail administrators.

use crate::{say, Fatal};
use clap::{Arg, ArgMatches, Command, ValueEnum};
use clap_mangen::roff::{bold, roman, Roff};
use clap_mangen::Man;
use std::io::{self, Write};
use std::process::ExitCode;

pub const NAME: &str = "generate";

/// What `batv generate` prints: `man`, `complete-bash` or `complete-zsh`.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum What {
    Man,
    CompleteBash,
    CompleteZsh,
}

/// The hidden subcommand, added to the parser only: `Cli::command()`, from which the page and
/// the completions are made, never has it.
pub fn subcommand() -> Command {
    Command::new(NAME)
        .hide(true)
        .about("Print the batv(1) man page (roff) or a shell completion script")
        .arg(
            Arg::new("what")
                .required(true)
                .value_parser(clap::value_parser!(What)),
        )
}

/// `batv generate WHAT`: exit 0, or 2 when standard output cannot take it.
pub fn run(matches: &ArgMatches, cmd: Command) -> ExitCode {
    let Some(what) = matches.get_one::<What>("what").copied() else {
        return ExitCode::from(2); // clap requires it; this is not reached
    };
    match write(what, cmd, &mut io::stdout().lock()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if let Fatal::Message(m) = Fatal::writing(e) {
                say(format_args!("{m}"));
            }
            ExitCode::from(2)
        }
    }
}

/// Writes what was asked for to `out`. `cmd` is the command line as --help shows it.
pub fn write(what: What, mut cmd: Command, out: &mut dyn Write) -> io::Result<()> {
    match what {
        What::Man => man(cmd, out),
        What::CompleteBash => {
            clap_complete::generate(clap_complete::Shell::Bash, &mut cmd, "batv", out);
            Ok(())
        }
        What::CompleteZsh => {
            clap_complete::generate(clap_complete::Shell::Zsh, &mut cmd, "batv", out);
            Ok(())
        }
    }
}

/// One page for the whole command: clap_mangen's name, synopsis, description and global
/// options, then a COMMANDS section with each subcommand's synopsis, description, options and
/// closing notes (its exit status, an example), as its own --help shows them.
fn man(cmd: Command, out: &mut dyn Write) -> io::Result<()> {
    // `batv help COMMAND` is --help again; the page describes each command instead.
    let mut cmd = cmd.disable_help_subcommand(true);
    cmd.build();
    let version = cmd.get_version().unwrap_or_default().to_string();
    let page = Man::new(cmd.clone())
        .section("1")
        .source(format!("batv {version}"))
        .manual("batv manual");
    page.render_title(out)?;
    page.render_name_section(out)?;
    page.render_synopsis_section(out)?;
    let mut roff = Roff::new();
    roff.control("SH", ["DESCRIPTION"]);
    if let Some(text) = cmd.get_long_about().or_else(|| cmd.get_about()) {
        paragraphs(&mut roff, &text.to_string());
    }
    roff.to_writer(out)?;
    page.render_options_section(out)?;

    let globals: Vec<String> = cmd
        .get_arguments()
        .filter(|a| a.is_global_set())
        .map(|a| a.get_id().to_string())
        .collect();
    Roff::new().control("SH", ["COMMANDS"]).to_writer(out)?;
    for sub in cmd.get_subcommands().filter(|s| !s.is_hide_set()) {
        let name = sub
            .get_bin_name()
            .unwrap_or_else(|| sub.get_name())
            .to_string();
        // The global options and --help are described once, above.
        let mut sub = sub.clone();
        for id in globals.iter().map(String::as_str).chain(["help"]) {
            if sub.get_arguments().any(|a| a.get_id() == id) {
                sub = sub.mut_arg(id, |a| a.hide(true));
            }
        }
        let mut roff = Roff::new();
        roff.control("SS", [name.as_str()]);
        roff.to_writer(out)?;
        let sub_page = Man::new(sub.clone());
        section_body(out, |w| sub_page.render_synopsis_section(w))?;
        let mut roff = Roff::new();
        if let Some(text) = sub.get_long_about().or_else(|| sub.get_about()) {
            roff.control("PP", []);
            paragraphs(&mut roff, &text.to_string());
        }
        roff.to_writer(out)?;
        if sub.get_arguments().any(|a| !a.is_hide_set()) {
            section_body(out, |w| sub_page.render_options_section(w))?;
        }
        if let Some(text) = sub.get_after_long_help().or_else(|| sub.get_after_help()) {
            let mut roff = Roff::new();
            roff.control("PP", []);
            paragraphs(&mut roff, &text.to_string());
            roff.to_writer(out)?;
        }
    }

    let mut roff = Roff::new();
    if let Some(text) = cmd.get_after_long_help().or_else(|| cmd.get_after_help()) {
        roff.control("SH", ["EXIT STATUS AND THE KEYRING"]);
        paragraphs(&mut roff, &text.to_string());
    }
    roff.control("SH", ["SEE ALSO"]);
    roff.text([
        bold("batv.keys"),
        roman("(5), "),
        bold("batv-milter"),
        roman("(8); /usr/share/doc/batv/: the scheme (scheme.md) and the rotation runbook for a fleet (operations.md)."),
    ]);
    roff.to_writer(out)?;
    page.render_version_section(out)
}

/// Writes one of clap_mangen's sections without its `.SH` heading, so that it can stand under a
/// subcommand's `.SS`.
fn section_body(
    out: &mut dyn Write,
    render: impl FnOnce(&mut dyn Write) -> io::Result<()>,
) -> io::Result<()> {
    let mut buf = Vec::new();
    render(&mut buf)?;
    let text = String::from_utf8(buf)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "clap_mangen wrote non-UTF-8"))?;
    let mut headings = 0;
    for line in text.split_inclusive('\n') {
        if line.starts_with(".SH") {
            headings += 1;
        } else {
            out.write_all(line.as_bytes())?;
        }
    }
    if headings != 1 {
        return Err(io::Error::other(format!(
            "expected one .SH heading in a clap_mangen section, found {headings}"
        )));
    }
    Ok(())
}

/// Help text as roff, keeping the layout that --help shows: a blank line starts a paragraph; an
/// indented `WORD  text` line is a list item (the exit codes), and the indented lines after it
/// continue it; any other indented line is an example, kept as it is.
fn paragraphs(roff: &mut Roff, text: &str) {
    let mut in_item = false;
    let mut in_example = false;
    for line in text.lines() {
        let indented = line.starts_with(' ');
        let trimmed = line.trim_start();
        if in_example && (!indented || in_item) {
            roff.control("fi", []).control("RE", []);
            in_example = false;
        }
        if trimmed.is_empty() {
            roff.control("PP", []);
            in_item = false;
            continue;
        }
        if !indented {
            if in_item {
                roff.control("PP", []);
                in_item = false;
            }
            roff.text([roman(line)]);
            continue;
        }
        if let Some((word, rest)) = trimmed.split_once("  ") {
            if !word.contains(char::is_whitespace) && line.len() - trimmed.len() <= 2 {
                roff.control("TP", []);
                roff.text([bold(word)]);
                roff.text([roman(rest.trim_start())]);
                in_item = true;
                continue;
            }
        }
        if in_item {
            roff.text([roman(trimmed)]);
            continue;
        }
        if !in_example {
            roff.control("RS", []).control("nf", []);
            in_example = true;
        }
        roff.text([roman(trimmed)]);
    }
    if in_example {
        roff.control("fi", []).control("RE", []);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roff_of(text: &str) -> String {
        let mut roff = Roff::new();
        paragraphs(&mut roff, text);
        roff.to_roff()
    }

    #[test]
    fn exit_codes_become_items_and_examples_stay_as_written() {
        let text = "Exit status:\n  0  all done\n  1  some\n     not done\n\nExample: batv sign a@b\n  prvs=1=a@b\nafter";
        assert_eq!(
            roff_of(text),
            "Exit status:\n.TP\n\\fB0\\fR\nall done\n.TP\n\\fB1\\fR\nsome\nnot done\n.PP\n\
             Example: batv sign a@b\n.RS\n.nf\nprvs=1=a@b\n.fi\n.RE\nafter\n"
        );
    }

    #[test]
    fn a_tab_separated_example_is_not_an_item() {
        let r = roff_of("Prints:\n\n  accept<TAB>REASON\n  reject<TAB>REASON\n\nMore.");
        assert!(
            r.contains(".nf\naccept<TAB>REASON\nreject<TAB>REASON\n.fi\n"),
            "{r}"
        );
        assert!(!r.contains(".TP"), "{r}");
    }
}
