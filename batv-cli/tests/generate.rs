//! `batv generate`: the man page holds every command and option that --help shows, the
//! completions know every command, and the hidden subcommand shows up in none of them.

mod common;

use common::Scratch;

/// The commands that `batv --help` lists, without clap's `help`.
fn commands(help: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut in_commands = false;
    for line in help.lines() {
        if line == "Commands:" {
            in_commands = true;
        } else if in_commands && line.starts_with("  ") {
            let name = line.split_whitespace().next().unwrap_or_default();
            if name != "help" {
                names.push(name.to_string());
            }
        } else if in_commands {
            break;
        }
    }
    names
}

/// Whether `roff` has an item (`.TP`) for the option `--name`, as clap_mangen writes it.
fn has_item(roff: &str, name: &str) -> bool {
    let bold = format!("\\fB\\-\\-{}\\fR", name.replace('-', "\\-"));
    let lines: Vec<&str> = roff.lines().collect();
    lines
        .windows(2)
        .any(|w| w[0] == ".TP" && w[1].contains(&bold))
}

/// Every `--long` option that a --help text names at the start of one of its lines.
fn long_options(help: &str) -> Vec<String> {
    help.lines()
        .filter_map(|l| {
            let l = l.trim_start();
            let l = l
                .strip_prefix("-")
                .filter(|r| !r.starts_with('-'))
                .map_or(l, |r| r.split_once(", ").map_or(r, |(_, long)| long));
            l.strip_prefix("--").map(|r| {
                r.split([' ', '=', ','])
                    .next()
                    .unwrap_or_default()
                    .to_string()
            })
        })
        .collect()
}

#[test]
fn the_man_page_has_every_command_and_option_of_help() {
    let s = Scratch::new("gen-man");
    let top = s.run(&["--help"], b"").expect_code(0).out();
    let page = s.run(&["generate", "man"], b"").expect_code(0).out();
    assert!(page.contains(".TH batv 1 "), "no .TH line:\n{page}");
    let commands = commands(&top);
    assert!(commands.len() >= 6, "batv --help lists {commands:?}");

    // The global options: in the OPTIONS section, before COMMANDS.
    let (head, body) = page
        .split_once(".SH COMMANDS\n")
        .expect("a COMMANDS section");
    let global = long_options(&top);
    assert!(global.contains(&"keys".to_string()), "{global:?}");
    for opt in &global {
        assert!(has_item(head, opt), "the page lacks --{opt} of batv --help");
    }

    for (i, cmd) in commands.iter().enumerate() {
        let heading = format!(".SS \"batv {cmd}\"\n");
        let start = body
            .find(&heading)
            .unwrap_or_else(|| panic!("no {heading:?} in the page"));
        let rest = &body[start + heading.len()..];
        let section = &rest[..rest
            .find(".SS ")
            .or_else(|| rest.find(".SH "))
            .unwrap_or(rest.len())];
        let help = s.run(&[cmd, "--help"], b"").expect_code(0).out();
        let own: Vec<String> = long_options(&help)
            .into_iter()
            .filter(|o| !global.contains(o))
            .collect();
        if cmd == "keygen" {
            assert!(
                own.contains(&"promote".to_string()),
                "keygen --help options {own:?}"
            );
        }
        for opt in own {
            assert!(
                has_item(section, &opt),
                "the page's batv {cmd} lacks --{opt} of its --help:\n{section}"
            );
        }
        // The commands appear in the order --help lists them.
        if let Some(next) = commands.get(i + 1) {
            assert!(
                rest.contains(&format!(".SS \"batv {next}\"\n")),
                "batv {next} does not follow batv {cmd}"
            );
        }
    }
    assert!(
        !page.contains("generate"),
        "the page mentions the hidden subcommand"
    );
}

#[test]
fn completions_know_every_command_and_not_the_hidden_one() {
    let s = Scratch::new("gen-complete");
    let top = s.run(&["--help"], b"").expect_code(0).out();
    let bash = s
        .run(&["generate", "complete-bash"], b"")
        .expect_code(0)
        .out();
    let zsh = s
        .run(&["generate", "complete-zsh"], b"")
        .expect_code(0)
        .out();
    assert!(bash.contains("complete -F _batv"), "{bash}");
    assert!(zsh.starts_with("#compdef batv\n"), "{zsh}");
    for cmd in commands(&top) {
        assert!(
            bash.contains(&format!("batv,{cmd})")),
            "bash completion lacks {cmd}"
        );
        assert!(
            zsh.contains(&format!("'{cmd}:")),
            "zsh completion lacks {cmd}"
        );
    }
    for script in [&bash, &zsh] {
        assert!(
            !script.contains("generate"),
            "a completion offers the hidden subcommand"
        );
    }
}

#[test]
fn generate_is_hidden_and_refuses_what_it_cannot_make() {
    let s = Scratch::new("gen-hidden");
    let top = s.run(&["--help"], b"").expect_code(0).out();
    assert!(
        !top.contains("generate"),
        "--help shows the hidden subcommand"
    );
    let run = s.run(&["generate", "html"], b"");
    run.expect_code(2);
    assert!(
        run.stderr.contains("man, complete-bash, complete-zsh"),
        "{}",
        run.stderr
    );
    // Nothing else changed: a missing command is still a usage error.
    s.run(&[], b"").expect_code(2);
}
