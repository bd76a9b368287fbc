#!/usr/bin/env python3
"""Checks that an installed man page says what --help says.

    check_man.py PAGE.txt COMMAND [--subcommands]

PAGE.txt is the page as `man` renders it (no hyphenation, no justification). COMMAND is run
with --help. For the command and, with --subcommands, for every command its --help lists:
its description, every option and argument (the name as an item, and its whole help text),
the possible values, and the closing notes (exit status, examples) must be in the page; a
subcommand's in its own subsection (`batv keygen`, ...). Text is compared with runs of white
space made one space, since man fills and indents differently from --help.
"""

import re
import subprocess
import sys

ENTRY = re.compile(r"^ {2,6}(-[A-Za-z0-9], )?(--[A-Za-z0-9][A-Za-z0-9-]*|\[[A-Z_]+\]|<[A-Z_]+>)")
ANY_ITEM = re.compile(r"^\s+(-[A-Za-z0-9], )?--[A-Za-z0-9]")
DEFAULT = re.compile(r"\[default: [^\]]*\]")
POSSIBLE = re.compile(r"\[possible values: ([^\]]*)\]")


def norm(text):
    return " ".join(text.split())


class Help:
    """One --help text: description, entries (name, help), closing notes, commands listed."""

    def __init__(self, text):
        lines = text.splitlines()
        usage = next(i for i, l in enumerate(lines) if l.startswith("Usage: "))
        self.about = norm("\n".join(lines[:usage]))
        self.entries = []  # (name, help text, possible values)
        self.commands = []
        after = []
        block = None
        current = None
        for line in lines[usage + 1 :]:
            if after:
                after.append(line)
                continue
            if line in ("Options:", "Arguments:", "Commands:"):
                block = line
                continue
            if line and not line.startswith(" "):
                after.append(line)
                continue
            if not line.strip():
                continue  # between entries, or between paragraphs of one entry's help
            if block == "Commands:":
                name = line.split()[0]
                if name != "help":
                    self.commands.append(name)
                continue
            m = ENTRY.match(line)
            if m:
                name = m.group(2).lstrip("-").strip("[]<>")
                # Short help puts the text on the same line, two spaces after the name.
                parts = re.split(r"\s{2,}", line.strip(), maxsplit=1)
                current = [name, parts[1:]]
                self.entries.append(current)
                continue
            if current is None:
                raise SystemExit(f"check_man: cannot read this --help line: {line!r}")
            current[1].append(line)
        self.after = norm("\n".join(after))
        parsed = []
        values_defaults = self.defaults = []
        for name, help_lines in self.entries:
            text = norm("\n".join(help_lines))
            values = []
            m = POSSIBLE.search(text)
            if m:
                values = [v.strip() for v in m.group(1).split(",")]
                text = norm(POSSIBLE.sub("", text))
            # clap's own [default: ...] goes into the page's item line, not the help text.
            for d in DEFAULT.findall(text):
                text = norm(text.replace(d, ""))
                values_defaults.append((name, d))
            parsed.append((name, text, values))
        self.entries = parsed


def run_help(argv):
    out = subprocess.run(argv + ["--help"], check=True, capture_output=True, text=True).stdout
    return Help(out)


def has_item(section_lines, name):
    """An item line of the page: the option (or argument) at the start of an indented line."""
    if name.isupper():  # an argument: [ADDRESS]
        pat = re.compile(r"^\s+\[?" + re.escape(name) + r"\]?(\.\.\.)?\s*$")
    else:
        pat = re.compile(r"^\s+(-[A-Za-z0-9], )?--" + re.escape(name) + r"(\s|$)")
    return any(pat.match(l) for l in section_lines)


def listed_values(lines, name):
    """The bullet list under "Possible values:" after the item for the option."""
    item = next((i for i, l in enumerate(lines) if has_item([l], name)), None)
    if item is None:
        return []
    values = []
    for line in lines[item + 1 :]:
        if ANY_ITEM.match(line):
            break
        m = re.match(r"^\s+(?:o|\u2022|\*)\s+(\S+)\s*$", line)
        if m:
            values.append(m.group(1))
    return values


def check(label, help_, lines, failures, skip=(), after=True):
    text = norm("\n".join(lines))
    if help_.about and help_.about not in text:
        failures.append(f"{label}: the description of --help is not in the page: {help_.about[:100]!r}")
    for name, body, values in help_.entries:
        if name in skip:
            continue
        if not has_item(lines, name):
            failures.append(f"{label}: no item for {name} in the page")
        if body and body not in text:
            failures.append(f"{label}: the help of {name} is not in the page: {body[:100]!r}")
        if values and values != listed_values(lines, name):
            failures.append(f"{label}: the page does not list {name}'s possible values {values}")
    for name, d in help_.defaults:
        if name not in skip and d not in text:
            failures.append(f"{label}: the page does not give {name}'s {d}")
    if after and help_.after and help_.after not in text:
        failures.append(f"{label}: the closing notes of --help are not in the page: {help_.after[:100]!r}")


def main():
    page_path, command = sys.argv[1], sys.argv[2]
    subcommands = "--subcommands" in sys.argv[3:]
    page = open(page_path, encoding="utf-8").read().splitlines()
    failures = []
    top = run_help([command])
    if not top.entries:
        raise SystemExit(f"check_man: {command} --help lists no options")
    if not subcommands:
        check(command, top, page, failures)
    else:
        # The page: ... OPTIONS (the global ones) ... COMMANDS with one subsection each.
        try:
            commands_at = page.index("COMMANDS")
        except ValueError:
            raise SystemExit("check_man: the page has no COMMANDS section")
        check(command, top, page[:commands_at], failures, after=False)
        rest = page[commands_at + 1 :]
        end = next((i for i, l in enumerate(rest) if l and not l.startswith(" ")), len(rest))
        after_commands = page[commands_at + 1 + end :]
        if top.after and top.after not in norm("\n".join(after_commands)):
            failures.append(f"{command}: the closing notes are not after COMMANDS")
        rest = rest[:end]
        heads = {l.strip(): i for i, l in enumerate(rest) if re.match(r"^ {3}\S", l)}
        if not top.commands:
            raise SystemExit(f"check_man: {command} --help lists no commands")
        order = []
        globals_ = {name for name, _, _ in top.entries}
        for sub in top.commands:
            head = f"{command} {sub}"
            if head not in heads:
                failures.append(f"no subsection '{head}' in COMMANDS")
                continue
            start = heads[head]
            order.append(start)
            stop = min([i for i in heads.values() if i > start] + [len(rest)])
            sub_help = run_help([command, sub])
            check(head, sub_help, rest[start + 1 : stop], failures, skip=globals_)
        if order != sorted(order):
            failures.append("the subsections are not in the order --help lists the commands")
        extra = set(heads) - {f"{command} {s}" for s in top.commands}
        if extra:
            failures.append(f"subsections that --help does not list: {sorted(extra)}")
    if failures:
        for f in failures:
            print(f"FAIL: {f}", file=sys.stderr)
        sys.exit(1)
    if subcommands:
        print(f"check_man: {command}: {len(top.entries)} global options and {len(top.commands)} "
              "commands with all their options, as --help shows them, are in the page")
    else:
        print(f"check_man: {command}: {len(top.entries)} options, as --help shows them, are in the page")


if __name__ == "__main__":
    main()
