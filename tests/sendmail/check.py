#!/usr/bin/env python3
"""Drives a real Sendmail 8.17 from Debian 12, configured as docs/sendmail.md says.

tests/sendmail/run starts this as root, as PID 1 of private mount, PID, network and UTS
namespaces (`unshare --mount --pid --fork --net --uts`). Here:

- overlays put a private writable layer over /etc, /usr, /var, /home, /root and /dev, and /run
  and /tmp are fresh tmpfs, so Debian's own sendmail packages are installed with dpkg, maintainer
  scripts and all, at the paths docs/sendmail.md names. The machine's MTA (Exim, say) is removed
  in that layer only; the machine's files and packages are never touched;
- the network namespace has its own loopback and nothing else: Sendmail listens on 127.0.0.1
  (25 and 587, as Debian configures it), the recording smarthost on 127.0.0.2:25, and "remote"
  clients connect from 127.0.0.3;
- a listener on /dev/log keeps Sendmail's syslog lines in WORK/maillog.

When this process exits the kernel ends every process left in the namespaces.

Usage: check.py --work DIR --debs DIR      (inside the namespaces; tests/sendmail/run does it)
       check.py --print-block NAME        (print a `run` block of docs/sendmail.md)
Prints one `PASS:`/`FAIL:` line per check, then the checks that wait for batv-milter as
`PENDING:` lines; exits 1 if any check failed.
"""

import argparse
import glob
import os
import re
import shutil
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
import uuid

ROOT = os.environ.get("BATV_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOC = os.path.join(ROOT, "docs", "sendmail.md")
DOMAIN = "example.test"
HOSTNAME = f"mx.{DOMAIN}"
SENDMAIL_ADDR = "127.0.0.1"  # Debian's DAEMON_OPTIONS: MTA-v4 on port 25, MSP-v4 on 587
SMARTHOST_ADDR = "127.0.0.2"  # the recording listener, port 25 (the namespace's own loopback)
CLIENT_ADDR = "127.0.0.3"  # a "remote" client
USERS = ["alice", "bob", "carol"]
SASL_PASSWORD = "sasl password for the sendmail tests"
# Installed on the machine, these conflict with sendmail-bin; each is removed inside the
# private layer only (exim4-config and exim4-base declare the conflict too).
CONFLICTING = ["exim4-daemon-heavy", "exim4-daemon-light", "exim4-base", "exim4-config", "postfix",
               "courier-mta", "dma", "esmtp-run", "msmtp-mta", "nullmailer", "opensmtpd", "ssmtp"]
SENDMAIL_DEBS = ["sendmail-base", "sendmail-cf", "sendmail-bin", "sensible-mda"]

failures = []
passes = 0
WORK = None


def check(name, ok, detail=""):
    global passes
    if ok:
        passes += 1
        print(f"PASS: {name}", flush=True)
    else:
        failures.append(name)
        print(f"FAIL: {name}" + (f"\n      {detail}" if detail else ""), flush=True)
    return ok


def run(cmd, **kw):
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(cmd, **kw)


def must(cmd, **kw):
    r = run(cmd, **kw)
    if r.returncode != 0:
        raise SystemExit(f"setup failed: {cmd!r} exited {r.returncode}\n{r.stdout}{r.stderr}")
    return r


def sh(script, **kw):
    return must(["bash", "-euo", "pipefail", "-c", script], **kw)


def write(path, text, mode=None):
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    if mode is not None:
        os.chmod(path, mode)


def read(path):
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def wait_for(predicate, seconds=15):
    deadline = time.time() + seconds
    while time.time() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(0.1)
    return predicate()


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
    return blocks


BLOCKS = doc_blocks()
APPLIED = set()

# The blocks of the page that need batv-milter, which does not exist yet. The check that every
# block is applied or listed here keeps a new block from being skipped silently.
# BATV-MILTER: when the daemon lands, apply these in the page's order (see PENDING below).
WAITING_FOR_DAEMON = {
    "run build", "run install", "run user", "run keyring", "file /etc/batv/milter.toml",
    "run check-config", "file /etc/systemd/system/batv-milter.service", "run monitor-on",
    "run monitor-off", "run rotate",
}


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
        e = dict(os.environ)
        e.update(env or {})
        r = run(["bash", "-euo", "pipefail", "-c", b["body"]], cwd=ROOT, env=e)
        if r.returncode != 0:
            raise SystemExit(f"docs/sendmail.md block '{key}' failed ({r.returncode}):\n{r.stdout}{r.stderr}")
        return r


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
    for d in ["/etc", "/usr", "/var", "/home", "/root", "/dev"]:
        overlay(d, work)
    # No systemd, no host services: Debian's scripts see a machine where nothing runs yet.
    for d in ["/run", "/tmp", "/dev/shm"]:
        must(["mount", "-t", "tmpfs", "-o", "mode=1777" if d != "/run" else "mode=0755", "tmpfs", d])
    os.makedirs("/run/lock", mode=0o1777)
    must(["mount", "-t", "proc", "proc", "/proc"])
    must(["ip", "link", "set", "lo", "up"])
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


def site_setup(debs):
    """The test site, as its administrator would set it up before reading docs/sendmail.md:
    example.test is local, everything else leaves through the smarthost, no DNS; users alice,
    bob and carol, and alice may authenticate (SASL, Cyrus sasldb)."""
    with open("/etc/mail/local-host-names", "a") as f:
        f.write(DOMAIN + "\n")
    mc = read("/etc/mail/sendmail.mc")
    site = ("define(`SMART_HOST', `[" + SMARTHOST_ADDR + "]')dnl\n"
            "FEATURE(`accept_unresolvable_domains')dnl\n")
    write("/etc/mail/sendmail.mc", mc.replace("MAILER_DEFINITIONS\n", site + "MAILER_DEFINITIONS\n", 1))
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


class Recorder(socketserver.ThreadingMixIn, socketserver.TCPServer):
    allow_reuse_address = True
    daemon_threads = True

    def __init__(self, addr):
        self.envelopes = []
        self.lock = threading.Lock()
        super().__init__(addr, RecorderHandler)


class RecorderHandler(socketserver.StreamRequestHandler):
    def reply(self, line):
        self.wfile.write((line + "\r\n").encode())
        self.wfile.flush()

    def handle(self):
        self.reply("220 smarthost.test recorder ESMTP")
        mail_from, rcpts = None, []
        while True:
            raw = self.rfile.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            verb = line[:4].upper()
            if verb in ("EHLO", "HELO"):
                self.reply("250 smarthost.test")
            elif verb == "MAIL":
                m = re.match(r"(?i)MAIL FROM:\s*<([^>]*)>", line)
                mail_from, rcpts = (m.group(1) if m else line), []
                self.reply("250 OK")
            elif verb == "RCPT":
                m = re.match(r"(?i)RCPT TO:\s*<([^>]*)>", line)
                rcpts.append(m.group(1) if m else line)
                self.reply("250 OK")
            elif verb == "DATA":
                self.reply("354 go ahead")
                body = []
                while True:
                    l = self.rfile.readline()
                    if not l or l in (b".\r\n", b".\n"):
                        break
                    body.append(l.decode("utf-8", "replace"))
                with self.server.lock:
                    self.server.envelopes.append((mail_from, list(rcpts), "".join(body)))
                self.reply("250 recorded")
            elif verb == "QUIT":
                self.reply("221 bye")
                return
            else:
                self.reply("250 OK")


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


def swaks(sender, rcpt, port=25, client=CLIENT_ADDR, quit_after=None, marker=None, auth=None):
    """One SMTP session with swaks. Returns {command: last reply line} (EHLO, MAIL, RCPT, DATA,
    AUTH, the final dot as "."), for the commands that were sent."""
    cmd = ["swaks", "--server", SENDMAIL_ADDR, "--port", str(port), "--local-interface", client,
           "--helo", "client.remote.example", "--from", sender if sender else "<>", "--to", rcpt,
           "--timeout", "60"]
    if quit_after:
        cmd += ["--quit-after", quit_after]
    if marker:
        cmd += ["--header", f"Subject: test {marker}", "--body", f"marker {marker}\n"]
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


def mailbox(user):
    return read(f"/var/mail/{user}")


def delivered(user, marker, seconds=15):
    """The message with this marker in the user's mbox, waiting for delivery."""
    def find():
        box = mailbox(user)
        i = box.find(f"marker {marker}")
        if i < 0:
            return None
        return box[box.rfind("\nFrom ", 0, i) + 1:i]
    return wait_for(find, seconds)


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


# The checks that need the daemon. They are not run and not counted until batv-milter exists;
# they are printed as PENDING lines.
# BATV-MILTER: start the daemon here (the unit's ExecStart, as its User and Group, after the
# blocks marked in WAITING_FOR_DAEMON), then implement each of these.
PENDING = [
    "the daemon's sockets: /run/batv/milter.sock and socketmap.sock exist and Sendmail connects "
    "(no 'unsafe' in maillog: /run/batv must not be group- or world-writable)",
    "the MSP message queued above is delivered with a prvs= MAIL FROM once the daemon runs "
    "(sendmail -Ac -q)",
    "trusted 127.0.0.1 to bob@remote.example: the smarthost sees MAIL FROM:<prvs=1DDDssssss=alice@example.test>, "
    "and `batv verify` with the keyring accepts it",
    "AUTH on 587 ({auth_authen}) from the untrusted 127.0.0.3 is signed; the same without AUTH "
    "on 25 from 127.0.0.3 is relayed unsigned",
    "bounce <> to untagged alice@example.test: 550 5.7.1 at RCPT (the milter), nothing delivered",
    "bounce to the freshly signed address: 250, delivered to /var/mail/alice (socket map "
    "`batv prvs=...=alice@example.test` -> OK alice@example.test)",
    "upper-case PRVS and hex in the tag: the key reaches the daemon as written (-f), accepted",
    "forged and expired tags: refused (Sendmail's 550 5.1.1 after NOTFOUND, or the milter's 550 5.7.1)",
    "MAILER-DAEMON@remote.example to untagged alice: 550 5.7.1; exempt carol@example.test: delivered",
    "monitor mode (docs block): untagged bounce delivered with one X-BATV header; monitor off again",
    "keyring removed: bounce to a valid tag gets 451 (map TEMP or milter 451), outgoing mail is "
    "deferred and stays in /var/spool/mqueue; restored: delivered, queue empty",
    "daemon killed: 451 4.3.2 (F=T) and 451 4.3.0 (map), queued mail waits; restarted: the queue "
    "drains (sendmail -q), nothing lost",
    "key rotation (docs block): new mail signed with key 2, key 1 tags still delivered",
    "an IPv6 client in trusted_networks is signed: Sendmail writes {client_addr}, and the address "
    "of the milter's connect packet, as IPv6:0:0:0:0:0:0:0:1 (enable Debian's MTA-v6 daemon on ::1)",
    "no secret in maillog or the daemon's log",
]


def main():
    global WORK
    ap = argparse.ArgumentParser()
    ap.add_argument("--work")
    ap.add_argument("--debs")
    ap.add_argument("--print-block", metavar="NAME")
    args = ap.parse_args()
    if args.print_block:
        sys.stdout.write(BLOCKS[f"run {args.print_block}"]["body"])
        return 0
    if not (args.work and args.debs):
        ap.error("--work and --debs are required")
    WORK = os.path.abspath(args.work)
    debs = os.path.abspath(args.debs)
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


def drive(debs):
    if os.path.exists(WORK):
        shutil.rmtree(WORK)
    os.makedirs(WORK)
    with open(os.path.join(WORK, "pidns"), "w") as f:
        f.write(str(os.stat("/proc/self/ns/pid").st_ino))
    t0 = time.time()
    setup_namespace(WORK)
    print("--- Debian's sendmail packages, installed in the private layer", flush=True)
    out = install_sendmail(debs)
    checks_install(out)
    site_setup(debs)
    t_install = time.time() - t0

    recorder = Recorder((SMARTHOST_ADDR, 25))
    threading.Thread(target=recorder.serve_forever, daemon=True).start()
    try:
        print("--- stock Debian Sendmail with the test site", flush=True)
        r = sendmail_service("start")
        if not wait_listening(25) or not wait_listening(587):
            raise SystemExit(f"Sendmail did not start listening\n{r.stdout}{r.stderr}\n{maillog()[-3000:]}")
        checks_stock(recorder)

        print("--- docs/sendmail.md applied; batv-milter not running (it does not exist yet)", flush=True)
        for key in BLOCKS:
            if key not in WAITING_FOR_DAEMON:
                doc_apply(key)
        check("every block of docs/sendmail.md was applied or waits for batv-milter",
              set(BLOCKS) == APPLIED | (WAITING_FOR_DAEMON & set(BLOCKS)) and WAITING_FOR_DAEMON <= set(BLOCKS),
              f"neither: {sorted(set(BLOCKS) - APPLIED - WAITING_FOR_DAEMON)}; "
              f"listed but not in the page: {sorted(WAITING_FOR_DAEMON - set(BLOCKS))}")
        if not wait_listening(25):
            raise SystemExit(f"Sendmail did not come back after the page's restart\n{maillog()[-3000:]}")
        checks_doc_without_daemon(recorder)
    finally:
        r = sendmail_service("stop")
        gone = wait_for(lambda: not sendmail_pids(), 15)
        check("teardown: Debian's init script stops every Sendmail process", gone,
              f"left: {sendmail_pids()}; {r.stdout}{r.stderr}")
        recorder.shutdown()
    print(f"--- sendmail: {passes} passed, {len(failures)} failed "
          f"(install and site {t_install:.0f} s, all {time.time() - t0:.0f} s)", flush=True)
    for p in PENDING:
        print(f"PENDING (needs batv-milter): {p}", flush=True)
    if failures:
        print("--- maillog tail:\n" + "\n".join(maillog().splitlines()[-40:]), flush=True)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
