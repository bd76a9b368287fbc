#!/usr/bin/env python3
"""Drives a real Sendmail 8.17 from Debian 12, configured as docs/sendmail.md says.

tests/sendmail/run starts this as root, as PID 1 of private mount, PID, network and UTS
namespaces (`unshare --mount --pid --fork --net --uts`). Here:

- overlays put a private writable layer over /etc, /usr, /var, /home, /root, /dev and /tmp,
  and /run is a fresh tmpfs, so Debian's own sendmail packages are installed with dpkg, maintainer
  scripts and all, at the paths docs/sendmail.md names. The machine's MTA (Exim, say) is removed
  in that layer only; the machine's files and packages are never touched;
- the network namespace has its own loopback and nothing else: Sendmail listens on 127.0.0.1
  (25 and 587, as Debian configures it) and [::1]:25, the recording smarthost on
  127.0.0.2:25, and "remote" clients connect from 198.51.100.3 and 2001:db8::3 (outside
  127.0.0.0/8, for which Debian's access file relays);
- a listener on /dev/log keeps Sendmail's and batv-milter's syslog lines in WORK/maillog;
- batv-milter, built from this tree, runs as the page's systemd unit says (see the
  emulation of `systemctl` below).

When this process exits the kernel ends every process left in the namespaces.

Usage: check.py --work DIR --debs DIR [--built]  (inside the namespaces; tests/sendmail/run)
       check.py --print-block NAME               (print a `run` block of docs/sendmail.md)
       check.py --work DIR --systemctl ARGS...   (the unit emulation, as WORK/bin/systemctl)
Prints one `PASS:`/`FAIL:` line per check and a closing count; exits 1 if any check failed.
"""

import argparse
import glob
import grp
import os
import re
import shlex
import shutil
import signal
import smtplib
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mta import Recorder, check, delivered, mailbox, must, read, run, socket_answers, tally, wait_for  # noqa: E402

ROOT = os.environ.get("BATV_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOC = os.path.join(ROOT, "docs", "sendmail.md")
DOMAIN = "example.test"
HOSTNAME = f"mx.{DOMAIN}"
SENDMAIL_ADDR = "127.0.0.1"  # Debian's DAEMON_OPTIONS: MTA-v4 on port 25, MSP-v4 on 587
SMARTHOST_ADDR = "127.0.0.2"  # the recording listener, port 25 (the namespace's own loopback)
CLIENT_ADDR = "198.51.100.3"  # a "remote" client (an address of the namespace's loopback)
USERS = ["alice", "bob", "carol"]
SASL_PASSWORD = "sasl password for the sendmail tests"
# Installed on the machine, these conflict with sendmail-bin; each is removed inside the
# private layer only (exim4-config and exim4-base declare the conflict too).
CONFLICTING = ["exim4-daemon-heavy", "exim4-daemon-light", "exim4-base", "exim4-config", "postfix",
               "courier-mta", "dma", "esmtp-run", "msmtp-mta", "nullmailer", "opensmtpd", "ssmtp"]
SENDMAIL_DEBS = ["sendmail-base", "sendmail-cf", "sendmail-bin", "sensible-mda"]

WORK = None


def sh(script, **kw):
    return must(["bash", "-euo", "pipefail", "-c", script], **kw)


def write(path, text, mode=None):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)


# ---------------------------------------------------------------------------------------------
# docs/sendmail.md: the blocks the test applies
#
#   <!-- sendmail-test: file PATH -->                 the fenced block is the whole file
#   <!-- sendmail-test: insert PATH before REGEX -->  the block goes in PATH before the first
#                                                     line that matches REGEX
#   <!-- sendmail-test: run NAME -->                  a shell script, run with bash -e

MARKER = re.compile(
    r"<!-- sendmail-test: (file|insert|run) (\S+)(?: before (\S+))? -->\n```[a-z0-9]*\n(.*?)\n```",
    re.DOTALL)
# Fenced blocks in these languages are configuration or commands: each must be marked (and
# so applied). Other fences (`text`) show output.
CONFIG_FENCES = {"sh", "m4", "toml", "ini"}


def doc_blocks():
    text = read(DOC)
    if not text:
        raise SystemExit(f"cannot read {DOC}")
    blocks = {}
    for kind, name, anchor, body in MARKER.findall(text):
        key = f"{kind} {name}"
        if key in blocks:
            raise SystemExit(f"docs/sendmail.md: two blocks '{key}'")
        blocks[key] = {"kind": kind, "name": name, "anchor": anchor, "body": body + "\n"}
    if len(blocks) != text.count("<!-- sendmail-test: "):
        raise SystemExit("docs/sendmail.md: a sendmail-test marker is not followed by a fenced block")
    lines = text.splitlines()
    fence_open = False
    for i, line in enumerate(lines):
        if not line.startswith("```"):
            continue
        if not fence_open and line[3:].strip() in CONFIG_FENCES and not (i and lines[i - 1].startswith("<!-- sendmail-test: ")):
            raise SystemExit(f"docs/sendmail.md line {i + 1}: a ```{line[3:].strip()} block without a "
                             "sendmail-test marker (the test applies every command and file of the page)")
        fence_open = not fence_open
    return blocks


BLOCKS = doc_blocks()
APPLIED = set()


def doc_apply(key, env=None):
    b = BLOCKS[key]
    APPLIED.add(key)
    if b["kind"] == "file":
        os.makedirs(os.path.dirname(b["name"]), exist_ok=True)
        write(b["name"], b["body"])
    elif b["kind"] == "insert":
        lines = read(b["name"]).splitlines(keepends=True)
        at = next((i for i, l in enumerate(lines) if re.match(b["anchor"], l)), None)
        if at is None:
            raise SystemExit(f"docs/sendmail.md '{key}': no line of {b['name']} matches {b['anchor']}")
        lines[at:at] = [b["body"]]
        write(b["name"], "".join(lines))
    else:
        # systemctl is the unit emulation below: no systemd runs in the namespaces.
        e = dict(os.environ, PATH=os.path.join(WORK, "bin") + ":" + os.environ.get("PATH", "/usr/bin:/bin"))
        e.update(env or {})
        r = run(["bash", "-euo", "pipefail", "-c", b["body"]], cwd=ROOT, env=e)
        if r.returncode != 0:
            raise SystemExit(f"docs/sendmail.md block '{key}' failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r


# ---------------------------------------------------------------------------------------------
# The daemon's systemd unit, run as systemd would run it
#
# There is no systemd in the namespaces. `systemctl` in the page's blocks is this emulation
# (check.py --systemctl, on PATH as WORK/bin/systemctl), for the one unit the page writes. It
# applies what the unit says about the process: User, Group, SupplementaryGroups,
# RuntimeDirectory(Mode), LimitNOFILE, NoNewPrivileges, ExecStart, ExecReload with $MAINPID.
# It accepts, without applying them, Type=simple (it does not wait either), Restart (the test
# restarts the daemon itself), ProtectSystem and PrivateTmp; any other setting in the unit
# makes it fail, so that a new line of the page is not silently left untested.

UNIT = "/etc/systemd/system/batv-milter.service"
UNIT_APPLIED = {"User", "Group", "SupplementaryGroups", "RuntimeDirectory", "RuntimeDirectoryMode",
                "LimitNOFILE", "NoNewPrivileges", "ExecStart", "ExecReload"}
UNIT_NOT_EMULATED = {"Type", "Restart", "ProtectSystem", "PrivateTmp"}


def unit_service():
    settings, section = {}, None
    for line in read(UNIT).splitlines():
        line = line.strip()
        if not line or line[0] in "#;":
            continue
        if line.startswith("["):
            section = line
        elif section == "[Service]" and "=" in line:
            k, v = line.split("=", 1)
            settings[k.strip()] = v.strip()
    unknown = set(settings) - UNIT_APPLIED - UNIT_NOT_EMULATED
    if unknown or "ExecStart" not in settings:
        raise SystemExit(f"{UNIT}: the test's systemd emulation does not know {sorted(unknown) or 'a unit without ExecStart'}")
    if settings.get("Type", "simple") != "simple":
        raise SystemExit(f"{UNIT}: only Type=simple is emulated")
    return settings


def pid_file():
    return os.path.join(WORK, "batv-milter.pid")


def daemon_log():
    return os.path.join(WORK, "batv-milter.output")


def main_pid():
    """The unit's running process, or None."""
    try:
        pid = int(read(pid_file()).strip())
        with open(f"/proc/{pid}/stat") as f:
            state = f.read().rsplit(")", 1)[1].split()[0]
        return pid if state not in ("Z", "X") else None
    except (ValueError, OSError, IndexError):
        return None


def unit_start():
    import pwd
    import resource
    if main_pid():
        return 0
    u = unit_service()
    user, group = u.get("User", "root"), u.get("Group")
    if group is None:
        group = run(["id", "-gn", user]).stdout.strip()
    if u.get("RuntimeDirectory"):
        for d in u["RuntimeDirectory"].split():
            path = os.path.join("/run", d)
            os.makedirs(path, exist_ok=True)
            shutil.chown(path, user, group)
            os.chmod(path, int(u.get("RuntimeDirectoryMode", "0755"), 8))
    cmd = ["setpriv", f"--reuid={user}", f"--regid={group}"]
    extra = u.get("SupplementaryGroups", "").split()
    cmd += [f"--groups={','.join(extra)}"] if extra else ["--clear-groups"]
    if u.get("NoNewPrivileges", "no") in ("yes", "true", "1", "on"):
        cmd.append("--no-new-privs")
    cmd += ["--"] + shlex.split(u["ExecStart"])
    limit = int(u["LimitNOFILE"]) if "LimitNOFILE" in u else None

    def child():
        os.setsid()
        if limit:
            resource.setrlimit(resource.RLIMIT_NOFILE, (limit, limit))

    pwd.getpwnam(user)
    with open(daemon_log(), "ab") as out:
        p = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=out, stderr=out, cwd="/", preexec_fn=child)
    write(pid_file(), f"{p.pid}\n")
    return 0


def unit_stop():
    pid = main_pid()
    if pid:
        os.kill(pid, signal.SIGTERM)
        if not wait_for(lambda: main_pid() is None, 10):
            os.kill(pid, signal.SIGKILL)
            wait_for(lambda: main_pid() is None, 5)
    u = unit_service()
    for d in u.get("RuntimeDirectory", "").split():
        shutil.rmtree(os.path.join("/run", d), ignore_errors=True)
    return 0


def unit_reload():
    pid = main_pid()
    if not pid:
        print("batv-milter.service is not active, cannot reload.", file=sys.stderr)
        return 1
    r = run(shlex.split(unit_service()["ExecReload"].replace("$MAINPID", str(pid))))
    return r.returncode


def systemctl(argv):
    words = [a for a in argv if not a.startswith("-")]
    flags = [a for a in argv if a.startswith("-")]
    if not words:
        return 1
    verb, units = words[0], [u.removesuffix(".service") for u in words[1:]]
    if verb == "daemon-reload":
        return 0
    if units != ["batv-milter"]:
        print(f"systemctl (the test's emulation): only the unit batv-milter is known, not {units}", file=sys.stderr)
        return 5
    if verb == "enable":
        return unit_start() if "--now" in flags else 0
    actions = {"start": unit_start, "stop": unit_stop, "reload": unit_reload,
               "restart": lambda: unit_stop() or unit_start()}
    if verb not in actions:
        print(f"systemctl (the test's emulation): {verb} is not emulated", file=sys.stderr)
        return 1
    return actions[verb]()


def install_systemctl():
    os.makedirs(os.path.join(WORK, "bin"), exist_ok=True)
    write(os.path.join(WORK, "bin", "systemctl"),
          f"#!/bin/sh\nexec {shlex.quote(sys.executable)} {shlex.quote(os.path.abspath(__file__))} "
          f"--work {shlex.quote(WORK)} --systemctl \"$@\"\n", 0o755)


# ---------------------------------------------------------------------------------------------
# The namespaces


def overlay(path, work):
    up, wk = os.path.join(work, "layers", path.strip("/") + ".up"), os.path.join(work, "layers", path.strip("/") + ".wk")
    os.makedirs(up)
    os.makedirs(wk)
    must(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={path},upperdir={up},workdir={wk}", path])


class Syslog(threading.Thread):
    """Keeps every datagram sent to /dev/log, one line each, in WORK/maillog."""

    def __init__(self, logfile):
        super().__init__(daemon=True)
        self.logfile = logfile
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        if os.path.lexists("/dev/log"):
            os.remove("/dev/log")
        self.sock.bind("/dev/log")
        os.chmod("/dev/log", 0o666)

    def run(self):
        with open(self.logfile, "ab", buffering=0) as f:
            while True:
                f.write(self.sock.recv(65536).rstrip(b"\n") + b"\n")


def maillog():
    return read(os.path.join(WORK, "maillog"))


def setup_namespace(work):
    must(["mount", "--make-rprivate", "/"])
    # /tmp too, not a fresh one: the checkout may be under it.
    for d in ["/etc", "/usr", "/var", "/home", "/root", "/dev", "/tmp"]:
        overlay(d, work)
    # No systemd, no host services: Debian's scripts see a machine where nothing runs yet.
    for d in ["/run", "/dev/shm"]:
        must(["mount", "-t", "tmpfs", "-o", "mode=1777" if d != "/run" else "mode=0755", "tmpfs", d])
    os.makedirs("/run/lock", mode=0o1777)
    must(["mount", "-t", "proc", "proc", "/proc"])
    must(["ip", "link", "set", "lo", "up"])
    must(["ip", "addr", "add", f"{CLIENT_ADDR}/32", "dev", "lo"])
    must(["ip", "-6", "addr", "add", f"{CLIENT6_ADDR}/128", "dev", "lo"])
    socket.sethostname(HOSTNAME)
    write("/etc/hostname", HOSTNAME + "\n")
    write("/etc/mailname", DOMAIN + "\n")
    write("/etc/hosts", f"127.0.0.1 {HOSTNAME} mx localhost\n{SMARTHOST_ADDR} smarthost.test\n"
                        f"{CLIENT_ADDR} client.remote.example\n")
    # No DNS in the namespace: a resolver that fails at once.
    write("/etc/resolv.conf", "nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    # Maintainer scripts may stop and start services only through invoke-rc.d: forbid it.
    write("/usr/sbin/policy-rc.d", "#!/bin/sh\nexit 101\n", 0o755)
    if os.path.exists("/var/lib/man-db/auto-update"):
        os.remove("/var/lib/man-db/auto-update")  # no man-db rebuild for every dpkg run
    Syslog(os.path.join(work, "maillog")).start()


def install_sendmail(debs):
    """What `apt-get install sendmail` does on a Debian 12 machine that has another MTA."""
    installed = must(["dpkg-query", "-W", "-f", "${Package} ${db:Status-Abbrev}\n"]).stdout
    present = {l.split()[0] for l in installed.splitlines() if l.split()[1:2] == ["ii"]}
    remove = [p for p in CONFLICTING if p in present]
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    if remove:
        print(f"      removing {' '.join(remove)} inside the private layer only", flush=True)
        must(["dpkg", "--remove", "--force-depends"] + remove, env=env)
    files = []
    for p in SENDMAIL_DEBS:
        found = sorted(glob.glob(os.path.join(debs, f"{p}_*.deb")))
        if len(found) != 1:
            raise SystemExit(f"setup failed: want one {p}_*.deb in {debs}, found {found}")
        files += found
    r = run(["dpkg", "-i"] + files, env=env)
    if r.returncode != 0:
        raise SystemExit(f"setup failed: dpkg -i exited {r.returncode}\n{r.stdout}{r.stderr}")
    return r.stdout


def sendmail_ipv6(addr):
    """An IPv6 address as Sendmail writes it (not compressed): 2001:db8:0:0:0:0:0:3."""
    import ipaddress
    return ":".join(f"{int(g, 16):x}" for g in ipaddress.IPv6Address(addr).exploded.split(":"))


def site_setup(debs):
    """The test site, as its administrator would set it up before reading docs/sendmail.md:
    example.test is local, everything else leaves through the smarthost, no DNS; users alice,
    bob and carol, and alice may authenticate (SASL, Cyrus sasldb)."""
    with open("/etc/mail/local-host-names", "a") as f:
        f.write(DOMAIN + "\n")
    # Debian's access file slows and rate-limits every client outside loopback (GreetPause 5 s,
    # ClientRate 10 a minute); the test's remote clients open many sessions.
    with open("/etc/mail/access", "a") as f:
        for a in [CLIENT_ADDR, "IPv6:" + sendmail_ipv6(CLIENT6_ADDR)]:
            f.write(f"GreetPause:{a}\t0\nClientRate:{a}\t0\nClientConn:{a}\t0\n")
    mc = read("/etc/mail/sendmail.mc")
    # The test's "remote" clients have addresses on this host's loopback: without this,
    # Sendmail would count them among its own addresses ($=w) and relay for them.
    site = ("define(`SMART_HOST', `[" + SMARTHOST_ADDR + "]')dnl\n"
            "define(`confDONT_PROBE_INTERFACES', `True')dnl\n"
            # Authenticated users may relay (what Debian's /etc/mail/sasl/sasl.m4 would add).
            "TRUST_AUTH_MECH(`CRAM-MD5')dnl\n"
            "FEATURE(`accept_unresolvable_domains')dnl\n")
    mc = mc.replace("MAILER_DEFINITIONS\n", site + "MAILER_DEFINITIONS\n", 1)
    # Debian's own (commented-out) IPv6 daemon on ::1, for the IPv6 checks.
    v6 = "DAEMON_OPTIONS(`Family=inet6, Name=MTA-v6, Port=smtp, Addr=::1')dnl\n"
    if "dnl " + v6 not in mc:
        raise SystemExit("setup failed: Debian's sendmail.mc has no commented-out MTA-v6 line")
    write("/etc/mail/sendmail.mc", mc.replace("dnl " + v6, v6, 1))
    shutil.copy("/etc/mail/service.switch-nodns", "/etc/mail/service.switch")
    for u in USERS:
        must(["useradd", "--create-home", "--shell", "/bin/sh", u])
    # saslpasswd2 from Debian's sasl2-bin, unpacked (not installed) for this one command.
    sasl = os.path.join(WORK, "sasl2-bin")
    found = glob.glob(os.path.join(debs, "sasl2-bin_*.deb"))
    if len(found) != 1:
        raise SystemExit(f"setup failed: want one sasl2-bin_*.deb in {debs}, found {found}")
    must(["dpkg-deb", "-x", found[0], sasl])
    must([os.path.join(sasl, "usr/sbin/saslpasswd2"), "-p", "-c", "-u", DOMAIN, "alice"],
         input=SASL_PASSWORD)
    sh("make -C /etc/mail")


# ---------------------------------------------------------------------------------------------
# The smarthost: a small SMTP listener that records every envelope


def relayed(recorder, marker, seconds=15):
    """The (MAIL FROM, RCPT TOs, data) the smarthost recorded for the message with `marker`."""
    def find():
        with recorder.lock:
            return next((e for e in recorder.envelopes if f"marker {marker}" in e[2]), None)
    return wait_for(find, seconds)


# ---------------------------------------------------------------------------------------------
# Sendmail, swaks and the mailboxes


def sendmail_service(action):
    """Debian's init script, as `service` runs it on a machine without systemd."""
    return run(["service", "sendmail", action])


def sendmail_pids():
    pids = []
    for p in glob.glob("/proc/[0-9]*"):
        try:
            exe = os.readlink(p + "/exe")
        except OSError:
            continue
        if exe == "/usr/libexec/sendmail/sendmail":
            pids.append(int(p[6:]))
    return pids


def wait_listening(port, seconds=20):
    def greets():
        try:
            with socket.create_connection((SENDMAIL_ADDR, port), timeout=2) as s:
                return s.recv(200).startswith(b"220")
        except OSError:
            return False
    return wait_for(greets, seconds)


def swaks(sender, rcpt, port=25, client=CLIENT_ADDR, quit_after=None, marker=None, auth=None, headers=()):
    """One SMTP session with swaks. Returns {command: last reply line} (EHLO, MAIL, RCPT, DATA,
    AUTH, the final dot as "."), for the commands that were sent."""
    cmd = ["swaks", "--server", SENDMAIL_ADDR, "--port", str(port), "--local-interface", client,
           "--helo", "client.remote.example", "--from", sender if sender else "<>", "--to", rcpt,
           "--timeout", "60"]
    if quit_after:
        cmd += ["--quit-after", quit_after]
    if marker:
        cmd += ["--header", f"Subject: test {marker}", "--body", f"marker {marker}\n"]
    for h in headers:
        cmd += ["--add-header", h]
    if auth:
        cmd += ["--auth", "CRAM-MD5", "--auth-user", auth[0], "--auth-password", auth[1]]
    r = run(cmd)
    replies, last, in_body = {}, None, False
    for line in r.stdout.splitlines():
        if in_body:
            if line.rstrip("\r") == " -> .":
                in_body, last = False, "."
            continue
        m = re.match(r"^ -> (\S+)", line)
        if m:
            # An AUTH exchange continues with base64 lines: they belong to AUTH.
            if m.group(1).upper() in ("EHLO", "HELO", "MAIL", "RCPT", "DATA", "AUTH", "QUIT", "RSET"):
                last = m.group(1).upper()
            continue
        m = re.match(r"^<(?:-|\*\*) +(\d{3}[ -].*)$", line)
        if m and last:
            replies[last] = m.group(1)
            in_body = last == "DATA" and m.group(1).startswith("354 ")
    replies["_transcript"] = r.stdout + r.stderr
    return replies


def code(reply):
    m = re.match(r"(\d{3})", reply or "")
    return int(m.group(1)) if m else None


def msp_queue_holds(marker):
    """Whether a message with the marker waits in Debian's MSP queue (/var/spool/mqueue-client)."""
    return any(f"marker {marker}" in read(p) for p in glob.glob("/var/spool/mqueue-client/df*"))


# ---------------------------------------------------------------------------------------------
# The checks


def checks_install(dpkg_output):
    v = run(["/usr/sbin/sendmail", "-d0.1", "-bt"], input="").stdout
    m = re.search(r"Version (\S+)", v)
    version = m.group(1) if m else "?"
    print(f"      Sendmail {version} (Debian {debian_version('sendmail-bin')}), installed with dpkg -i "
          "inside the private layer", flush=True)
    check("Debian's sendmail-bin is Sendmail 8.17", version.startswith("8.17."), v[:300])
    check("it is built with MILTER and SOCKETMAP", {"MILTER", "SOCKETMAP"} <= set(v.split()), v[:600])
    check("/usr/sbin/sendmail is Sendmail's (Debian's alternatives) inside the layer",
          os.path.realpath("/usr/sbin/sendmail") == "/usr/libexec/sendmail/sendmail",
          os.path.realpath("/usr/sbin/sendmail"))
    ids = run(["id", "smmta"]).returncode == 0 and run(["id", "smmsp"]).returncode == 0
    check("the maintainer scripts created the users smmta and smmsp", ids)
    check("they built /etc/mail/sendmail.cf from Debian's sendmail.mc",
          os.path.exists("/etc/mail/sendmail.cf") and "OSTYPE(`debian')" in read("/etc/mail/sendmail.mc"),
          dpkg_output[-2000:])
    check(f"Debian masquerades as /etc/mailname ({DOMAIN})",
          f"MASQUERADE_AS(`{DOMAIN}')" in read("/etc/mail/sendmail.mc"))


def debian_version(pkg):
    return run(["dpkg-query", "-W", "-f", "${Version}", pkg]).stdout or "?"


def checks_stock(recorder):
    """Sendmail as Debian installs it plus the test site: no BATV yet."""
    alice = f"alice@{DOMAIN}"
    marker = uuid.uuid4().hex
    r = swaks("someone@remote.example", alice, marker=marker)
    got = delivered("alice", marker)
    check(f"stock: mail from {CLIENT_ADDR} to {alice} is accepted and lands in /var/mail/alice",
          code(r.get(".")) == 250 and bool(got), r["_transcript"][-800:])
    check("stock: the mbox copy has Return-Path <someone@remote.example>",
          bool(got) and "Return-Path: <someone@remote.example>" in got, got)

    marker = uuid.uuid4().hex
    r = swaks(alice, "bob@remote.example", client=SENDMAIL_ADDR, marker=marker)
    env = relayed(recorder, marker)
    check(f"stock: mail from {SENDMAIL_ADDR} to bob@remote.example reaches the smarthost "
          f"({SMARTHOST_ADDR}) as MAIL FROM:<{alice}> RCPT TO:<bob@remote.example>",
          bool(env) and env[0] == alice and env[1] == ["bob@remote.example"],
          f"{env and env[:2]}; {r.get('.')}")

    marker = uuid.uuid4().hex
    r = swaks(alice, "bob@remote.example", port=587, client=SENDMAIL_ADDR, marker=marker,
              auth=(alice, SASL_PASSWORD))
    env = relayed(recorder, marker)
    check("stock: an AUTH CRAM-MD5 submission on port 587 (Debian's MSP-v4) is relayed",
          code(r.get("AUTH")) == 235 and bool(env) and env[0] == alice, r["_transcript"][-800:])
    log = maillog()
    check("stock: Sendmail logged it as authenticated (authid=alice@example.test, daemon=MSP-v4)",
          f"authid={alice}, mech=CRAM-MD5" in log and "daemon=MSP-v4" in log)
    r = swaks(alice, "bob@remote.example", port=587, client=SENDMAIL_ADDR, quit_after="AUTH",
              auth=(alice, "wrong password"))
    check("stock: a wrong SASL password gets 535", code(r.get("AUTH")) == 535, r.get("AUTH"))
    r = swaks(alice, "bob@remote.example", port=587, client=SENDMAIL_ADDR, quit_after="RCPT")
    check("stock: port 587 refuses mail without AUTH (530 at MAIL)", code(r.get("MAIL")) == 530,
          r["_transcript"][-600:])

    # Why docs/sendmail.md needs the socket map: Sendmail itself rejects a tagged local
    # recipient at RCPT, before any milter hears of it.
    r = swaks("", f"prvs=1001abcdef={alice}", quit_after="RCPT")
    check("stock: a bounce to prvs=...=alice@example.test gets Sendmail's own 550 5.1.1 User unknown",
          code(r.get("RCPT")) == 550 and "User unknown" in r.get("RCPT", ""), r.get("RCPT"))
    r = swaks("", f"nobody-here@{DOMAIN}", quit_after="RCPT")
    check("stock: an unknown local user gets 550 5.1.1 too", code(r.get("RCPT")) == 550, r.get("RCPT"))
    tried = run(["/usr/sbin/sendmail", "-C", "/etc/mail/submit.cf", "-bt"], input="/tryflags ES\n/try relay alice\n").stdout
    check(f"stock: Debian's submit.cf hands local mail from alice to the MTA as alice@{HOSTNAME}",
          re.search(rf"^Rcode = 0, addr = alice@{re.escape(HOSTNAME)}$", tried, re.M), tried[-600:])
    check("stock: Sendmail's queue is empty", wait_for(lambda: not glob.glob("/var/spool/mqueue/qf*"), 10),
          run(["mailq"]).stdout)


def checks_doc_without_daemon(recorder):
    """docs/sendmail.md applied, batv-milter not running: every path tempfails, none rejects."""
    cf = read("/etc/mail/sendmail.cf")
    check("sendmail.cf has the socket map K line of the page",
          "Kbatv socket -f -q -T<TMPF> unix:/run/batv/socketmap.sock" in cf)
    check("sendmail.cf has the milter with F=T", re.search(r"^Xbatv, S=unix:/run/batv/milter\.sock, F=T,", cf, re.M),
          [l for l in cf.splitlines() if l.startswith("Xbatv")])
    macros = {m.group(1): m.group(2) for m in re.finditer(r"^O Milter\.macros\.(\w+)=(.*)$", cf, re.M)}
    want = {"connect": ["{daemon_name}", "{client_addr}"], "envfrom": ["i", "{auth_authen}"],
            "envrcpt": ["i"], "eom": ["i"]}
    for stage, names in want.items():
        have = [x.strip() for x in macros.get(stage, "").split(",")]
        check(f"Milter.macros.{stage} lists {', '.join(names)}", all(n in have for n in names), macros.get(stage))
    check("sendmail.cf has the page's rules in ruleset 0 (ParseLocal), tabs intact",
          re.search(r"^SParseLocal=98\n(?:.*\n)*?R\$\+ < @ \$\+ > \$\| e r\t\$: \$>BatvRcpt \$1 < @ \$2 >$", cf, re.M)
          and "\nSBatvResult\n" in cf)
    check("sendmail.cf still has Debian's own rules (MTA-v4 and MSP-v4 daemons)",
          "Name=MTA-v4" in cf and "Name=MSP-v4" in cf)

    # Masquerading: Debian rewrites envelope senders when it delivers, after the milter signed
    # them, so a tag on another local host name would break (docs: Local mail and masquerading).
    tried = run(["/usr/sbin/sendmail", "-bt"], input=f"/tryflags ES\n/try relay prvs=1001abcdef=alice@{HOSTNAME}\n"
                f"/try relay prvs=1001abcdef=alice@{DOMAIN}\n").stdout
    addrs = re.findall(r"^Rcode = 0, addr = (\S+)$", tried, re.M)
    check(f"masquerading: the MTA rewrites a tagged sender @{HOSTNAME} to @{DOMAIN} on the way out "
          f"(why sign_domains lists only {DOMAIN})", addrs[:1] == [f"prvs=1001abcdef=alice@{DOMAIN}"], tried[-600:])
    check(f"masquerading: a tagged sender @{DOMAIN} leaves unchanged", addrs[1:2] == [f"prvs=1001abcdef=alice@{DOMAIN}"],
          tried[-600:])
    tried = run(["/usr/sbin/sendmail", "-C", "/etc/mail/submit.cf", "-bt"], input="/tryflags ES\n/try relay alice\n").stdout
    check(f"submit.mc with the page's lines: local mail from alice reaches the MTA as alice@{DOMAIN}",
          re.search(rf"^Rcode = 0, addr = alice@{re.escape(DOMAIN)}$", tried, re.M), tried[-600:])

    alice = f"alice@{DOMAIN}"
    marker = uuid.uuid4().hex
    r = swaks("someone@remote.example", alice, marker=marker)
    check("no daemon: MAIL FROM gets Sendmail's 451 4.3.2 (F=T), not 5xx",
          code(r.get("MAIL")) == 451, r["_transcript"][-600:])
    check("no daemon: Sendmail logs that the milter is unavailable",
          "Milter (batv): to error state" in maillog() or "Milter: initialization failed" in maillog())
    r = swaks("", f"prvs=1001abcdef={alice}", quit_after="RCPT")
    check("no daemon: a bounce to a tagged address is tempfailed (4xx), not rejected",
          code(r.get("MAIL")) in (451, 421) or code(r.get("RCPT")) == 451, r["_transcript"][-600:])
    r = swaks(alice, "bob@remote.example", port=587, client=SENDMAIL_ADDR, auth=(alice, SASL_PASSWORD),
              marker=uuid.uuid4().hex)
    tempfail = [k for k in ("AUTH", "MAIL", "RCPT") if code(r.get(k)) and 400 <= code(r.get(k)) < 500]
    permfail = [k for k in ("AUTH", "MAIL", "RCPT", ".") if code(r.get(k)) and code(r.get(k)) >= 500]
    check("no daemon: an authenticated submission on 587 is tempfailed, never 5xx",
          bool(tempfail) and not permfail, r["_transcript"][-600:])

    # The rules of the page on their own (sendmail -bv resolves without SMTP or milter): with
    # the socket map down every recipient is a temporary error, the safe side.
    for rcpt in [f"prvs=1001abcdef={alice}", alice, "bob@remote.example"]:
        out = run(["/usr/sbin/sendmail", "-bv", rcpt])
        check(f"no daemon: sendmail -bv {rcpt} resolves to the 4.3.0 error mailer, not a delivery",
              "mailer *error*, host 4.3.0" in out.stdout and '"451 ' in out.stdout, out.stdout + out.stderr)

    # Local submission (cron, scripts): the MSP keeps the message when the MTA tempfails.
    marker = uuid.uuid4().hex
    r = run(["runuser", "-u", "alice", "--", "/usr/sbin/sendmail", "-oi", "-t"],
            input=f"To: bob@remote.example\nSubject: local {marker}\n\nmarker {marker}\n")
    check("no daemon: /usr/sbin/sendmail as alice succeeds (exit 0)", r.returncode == 0, r.stderr)
    check("no daemon: the message waits in the MSP queue /var/spool/mqueue-client",
          wait_for(lambda: msp_queue_holds(marker), 10), run(["mailq", "-Ac"]).stdout)
    check("no daemon: it did not reach the smarthost", relayed(recorder, marker, 1) is None)
    check("no daemon: nothing bounced to alice", "Returned mail" not in mailbox("alice"))
    return marker


# ---------------------------------------------------------------------------------------------
# With batv-milter

KEYRING = "/etc/batv/batv.keys"
TOML = "/etc/batv/milter.toml"
BATV = "/usr/local/bin/batv"
MILTER_SOCK = "/run/batv/milter.sock"
MAP_SOCK = "/run/batv/socketmap.sock"
ALICE = f"alice@{DOMAIN}"
CAROL = f"carol@{DOMAIN}"
BOB_REMOTE = "bob@remote.example"
TAG = r"prvs=[0-9]\d{3}[0-9a-f]{6}="
DAY = 86400
# An IPv6 client outside trusted_networks (added to the namespace's loopback).
CLIENT6_ADDR = "2001:db8::3"


def daemon_up(seconds=20):
    return wait_for(lambda: main_pid() and socket_answers(MILTER_SOCK) and socket_answers(MAP_SOCK), seconds)


def systemctl_run(*args):
    """The page's systemctl (the emulation), for the test's own starts and stops."""
    return run([os.path.join(WORK, "bin", "systemctl")] + list(args))


def batv_cli(*args):
    r = run([BATV, "--keys", KEYRING] + list(args))
    return r.stdout.strip(), r.returncode


def signed(addr, original=ALICE, key="[0-9]"):
    return bool(re.fullmatch(TAG.replace("[0-9]", key, 1) + re.escape(original), addr or ""))


def logged(pattern, seconds=5):
    return wait_for(lambda: re.search(pattern, maillog()), seconds)


def secrets():
    return re.findall(r"^key \d \S+ (?:base64:|hex:|text:)(\S+)", read(KEYRING), re.M)


def queue_files(d):
    return glob.glob(f"{d}/qf*") + glob.glob(f"{d}/[0-9]*/qf*")


def smtp6(source, sender, rcpt, marker=None):
    """One session over IPv6 with smtplib (Debian's MTA-v6 on [::1]:25). Returns (MAIL reply,
    RCPT reply, DATA reply or None) as (code, text) pairs."""
    s = smtplib.SMTP(timeout=60, source_address=(source, 0))
    try:
        s.connect("::1", 25)
        s.ehlo("client6.remote.example")
        mail = s.mail(sender)
        if mail[0] != 250:
            return mail, None, None
        rc = s.rcpt(rcpt)
        data = None
        if marker and rc[0] == 250:
            try:
                data = s.data(f"Subject: v6 {marker}\r\n\r\nmarker {marker}\r\n")
            except smtplib.SMTPDataError as e:
                data = (e.smtp_code, e.smtp_error)
        return mail, rc, data
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def local_submission(user, rcpt, marker):
    """Mail from a local program: /usr/sbin/sendmail (Debian's MSP, submit.cf) as the user."""
    return run(["runuser", "-u", user, "--", "/usr/sbin/sendmail", "-oi", "-t"],
               input=f"To: {rcpt}\nSubject: local {marker}\n\nmarker {marker}\n")


def mta_queue(rcpt, marker, sender="<>"):
    """A message put straight into the MTA's queue (/var/spool/mqueue) with the MTA's own
    configuration, as Sendmail keeps one whose delivery waits: its recipient is resolved again,
    through the socket map, at every queue run."""
    return run(["/usr/sbin/sendmail", "-C", "/etc/mail/sendmail.cf", "-odq", "-oi", "-f", sender, rcpt],
               input=f"Subject: queued {marker}\n\nmarker {marker}\n")


def mta_queue_id(marker):
    """The queue ID of the queued message with this marker, for reading its mail log lines."""
    for p in glob.glob("/var/spool/mqueue/df*"):
        if f"marker {marker}" in read(p):
            return os.path.basename(p)[2:]
    return None


def mta_queue_holds(marker):
    return any(f"marker {marker}" in read(p) for p in glob.glob("/var/spool/mqueue/df*"))


def checks_daemon_start(check_config):
    r = check_config
    out = r.stdout + r.stderr
    check("--check-config prints the effective settings and that the keyring loads",
          'sign_domains = ["example.test"]' in r.stdout and 'socket_group = "smmta"' in r.stdout
          and "# the keyring loads" in r.stdout, out)
    check("--check-config prints no secret", bool(secrets()) and not any(x in out for x in secrets()))
    st = os.stat("/run/batv")
    check("/run/batv (the unit's RuntimeDirectory): owner batv, mode 0750, not group- or world-writable",
          pwd_name(st.st_uid) == "batv" and (st.st_mode & 0o777) == 0o750, oct(st.st_mode))
    for sock in [MILTER_SOCK, MAP_SOCK]:
        st = os.stat(sock)
        check(f"{sock}: mode 0660, owner batv, group smmta (socket_mode, socket_group)",
              (st.st_mode & 0o777) == 0o660 and pwd_name(st.st_uid) == "batv"
              and grp.getgrgid(st.st_gid).gr_name == "smmta", oct(st.st_mode))
    ps = read(f"/proc/{main_pid()}/status")
    groups = {grp.getgrgid(int(g)).gr_name for g in re.search(r"^Groups:\s*(.*)$", ps, re.M).group(1).split()}
    limit = re.search(r"^Max open files\s+(\d+)", read(f"/proc/{main_pid()}/limits"), re.M)
    check("the daemon runs as the unit says: user batv, group batv, supplementary smmta, 8192 files, no new privileges",
          re.search(r"^Uid:\s+(\d+)", ps, re.M).group(1) == str(uid_of("batv")) and groups == {"smmta"}
          and limit and limit.group(1) == "8192" and re.search(r"^NoNewPrivs:\s+1", ps, re.M),
          f"{groups} {limit and limit.group(1)}\n{ps[:600]}")
    check("the daemon logged its start to syslog (facility mail)",
          bool(logged(r"<22>[^\n]*batv-milter\[\d+\]: started: milter on unix:/run/batv/milter\.sock, socketmap on unix:/run/batv/socketmap\.sock")),
          maillog()[-800:])


def pwd_name(uid):
    import pwd
    return pwd.getpwuid(uid).pw_name


def uid_of(name):
    import pwd
    return pwd.getpwnam(name).pw_uid


def checks_signing(recorder, queued_msp):
    run(["/usr/sbin/sendmail", "-Ac", "-q"])
    env = relayed(recorder, queued_msp, 30)
    check("the local submission queued while the daemon was absent leaves, signed, once it runs (sendmail -Ac -q)",
          bool(env) and signed(env[0]), env and env[:2])

    marker = uuid.uuid4().hex
    r = swaks(ALICE, BOB_REMOTE, client=SENDMAIL_ADDR, marker=marker)
    env = relayed(recorder, marker)
    tagged = env[0] if env else ""
    check(f"trusted network ({SENDMAIL_ADDR}): the smarthost gets MAIL FROM:<prvs=...={ALICE}>",
          signed(tagged) and env[1] == [BOB_REMOTE], env and env[:2] or r["_transcript"][-800:])
    original, rc = batv_cli("verify", tagged)
    check("... and the tag verifies with the batv command and the same keyring", rc == 0 and original == ALICE,
          (original, rc))

    marker = uuid.uuid4().hex
    r = swaks(ALICE, BOB_REMOTE, port=587, client=CLIENT_ADDR, marker=marker, auth=(ALICE, SASL_PASSWORD))
    env = relayed(recorder, marker)
    check(f"AUTH on 587 from the untrusted {CLIENT_ADDR} ({{auth_authen}}): signed",
          code(r.get("AUTH")) == 235 and bool(env) and signed(env[0]), env and env[:2] or r["_transcript"][-800:])

    marker = uuid.uuid4().hex
    r = swaks(ALICE, CAROL, client=CLIENT_ADDR, marker=marker)
    got = delivered("carol", marker)
    check(f"the untrusted {CLIENT_ADDR} without AUTH: its mail (to local carol) is delivered unsigned",
          bool(got) and f"Return-Path: <{ALICE}>" in got, got or r["_transcript"][-800:])
    r = swaks(ALICE, BOB_REMOTE, client=CLIENT_ADDR, quit_after="RCPT")
    check(f"... and it may not relay (Sendmail's own 550 5.7.1 Relaying denied, not BATV)",
          code(r.get("RCPT")) == 550 and "Relaying denied" in r.get("RCPT", ""), r.get("RCPT"))

    marker = uuid.uuid4().hex
    r = local_submission("alice", BOB_REMOTE, marker)
    env = relayed(recorder, marker, 30)
    check("a local submission (/usr/sbin/sendmail as alice, through the MSP): signed as alice@example.test",
          bool(env) and signed(env[0]), env and env[:2] or r.stderr)
    marker = uuid.uuid4().hex
    swaks("", BOB_REMOTE, client=SENDMAIL_ADDR, marker=marker)
    env = relayed(recorder, marker)
    check("the null sender goes out as MAIL FROM:<> (never signed)", bool(env) and env[0] == "", env and env[:2])
    marker = uuid.uuid4().hex
    swaks("someone@elsewhere.example", BOB_REMOTE, client=SENDMAIL_ADDR, marker=marker)
    env = relayed(recorder, marker)
    check("a sender outside sign_domains goes out unsigned", bool(env) and env[0] == "someone@elsewhere.example",
          env and env[:2])
    marker = uuid.uuid4().hex
    swaks(tagged, BOB_REMOTE, client=SENDMAIL_ADDR, marker=marker)
    env = relayed(recorder, marker)
    check("an already tagged sender is not tagged again", bool(env) and env[0] == tagged, env and env[:2])
    check("the signing is logged with Sendmail's queue id",
          bool(logged(r"batv-milter\[\d+\]: [0-9A-Za-z]{14}: from=<" + re.escape(ALICE) + r"> to=<-> action=sign reason=sent as <")),
          maillog()[-800:])
    return tagged


def checks_ipv6(recorder):
    """Debian's MTA-v6 daemon on [::1]:25 (enabled by the site): Sendmail writes the client's
    address as IPv6:0:0:0:0:0:0:0:1 in the milter's connect packet and in {client_addr}."""
    marker = uuid.uuid4().hex
    try:
        mail, rc, data = smtp6("::1", ALICE, BOB_REMOTE, marker)
    except OSError as e:
        check("IPv6: Sendmail answers on [::1]:25", False, e)
        return
    env = relayed(recorder, marker)
    check("IPv6: mail from ::1 (in trusted_networks) is signed",
          bool(env) and signed(env[0]), (mail, rc, data, env and env[:2]))
    check("IPv6: the session came through Debian's MTA-v6, client [IPv6:0:0:0:0:0:0:0:1] (the form of "
          "the milter's connect packet and {client_addr})",
          bool(re.search(r"daemon=MTA-v6, relay=\[IPv6:0:0:0:0:0:0:0:1\]", maillog())), maillog()[-600:])
    mail, rc, _ = smtp6(CLIENT6_ADDR, "", ALICE)
    check(f"IPv6: a bounce from the untrusted {CLIENT6_ADDR} to untagged alice: 550 5.7.1 (the session is judged, not tempfailed)",
          mail[0] == 250 and rc and rc[0] == 550 and b"5.7.1" in rc[1], (mail, rc))


def checks_bounces(tagged):
    r = swaks("", ALICE, quit_after="RCPT")
    check("bounce <> to untagged alice: 550 5.7.1 at RCPT (the milter)",
          code(r.get("RCPT")) == 550 and "5.7.1" in r["RCPT"] and "no BATV tag" in r["RCPT"], r.get("RCPT"))
    r = swaks(f"MAILER-DAEMON@remote.example", ALICE, quit_after="RCPT")
    check("bounce from MAILER-DAEMON@remote.example to untagged alice: 550 5.7.1",
          code(r.get("RCPT")) == 550 and "5.7.1" in r["RCPT"], r.get("RCPT"))
    check("the reject is logged: from=<> to=<alice@example.test> action=reject reason=untagged",
          bool(logged(r"batv-milter\[\d+\]: \S+: from=<> to=<" + re.escape(ALICE) + "> action=reject reason=untagged")),
          maillog()[-800:])

    marker = uuid.uuid4().hex
    r = swaks("", tagged, marker=marker)
    got = delivered("alice", marker)
    check(f"bounce to the freshly signed {tagged}: 250 at RCPT and after DATA",
          code(r.get("RCPT")) == 250 and code(r.get(".")) == 250, r["_transcript"][-800:])
    check("... delivered to the plain mailbox /var/mail/alice", bool(got) and not glob.glob("/var/mail/prvs*"), got)
    check("... the socket map answered OK alice@example.test, and the milter found the tag valid",
          bool(logged(r"action=rewrite reason=to <" + re.escape(ALICE) + ">"))
          and bool(logged(r"from=<> to=<" + re.escape(tagged) + "> action=accept reason=valid")), maillog()[-800:])

    shouted = "PRVS=" + tagged[5:15].upper() + tagged[15:]
    marker = uuid.uuid4().hex
    r = swaks("", shouted, marker=marker)
    check(f"bounce to {shouted} (the tag in upper case; the map gets the key as written, -f): delivered to alice",
          code(r.get(".")) == 250 and bool(delivered("alice", marker)), r["_transcript"][-800:])

    forged = tagged[:9] + ("000000" if tagged[9:15] != "000000" else "111111") + tagged[15:]
    old, _ = batv_cli("--now", str(int(time.time()) - 10 * DAY), "sign", ALICE)
    for what, addr in [("a forged tag", forged), (f"a tag signed 10 days ago ({old})", old),
                       ("a tag of an unknown key", "prvs=7" + tagged[6:])]:
        r = swaks("", addr, quit_after="RCPT")
        check(f"bounce to {what}: refused with 550 (Sendmail's 5.1.1 User unknown: the map said NOTFOUND)",
              code(r.get("RCPT")) == 550 and "5.1.1" in r["RCPT"], r.get("RCPT"))
        status, _ = batv_cli("status", addr)
        check(f"... the map did not rewrite it (the core says {status})",
              not re.search(r"to=<" + re.escape(addr) + r"> action=rewrite", maillog()), status)
    r = swaks("someone@remote.example", forged, quit_after="RCPT")
    check("ordinary mail to a forged tag: 550 too", code(r.get("RCPT")) == 550, r.get("RCPT"))

    marker = uuid.uuid4().hex
    r = swaks("", CAROL, marker=marker)
    check("bounce to the exempt carol@example.test: accepted and delivered", bool(delivered("carol", marker)),
          r["_transcript"][-600:])
    marker = uuid.uuid4().hex
    r = swaks("someone@remote.example", ALICE, marker=marker)
    check("ordinary mail to untagged alice: accepted and delivered", bool(delivered("alice", marker)),
          r["_transcript"][-600:])
    r = swaks("", f"nosuchuser@{DOMAIN}", quit_after="RCPT")
    check("bounce to an unknown local user: Sendmail's own 550 5.1.1, before the milter",
          code(r.get("RCPT")) == 550 and "5.1.1" in r["RCPT"], r.get("RCPT"))
    return forged


def checks_monitor(tagged, forged):
    doc_apply("run monitor-on")
    time.sleep(0.5)
    check("monitor mode: the daemon reloaded its configuration (ExecReload, SIGHUP)",
          bool(logged(r"batv-milter\[\d+\]: reloaded /etc/batv/milter\.toml")), maillog()[-600:])
    marker = uuid.uuid4().hex
    r = swaks("", ALICE, marker=marker, headers=["X-BATV: forged by the sender"])
    got = delivered("alice", marker)
    check("monitor mode: an untagged bounce is accepted and delivered", code(r.get(".")) == 250 and bool(got),
          r["_transcript"][-600:])
    check("monitor mode: it carries one X-BATV header naming the recipient and reason; the sender's copy is gone",
          bool(got) and got.count("X-BATV:") == 1 and f"X-BATV: would reject <{ALICE}>: untagged" in got, got)
    marker = uuid.uuid4().hex
    r = swaks("", forged, marker=marker)
    got = delivered("alice", marker)
    check("monitor mode: a forged tag is accepted (the map answers with the address behind it), "
          "delivered to alice with X-BATV: ... bad-signature",
          bool(got) and f"X-BATV: would reject <{forged}>: bad-signature" in got, got or r["_transcript"][-600:])
    marker = uuid.uuid4().hex
    swaks("", tagged, marker=marker)
    got = delivered("alice", marker)
    check("monitor mode: a valid tag gets no X-BATV header", bool(got) and "X-BATV" not in got, got)
    check("monitor mode: the log says action=monitor", bool(logged(r"action=monitor reason=untagged")))
    doc_apply("run monitor-off")
    time.sleep(0.5)
    r = swaks("", ALICE, quit_after="RCPT")
    check("monitor mode off: the untagged bounce gets 550 5.7.1 again", code(r.get("RCPT")) == 550, r.get("RCPT"))
    r = swaks("", forged, quit_after="RCPT")
    check("monitor mode off: the forged tag gets 550 again", code(r.get("RCPT")) == 550, r.get("RCPT"))


def checks_keyring_removed(recorder, tagged):
    marker_queued = uuid.uuid4().hex
    mta_queue(tagged, marker_queued)
    check("a bounce to a valid tag waits in the MTA queue (/var/spool/mqueue), not yet delivered",
          mta_queue_holds(marker_queued) and not delivered("alice", marker_queued, 0.5))
    os.rename(KEYRING, KEYRING + ".away")
    try:
        time.sleep(1.2)  # the daemon looks at the keyring file at most once a second
        marker_bounce = uuid.uuid4().hex
        r = swaks("", ALICE, quit_after="RCPT")
        check("keyring removed: a bounce to untagged alice gets 451 4.3.0 (the milter), not 550",
              code(r.get("RCPT")) == 451 and "4.3.0" in r["RCPT"], r.get("RCPT"))
        r = swaks("", tagged, quit_after="RCPT")
        check("keyring removed: a bounce to a valid tag gets 451 4.3.0 (the map answers TEMP)",
              code(r.get("RCPT")) == 451 and "4.3.0" in r["RCPT"], r.get("RCPT"))
        print(f"      transcript: RCPT TO:<{tagged}> -> {r.get('RCPT')}", flush=True)
        marker_smtp = uuid.uuid4().hex
        r = swaks(ALICE, BOB_REMOTE, client=SENDMAIL_ADDR, marker=marker_smtp)
        check("keyring removed: outgoing SMTP mail gets 451 4.3.0 at the end of DATA, not sent untagged",
              code(r.get(".")) == 451 and relayed(recorder, marker_smtp, 2) is None, r["_transcript"][-600:])
        marker_local = uuid.uuid4().hex
        local_submission("alice", BOB_REMOTE, marker_local)
        check("keyring removed: a local submission waits in the MSP queue, not sent untagged",
              wait_for(lambda: msp_queue_holds(marker_local), 15) and relayed(recorder, marker_local, 1) is None,
              run(["mailq", "-Ac"]).stdout)
        run(["/usr/sbin/sendmail", "-q"])
        check("keyring removed: a queue run defers the queued bounce (the map's TEMP), which stays queued",
              mta_queue_holds(marker_queued) and not delivered("alice", marker_queued, 1)
              and re.search(r"\(batv map: lookup \(" + re.escape(tagged) + r"\): defer\)", run(["mailq"]).stdout),
              run(["mailq"]).stdout)
        marker_ord = uuid.uuid4().hex
        swaks("someone@remote.example", ALICE, marker=marker_ord)
        check("keyring removed: ordinary incoming mail is still delivered (it needs no key)",
              bool(delivered("alice", marker_ord)))
        check("keyring removed: the daemon logs the problem, naming the file",
              bool(logged(r"action=tempfail reason=keyring /etc/batv/batv\.keys: cannot read")), maillog()[-800:])
    finally:
        os.rename(KEYRING + ".away", KEYRING)
    time.sleep(1.2)
    r = swaks("", tagged, marker=marker_bounce)
    check("keyring restored: the bounce, retried by its sender, is accepted and delivered",
          code(r.get(".")) == 250 and bool(delivered("alice", marker_bounce)), r["_transcript"][-600:])
    run(["/usr/sbin/sendmail", "-Ac", "-q"])
    env = relayed(recorder, marker_local, 30)
    check("keyring restored: the waiting local submission leaves, signed", bool(env) and signed(env[0]),
          env and env[:2])
    queue_id = mta_queue_id(marker_queued)
    run(["/usr/sbin/sendmail", "-q"])
    check("keyring restored: the queued bounce to the tag is delivered to alice at the next queue run",
          # The queue runner removes the queue file only after the local mailer has returned.
          bool(delivered("alice", marker_queued, 20))
          and wait_for(lambda: not mta_queue_holds(marker_queued), 10),
          run(["mailq"]).stdout + f"the mail log of {queue_id}:\n"
          + "\n".join(l for l in maillog().splitlines() if queue_id and queue_id in l))


def checks_daemon_killed(recorder, tagged):
    pid = main_pid()
    os.kill(pid, signal.SIGKILL)
    wait_for(lambda: main_pid() is None and not socket_answers(MILTER_SOCK), 10)
    check("after SIGKILL the daemon's sockets are left behind (stale)",
          os.path.exists(MILTER_SOCK) and os.path.exists(MAP_SOCK) and not socket_answers(MILTER_SOCK),
          (glob.glob("/run/batv/*"), socket_answers(MILTER_SOCK), pid, main_pid()))
    r = swaks("", tagged, quit_after="RCPT")
    check("daemon killed: a bounce to a valid tag is tempfailed (451 4.3.2 at MAIL, F=T), not rejected",
          code(r.get("MAIL")) == 451 or code(r.get("RCPT")) == 451, r["_transcript"][-600:])
    r = swaks("someone@remote.example", ALICE, quit_after="RCPT")
    check("daemon killed: ordinary incoming mail is tempfailed too (4xx), never 5xx",
          code(r.get("MAIL")) == 451 or code(r.get("RCPT")) == 451, r["_transcript"][-600:])
    out = run(["/usr/sbin/sendmail", "-bv", tagged])
    check("daemon killed: Sendmail resolves a tagged recipient to the 4.3.0 error (the map is down), not User unknown",
          "mailer *error*, host 4.3.0" in out.stdout, out.stdout + out.stderr)
    waiting = []
    for _ in range(3):
        m = uuid.uuid4().hex
        local_submission("alice", BOB_REMOTE, m)
        waiting.append(m)
    marker_queued = uuid.uuid4().hex
    mta_queue(tagged, marker_queued)
    run(["/usr/sbin/sendmail", "-q"])
    check("daemon killed: local submissions wait in the MSP queue, the queued bounce in the MTA queue",
          wait_for(lambda: all(msp_queue_holds(m) for m in waiting), 15) and mta_queue_holds(marker_queued)
          and all(relayed(recorder, m, 0.2) is None for m in waiting), run(["mailq", "-Ac"]).stdout)
    first = pid
    systemctl_run("start", "batv-milter")
    check("restarted (systemctl start): the stale sockets are replaced by a new daemon, which answers on them",
          bool(daemon_up()) and main_pid() != first
          and bool(logged(rf"batv-milter\[{main_pid()}\]: started")), maillog()[-600:])
    run(["/usr/sbin/sendmail", "-Ac", "-q"])
    run(["/usr/sbin/sendmail", "-q"])
    envs = [relayed(recorder, m, 30) for m in waiting]
    check("restarted: every waiting local submission leaves, signed; none lost",
          all(e and signed(e[0]) for e in envs), [e and e[:2] for e in envs])
    check("restarted: the queued bounce is delivered to alice", bool(delivered("alice", marker_queued, 20)))


def checks_rotation(recorder, tagged):
    doc_apply("run rotate")
    time.sleep(1.2)
    marker = uuid.uuid4().hex
    swaks(ALICE, BOB_REMOTE, client=SENDMAIL_ADDR, marker=marker)
    env = relayed(recorder, marker)
    check("after rotation (the page's block) outgoing mail is signed with key 2",
          bool(env) and signed(env[0], key="2"), env and env[:2])
    marker = uuid.uuid4().hex
    r = swaks("", tagged, marker=marker)
    check("after rotation a bounce to a key-1 tag is still delivered", bool(delivered("alice", marker)),
          r["_transcript"][-600:])
    st = os.stat(KEYRING)
    check("the rotated keyring keeps owner root, group batv, mode 0640",
          st.st_uid == 0 and grp.getgrgid(st.st_gid).gr_name == "batv" and (st.st_mode & 0o777) == 0o640,
          oct(st.st_mode))


def checks_queued_tag_expires(tagged):
    """The limit the page describes under "Queued mail": Sendmail resolves a queued recipient
    again at every queue run, through the map; a tag that stopped verifying meanwhile (expired,
    or its key deleted) is then an unknown user, and the message is returned: to the null
    sender of a bounce, that is a notice to the postmaster, and the body is gone."""
    marker = uuid.uuid4().hex
    mta_queue(tagged, marker)
    keys = read(KEYRING)
    # The page's rotation advice, taken too early: delete key 1 while its tag is queued.
    write(KEYRING, re.sub(r"^key 1 .*\n", "", keys, flags=re.M))
    time.sleep(1.2)
    run(["/usr/sbin/sendmail", "-q"])
    notice = wait_for(lambda: re.search(r"^Subject: Postmaster notify: see transcript for details$", mailbox("root"), re.M)
                      and f"Subject: queued {marker}" in mailbox("root"), 20)
    check("queued mail (the page's limit): a queued bounce whose tag's key was deleted before its queue run "
          "is User unknown then; the postmaster (root) gets a notice with its headers only (Debian's nobodyreturn)",
          bool(notice) and not delivered("alice", marker, 0.5) and wait_for(lambda: not mta_queue_holds(marker), 10),
          mailbox("root")[-1500:])


def checks_nothing_lost():
    check("nothing was lost: the MTA and MSP queues are empty",
          wait_for(lambda: not queue_files("/var/spool/mqueue") and not queue_files("/var/spool/mqueue-client"), 30),
          run(["mailq"]).stdout + run(["mailq", "-Ac"]).stdout)
    dsn = [p for p in glob.glob("/var/mail/*") if re.search(r"^Subject: (Returned mail|Warning: could not send)", read(p), re.M)]
    check("nothing was lost: no mailbox holds a returned-mail notice", not dsn, dsn)
    text = maillog() + read(daemon_log())
    check("no secret in the mail log or the daemon's output", bool(secrets()) and not any(x in text for x in secrets()))


def main():
    global WORK
    if "--systemctl" in sys.argv:
        # The unit emulation, as the page's blocks call it (WORK/bin/systemctl).
        i = sys.argv.index("--systemctl")
        ap = argparse.ArgumentParser()
        ap.add_argument("--work", required=True)
        WORK = os.path.abspath(ap.parse_args(sys.argv[1:i]).work)
        return systemctl(sys.argv[i + 1:])
    ap = argparse.ArgumentParser()
    ap.add_argument("--work")
    ap.add_argument("--debs")
    ap.add_argument("--built", action="store_true", help="the page's build block ran before (tests/sendmail/run)")
    ap.add_argument("--print-block", metavar="NAME")
    args = ap.parse_args()
    if args.print_block:
        sys.stdout.write(BLOCKS[f"run {args.print_block}"]["body"])
        return 0
    if not (args.work and args.debs):
        ap.error("--work and --debs are required")
    WORK = os.path.abspath(args.work)
    debs = os.path.abspath(args.debs)
    if args.built:
        APPLIED.add("run build")
    if os.getpid() == 1:
        return init(lambda: drive(debs))
    raise SystemExit("check.py --work must run as PID 1 of its own namespaces (tests/sendmail/run)")


def init(body):
    """PID 1 of the namespaces: runs the test in a child and reaps every orphan (Sendmail's
    daemon and queue runners end up here), so that no zombie passes for a live process."""
    child = os.fork()
    if child == 0:
        try:
            code_ = body()
        except SystemExit as e:
            if isinstance(e.code, str):
                print(e.code, file=sys.stderr, flush=True)
                code_ = 2
            else:
                code_ = e.code or 0
        except BaseException:
            import traceback
            traceback.print_exc()
            code_ = 2
        sys.stdout.flush()
        os._exit(code_)
    signal.signal(signal.SIGTERM, lambda *_: os.kill(child, signal.SIGTERM))
    while True:
        pid, status = os.wait()
        if pid == child:
            return os.waitstatus_to_exitcode(status)


# The page's blocks that Sendmail reads; the others install and run the daemon.
SENDMAIL_SIDE = {"file /etc/mail/m4/batv.m4", "insert /etc/mail/sendmail.mc", "run sendmail-cf",
                 "insert /etc/mail/submit.mc", "run submit-cf"}
# Applied by the checks that are about them.
APPLIED_BY_CHECKS = {"run monitor-on", "run monitor-off", "run rotate"}


def drive(debs):
    if os.path.exists(WORK):
        shutil.rmtree(WORK)
    os.makedirs(WORK)
    with open(os.path.join(WORK, "pidns"), "w") as f:
        f.write(str(os.stat("/proc/self/ns/pid").st_ino))
    t0 = time.time()
    setup_namespace(WORK)
    install_systemctl()
    print("--- Debian's sendmail packages, installed in the private layer", flush=True)
    out = install_sendmail(debs)
    checks_install(out)
    site_setup(debs)
    t_install = time.time() - t0
    times = {}

    recorder = Recorder((SMARTHOST_ADDR, 25))
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    try:
        print("--- stock Debian Sendmail with the test site", flush=True)
        r = sendmail_service("start")
        if not wait_listening(25) or not wait_listening(587):
            raise SystemExit(f"Sendmail did not start listening\n{r.stdout}{r.stderr}\n{maillog()[-3000:]}")
        checks_stock(recorder)

        # The Sendmail half of the page first, while the daemon does not run yet: configuring
        # Sendmail before the daemon starts must lose nothing either.
        print("--- docs/sendmail.md: Sendmail's blocks; batv-milter not started yet", flush=True)
        for key in BLOCKS:
            if key in SENDMAIL_SIDE:
                doc_apply(key)
        if not wait_listening(25):
            raise SystemExit(f"Sendmail did not come back after the page's restart\n{maillog()[-3000:]}")
        queued_msp = checks_doc_without_daemon(recorder)

        print("--- docs/sendmail.md: the daemon's blocks (batv-milter built from this tree)", flush=True)
        check_config = None
        for key in BLOCKS:
            if key in SENDMAIL_SIDE or key in APPLIED_BY_CHECKS or key in APPLIED:
                continue
            r = doc_apply(key)
            if key == "run check-config":
                check_config = r
        if not daemon_up():
            raise SystemExit(f"batv-milter did not start\n{read(daemon_log())[-2000:]}\n{maillog()[-2000:]}")
        t1 = time.time()
        log_at_start = len(maillog())
        checks_daemon_start(check_config)
        tagged = checks_signing(recorder, queued_msp)
        checks_ipv6(recorder)
        forged = checks_bounces(tagged)
        times["signing, IPv6, bounces"] = time.time() - t1
        t1 = time.time()
        checks_monitor(tagged, forged)
        times["monitor mode"] = time.time() - t1
        t1 = time.time()
        checks_keyring_removed(recorder, tagged)
        times["keyring removed"] = time.time() - t1
        t1 = time.time()
        checks_daemon_killed(recorder, tagged)
        times["daemon killed"] = time.time() - t1
        checks_rotation(recorder, tagged)
        check("Sendmail never found the daemon's sockets unsafe once it ran (no 'unsafe' in the mail log)",
              "unsafe" not in maillog()[log_at_start:], re.findall(r".*unsafe.*", maillog()[log_at_start:])[:3])
        checks_nothing_lost()
        checks_queued_tag_expires(tagged)
        check("every block of docs/sendmail.md was applied",
              set(BLOCKS) == APPLIED, f"not applied: {sorted(set(BLOCKS) - APPLIED)}")
    finally:
        r = sendmail_service("stop")
        gone = wait_for(lambda: not sendmail_pids(), 15)
        check("teardown: Debian's init script stops every Sendmail process", gone,
              f"left: {sendmail_pids()}; {r.stdout}{r.stderr}")
        pid = main_pid()
        if pid:
            os.kill(pid, signal.SIGTERM)
            stopped = wait_for(lambda: main_pid() is None, 10)
            check("teardown: batv-milter stops on SIGTERM and removes its sockets",
                  stopped and not os.path.exists(MILTER_SOCK) and not os.path.exists(MAP_SOCK))
            systemctl_run("stop", "batv-milter")
        recorder.shutdown()
    print(f"--- sendmail: {tally.passes} passed, {len(tally.failures)} failed (install and site {t_install:.0f} s, "
          + ", ".join(f"{k} {v:.0f} s" for k, v in times.items()) + f", all {time.time() - t0:.0f} s)", flush=True)
    if tally.failures:
        print("--- maillog tail:\n" + "\n".join(maillog().splitlines()[-60:]), flush=True)
        print("--- batv-milter output tail:\n" + read(daemon_log())[-2000:], flush=True)
    return 1 if tally.failures else 0


if __name__ == "__main__":
    sys.exit(main())
