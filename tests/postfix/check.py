#!/usr/bin/env python3
"""Drives a real Postfix 3.7 (Debian 12's package, unpacked, never installed) configured exactly
as docs/postfix.md says, with batv-milter as its milter and socketmap table.

Run by tests/postfix/run as root inside a private mount namespace (`unshare --mount`): overlays
put the unpacked postfix package over /usr, /etc and /var (writes go to directories under
--work), so that the blocks of docs/postfix.md run verbatim at the paths they name while the
machine's own files, and the Exim the Exim step installed, stay untouched.

Usage: check.py --root DIR --work DIR     (DIR of --root: the unpacked postfix .deb)
       check.py --print-block NAME        (print a `run` block of docs/postfix.md)
Prints one `PASS:`/`FAIL:` line per check and a closing count; exits 1 if any check failed.
"""

import argparse
import atexit
import glob
import grp
import os
import pwd
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
from mta import check, delivered, doc_blocks, mailbox, must, run, socket_answers, tally, wait_for  # noqa: E402

ROOT = os.environ.get("BATV_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOC = os.path.join(ROOT, "docs", "postfix.md")
DOMAIN = "example.test"
REMOTE = "remote.example"
POSTFIX_ADDR = "127.0.0.1"
# Clients that are not in trusted_networks (127.0.0.1/32 in the doc) connect from here.
OUTSIDE_ADDR = "127.0.0.3"
SINK_ADDR = "127.0.0.2"
SUBMISSION_PORT = 587
USERS = ["alice", "bob", "carol", "dave"]
SASL_PASSWORD = "submission password for the batv tests"
KEYRING = "/etc/batv/batv.keys"
TOML = "/etc/batv/milter.toml"
UNIT = "/etc/systemd/system/batv-milter.service"
MILTER = "/usr/local/sbin/batv-milter"
BATV = "/usr/local/bin/batv"
LIBBATV = os.path.join(ROOT, "target", "release", "libbatv.so")
DAY = 86400


# Whatever this run started, stopped when it ends however it ends (the namespace does not
# end the processes in it).
STARTED = []
POSTFIX_STARTED = [False]


def cleanup():
    if POSTFIX_STARTED[0]:
        subprocess.run(["postfix", "stop"], capture_output=True)
        POSTFIX_STARTED[0] = False
    for p in STARTED:
        if p.poll() is None:
            p.terminate()
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


atexit.register(cleanup)


# ---------------------------------------------------------------------------------------------
# docs/postfix.md: the blocks the test installs and runs

FILES, RUNS = doc_blocks(DOC, "postfix")
APPLIED = []


def doc_run(name):
    """Runs a `run` block of docs/postfix.md verbatim with bash -e, from the source tree."""
    r = run(["bash", "-euo", "pipefail", "-c", RUNS[name]], cwd=ROOT)
    if r.returncode != 0:
        raise SystemExit(f"docs/postfix.md block '{name}' failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    APPLIED.append(("run", name))
    return r


def doc_file(path):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(FILES[path])
    APPLIED.append(("file", path))


# ---------------------------------------------------------------------------------------------
# The namespace: overlays over /usr, /etc and /var


def overlay(target, lower, work, name):
    up, wk = os.path.join(work, name + "-up"), os.path.join(work, name + "-work")
    os.makedirs(up)
    os.makedirs(wk)
    must(["mount", "-t", "overlay", "overlay", "-o", f"lowerdir={lower},upperdir={up},workdir={wk}", target])


def free_port(addr):
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


def setup_namespace(pfroot, work):
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    must(["mount", "--make-rprivate", "/"])
    overlay("/usr", f"{pfroot}/usr:/usr", work, "usr")
    overlay("/etc", f"{pfroot}/etc:/etc", work, "etc")
    overlay("/var", f"{pfroot}/var:/var", work, "var")


class Syslog:
    """A syslog receiver (unix datagram socket) standing in for the machine's: the daemon's
    `log = "syslog"` lines land here with their facility."""

    def __init__(self, work):
        self.lines, self.lock = [], threading.Lock()
        self.path = os.path.join(work, "syslog.sock")
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        os.chmod(self.path, 0o666)
        if os.path.exists("/dev/log"):
            must(["mount", "--bind", self.path, "/dev/log"])
        else:
            # /var is our overlay: /var/run (a symlink to /run below) becomes a directory,
            # and /var/run/syslog is the next place a syslog client looks.
            os.remove("/var/run")
            os.makedirs("/var/run")
            os.symlink(self.path, "/var/run/syslog")
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            data = self.sock.recv(65536).decode("utf-8", "replace")
            with self.lock:
                self.lines.append(data)

    def text(self):
        with self.lock:
            return "\n".join(self.lines)


def prepare_site(work, smtp_port, sink_port):
    """What Debian's postinst and a site admin would have done before docs/postfix.md."""
    ids = {}
    nxt = 41100
    with open("/etc/passwd", "a") as pw, open("/etc/group", "a") as gr:
        used = {p.pw_uid for p in pwd.getpwall()}
        used |= {int(l.split(":")[2]) for l in open("/etc/group") if l.count(":") >= 3}

        def take():
            nonlocal nxt
            while nxt in used:
                nxt += 1
            used.add(nxt)
            return nxt

        pid, gid, dropgid = take(), take(), take()
        pw.write(f"postfix:x:{pid}:{gid}::/var/spool/postfix:/usr/sbin/nologin\n")
        gr.write(f"postfix:x:{gid}:\npostdrop:x:{dropgid}:\n")
        for u in USERS:
            i = take()
            ids[u] = i
            pw.write(f"{u}:x:{i}:{i}:{u}:/home/{u}:/bin/sh\n")
            gr.write(f"{u}:x:{i}:\n")
    with open("/etc/mailname", "w") as f:
        f.write(f"mx.{DOMAIN}\n")
    with open("/etc/hosts", "w") as f:
        f.write(f"127.0.0.1 mx.{DOMAIN} localhost {socket.gethostname()}\n{SINK_ADDR} sink.test\n"
                f"{OUTSIDE_ADDR} outside.test\n")
    with open("/etc/resolv.conf", "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    os.makedirs("/var/mail", exist_ok=True)
    shutil.chown("/var/mail", "root", "mail")
    os.chmod("/var/mail", 0o2775)
    shutil.copy("/usr/share/postfix/master.cf.dist", "/etc/postfix/master.cf")
    shutil.copy("/usr/share/postfix/main.cf.debian", "/etc/postfix/main.cf")
    for src, dst in [("dynamicmaps.cf", "dynamicmaps.cf"), ("main.cf.dist", "main.cf.proto"),
                     ("master.cf.dist", "master.cf.proto"), ("makedefs.out", "makedefs.out")]:
        shutil.copy(f"/usr/share/postfix/{src}", f"/etc/postfix/{dst}")
    with open("/etc/aliases", "w") as f:
        f.write("postmaster: root\nroot: alice\n")
    site = [
        f"myhostname = mx.{DOMAIN}", f"mydomain = {DOMAIN}", "myorigin = /etc/mailname",
        f"mydestination = $myhostname, {DOMAIN}, localhost", "inet_interfaces = 127.0.0.1",
        "inet_protocols = ipv4", "mynetworks = 127.0.0.1/32", f"relayhost = [{SINK_ADDR}]:{sink_port}",
        "smtp_dns_support_level = disabled", "alias_maps = hash:/etc/aliases",
        "alias_database = hash:/etc/aliases", "maillog_file = /var/log/postfix.log",
        "smtpd_relay_restrictions = permit_mynetworks, permit_sasl_authenticated, reject_unauth_destination",
        "mailbox_size_limit = 0", "smtpd_sasl_path = smtpd", "cyrus_sasl_config_path = /etc/postfix/sasl",
        "queue_run_delay = 300s", "minimal_backoff_time = 300s",
    ]
    must(["postconf", "-e"] + site)
    # The SMTP service on a free port (the machine's port 25 is not ours to take).
    must(["postconf", "-MX", "smtp/inet"])
    must(["postconf", "-M", f"{POSTFIX_ADDR}:{smtp_port}/inet={POSTFIX_ADDR}:{smtp_port} inet n - y - - smtpd"])
    must(["postalias", "/etc/aliases"])
    # SASL users for the submission service: Cyrus sasldb, read by smtpd in its chroot.
    with open("/etc/postfix/sasl/smtpd.conf", "w") as f:
        f.write("pwcheck_method: auxprop\nauxprop_plugin: sasldb\nmech_list: PLAIN LOGIN\n"
                "sasldb_path: /etc/sasldb2\n")
    os.makedirs("/var/spool/postfix/etc", exist_ok=True)
    must(["saslpasswd2", "-p", "-c", "-f", "/etc/sasldb2", "-u", DOMAIN, "alice"], input=SASL_PASSWORD)
    for sasldb in ["/etc/sasldb2", "/var/spool/postfix/etc/sasldb2"]:
        if sasldb != "/etc/sasldb2":
            shutil.copy("/etc/sasldb2", sasldb)
        shutil.chown(sasldb, "root", "postfix")
        os.chmod(sasldb, 0o640)
    # Ownership and set-gid bits, as the package's postinst sets them.
    must(["postfix", "set-permissions"])
    os.makedirs("/home", exist_ok=True)
    for u, i in ids.items():
        os.makedirs(f"/home/{u}", exist_ok=True)
        os.chown(f"/home/{u}", i, i)


# ---------------------------------------------------------------------------------------------
# Postfix, the sink, the daemon


class Postfix:
    def start(self):
        must(["/usr/lib/postfix/configure-instance.sh", "-"])
        r = run(["postfix", "check"])
        if r.returncode != 0 or r.stderr.strip():
            print(f"postfix check: {r.stdout}{r.stderr}", flush=True)
        must(["postfix", "start"])
        POSTFIX_STARTED[0] = True

    def stop(self):
        run(["postfix", "stop"])
        POSTFIX_STARTED[0] = False
        wait_for(lambda: run(["postfix", "status"]).returncode != 0, 15)

    def queue(self):
        return run(["postqueue", "-p"]).stdout

    def queue_ids(self):
        return re.findall(r"^([0-9A-Za-z]{6,})[*!]?\s", self.queue(), re.M)

    def flush(self):
        run(["postqueue", "-f"])
        run(["postkick", "public", "pickup", "W"])

    def log(self):
        try:
            with open("/var/log/postfix.log", encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


class Sink:
    """smtp-sink (from the postfix package) as Postfix's relay host: each transaction to a file
    whose X-Mail-Args and X-Rcpt-Args headers are the envelope."""

    def __init__(self, work, port, dump=True):
        self.dir = os.path.join(work, "sink")
        os.makedirs(self.dir)
        os.chmod(self.dir, 0o777)
        cmd = ["smtp-sink", "-u", "nobody"] + (["-d", f"{self.dir}/%Y%m%d%H%M%S."] if dump else [])
        self.proc = subprocess.Popen(cmd + [f"{SINK_ADDR}:{port}", "256"])
        STARTED.append(self.proc)
        wait_for(lambda: self._listening(port), 10)

    @staticmethod
    def _listening(port):
        try:
            with socket.create_connection((SINK_ADDR, port), timeout=1):
                return True
        except OSError:
            return False

    def envelopes(self):
        out = []
        for p in sorted(glob.glob(os.path.join(self.dir, "*"))):
            with open(p, encoding="utf-8", errors="replace") as f:
                text = f.read()
            m = re.search(r"^X-Mail-Args: <([^>]*)>(.*)$", text, re.M)
            rcpts = re.findall(r"^X-Rcpt-Args: <([^>]*)>", text, re.M)
            out.append((m.group(1) if m else None, m.group(2).strip() if m else "", rcpts, text))
        return out

    def find(self, marker, seconds=20):
        def f():
            for env in self.envelopes():
                if f"marker {marker}" in env[3]:
                    return env
            return None
        return wait_for(f, seconds)

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


def unit_setting(key):
    vals = re.findall(rf"^{key}=(.*)$", FILES[UNIT], re.M)
    return vals[-1].strip() if vals else None


class Daemon:
    """batv-milter as the doc's systemd unit runs it: its ExecStart, as its User, Group and
    SupplementaryGroups; ExecReload with $MAINPID for SIGHUP."""

    def __init__(self, work):
        self.log_path = os.path.join(work, "batv-milter.stderr")
        self.proc = None

    def start(self):
        user, group, extra = unit_setting("User"), unit_setting("Group"), unit_setting("SupplementaryGroups")
        cmd = ["setpriv", f"--reuid={user}", f"--regid={group}", f"--groups={extra}", "--"]
        cmd += shlex.split(unit_setting("ExecStart"))
        self.stderr = open(self.log_path, "a")
        self.proc = subprocess.Popen(cmd, stderr=self.stderr, stdout=self.stderr)
        STARTED.append(self.proc)
        sock = "/var/spool/postfix/batv/milter.sock"
        if not wait_for(lambda: os.path.exists(sock) and socket_answers(sock), 15):
            raise SystemExit(f"batv-milter did not start:\n{self.output()}")

    def reload(self):
        cmd = unit_setting("ExecReload").replace("$MAINPID", str(self.proc.pid))
        must(shlex.split(cmd))
        time.sleep(0.5)

    def kill(self, sig=signal.SIGKILL):
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(sig)
            self.proc.wait(timeout=10)

    def output(self):
        try:
            with open(self.log_path, encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""


# ---------------------------------------------------------------------------------------------
# Clients


def swaks(port, sender, rcpts, source=OUTSIDE_ADDR, body=None, auth=False, extra=()):
    """One transaction with swaks. Returns (exit code, transcript)."""
    cmd = ["swaks", "--server", POSTFIX_ADDR, "--port", str(port), "--local-interface", source,
           "--ehlo", "client.test", "--from", sender, "--to", ",".join(rcpts), "--timeout", "30"]
    if body is not None:
        cmd += ["--body", body]
    if auth:
        cmd += ["--auth", "PLAIN", "--auth-user", f"alice@{DOMAIN}", "--auth-password", SASL_PASSWORD]
    cmd += list(extra)
    r = run(cmd, timeout=90)
    return r.returncode, r.stdout + r.stderr


def rcpt_reply(transcript, rcpt):
    """The server's reply line to RCPT TO:<rcpt> in a swaks transcript."""
    lines = transcript.splitlines()
    for i, l in enumerate(lines):
        if re.search(rf"-> RCPT TO:<{re.escape(rcpt)}>", l):
            for nxt in lines[i + 1:]:
                m = re.match(r"\s*<[~*]{0,2}\*?\s*(\d{3}[ -].*)", nxt)
                if m and m.group(1)[3] == " ":
                    return m.group(1)
            break
    return ""


def smtp(port, sender, rcpts, source=OUTSIDE_ADDR, body=None, mail_options=()):
    """One transaction with smtplib. Returns ([(rcpt, code, text)], data (code, text) or None)."""
    s = smtplib.SMTP(POSTFIX_ADDR, port, source_address=(source, 0), timeout=60)
    try:
        s.ehlo("client.test")
        code, msg = s.mail(sender, list(mail_options))
        if code != 250:
            return [(r, code, msg.decode()) for r in rcpts], None
        res = []
        for r in rcpts:
            code, msg = s.rcpt(r)
            res.append((r, code, msg.decode(errors="replace")))
        data = None
        if body is not None and any(c == 250 for _, c, _ in res):
            try:
                data = s.data(body)
                data = (data[0], data[1].decode(errors="replace"))
            except smtplib.SMTPDataError as e:
                data = (e.smtp_code, e.smtp_error.decode(errors="replace"))
        else:
            s.rset()
        return res, data
    finally:
        try:
            s.quit()
        except (smtplib.SMTPException, OSError):
            pass


def message(marker, sender, extra_headers=""):
    return (f"From: {sender or 'MAILER-DAEMON@' + REMOTE}\r\nTo: <undisclosed@{DOMAIN}>\r\n"
            f"Subject: test {marker}\r\nMessage-ID: <{marker}@client.test>\r\n{extra_headers}\r\n"
            f"marker {marker}\r\n")


def sendmail(sender, rcpt, marker, user=None):
    """Mail through sendmail(1) (Postfix's non_smtpd_milters path), as root with -f."""
    cmd = ["sendmail", "-f", sender, "-oi", rcpt]
    if user:
        cmd = ["runuser", "-u", user, "--", "sendmail", "-oi", rcpt]
    return run(cmd, input=f"Subject: outgoing {marker}\n\nmarker {marker}\n")


def strip_tag(address):
    r = run([BATV, "strip", address])
    return r.stdout.strip()


def batv_cli(*args):
    r = run([BATV, "--keys", KEYRING] + list(args))
    return r.stdout.strip(), r.returncode


# ---------------------------------------------------------------------------------------------
# The checks


def bring_up(root, work, dump=True, site_settings=()):
    """The namespace, the site, every install block of docs/postfix.md, then the sink, the
    daemon and Postfix, started. Returns them in a dict."""
    setup_namespace(root, work)
    version = run(["postconf", "-dh", "mail_version"]).stdout.strip()
    print(f"--- Postfix {version} (Debian package unpacked under {root}) with docs/postfix.md", flush=True)
    smtp_port, sink_port = free_port(POSTFIX_ADDR), free_port(SINK_ADDR)
    syslog = Syslog(work)
    prepare_site(work, smtp_port, sink_port)
    if site_settings:
        must(["postconf", "-e"] + list(site_settings))

    # docs/postfix.md, in its order (the build block ran before the namespace).
    doc_run("install")
    doc_run("user")
    doc_run("keyring")
    doc_run("socket-dir")
    doc_file(TOML)
    r = doc_run("check-config")
    doc_file(UNIT)
    doc_run("main.cf")
    doc_run("master.cf")

    sink = Sink(work, sink_port, dump)
    daemon = Daemon(work)
    daemon.start()
    postfix = Postfix()
    postfix.start()
    return {"postfix": postfix, "sink": sink, "daemon": daemon, "syslog": syslog, "port": smtp_port,
            "sink_port": sink_port, "check_config": r, "version": version}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root")
    ap.add_argument("--work")
    ap.add_argument("--print-block", metavar="NAME")
    args = ap.parse_args()
    if args.print_block:
        sys.stdout.write(RUNS[args.print_block])
        return 0
    if not (args.root and args.work):
        ap.error("--root and --work are required")
    work = os.path.abspath(args.work)
    site = bring_up(os.path.abspath(args.root), work)
    postfix, sink, daemon, syslog, smtp_port = site["postfix"], site["sink"], site["daemon"], site["syslog"], site["port"]
    r = site["check_config"]
    secret = re.search(r"^key \d \S+ (\S+)", open(KEYRING).read(), re.M).group(1)
    check("--check-config prints the effective settings and that the keyring loads",
          "sign_domains = [\"example.test\"]" in r.stdout and "# the keyring loads" in r.stdout, r.stdout)
    check("--check-config prints no secret", secret not in r.stdout + r.stderr and "base64:" not in r.stdout)
    try:
        checks(postfix, sink, daemon, syslog, smtp_port)
    finally:
        postfix.stop()
        daemon.kill(signal.SIGTERM)
        sink.stop()
    check("on shutdown the daemon removed its sockets",
          not os.path.exists("/var/spool/postfix/batv/milter.sock")
          and not os.path.exists("/var/spool/postfix/batv/socketmap.sock"))
    applied = {n for _, n in APPLIED}
    missing = [n for n in list(FILES) + list(RUNS) if n not in applied and n != "build"]
    check("every block of docs/postfix.md was applied", not missing, missing)
    print(f"--- postfix: {tally.passes} passed, {len(tally.failures)} failed", flush=True)
    if tally.failures:
        print("--- postfix.log tail:\n" + "\n".join(postfix.log().splitlines()[-60:]))
        print("--- batv-milter stderr tail:\n" + "\n".join(daemon.output().splitlines()[-30:]))
        print("--- syslog tail:\n" + "\n".join(syslog.text().splitlines()[-30:]))
    print(f"{tally.passes} passed, {len(tally.failures)} failed")
    return 1 if tally.failures else 0


def checks(postfix, sink, daemon, syslog, port):
    alice, carol, dave = f"alice@{DOMAIN}", f"carol@{DOMAIN}", f"dave@{DOMAIN}"
    bob_remote = f"bob@{REMOTE}"
    tag_re = r"prvs=1\d{3}[0-9a-f]{6}="

    # 0. What the install blocks left: the man page, the sockets' owner, group and mode.
    try:
        man = open("/usr/local/share/man/man8/batv-milter.8", encoding="utf-8").read()
    except OSError as e:
        man = str(e)
    check("the man page batv-milter(8) was generated from the command line",
          ".TH batv-milter 8" in man and "check\\-config" in man, man[:300])
    for sock in ["/var/spool/postfix/batv/milter.sock", "/var/spool/postfix/batv/socketmap.sock"]:
        st = os.stat(sock)
        check(f"{sock}: mode 0660, owner batv, group postfix (socket_mode, socket_group)",
              (st.st_mode & 0o777) == 0o660 and pwd.getpwuid(st.st_uid).pw_name == "batv"
              and grp.getgrgid(st.st_gid).gr_name == "postfix", oct(st.st_mode))

    # 1. Outgoing: trusted network, submission (daemon name + SASL), sendmail(1).
    marker = uuid.uuid4().hex
    rc, out = swaks(port, alice, [bob_remote], source=POSTFIX_ADDR, body=f"marker {marker}")
    env = sink.find(marker)
    signed = env[0] if env else ""
    check("trusted network (127.0.0.1): mail to a remote domain leaves with a prvs= MAIL FROM",
          bool(re.fullmatch(tag_re + re.escape(alice), signed)), env and env[:3] or out[-1500:])
    check("... the relay host got the original recipient", bool(env) and env[2] == [bob_remote], env and env[2])
    original, code = batv_cli("verify", signed)
    check("... the tag verifies with the batv command and the same keyring", code == 0 and original == alice,
          (original, code))
    exim = shutil.which("exim4") or "/usr/sbin/exim4"
    if os.path.exists(LIBBATV) and os.path.exists(exim):
        r = run([exim, "-be", "${dlfunc{%s}{batv_exim_verify}{%s}{%s}}" % (LIBBATV, signed, KEYRING)])
        check("... and in Exim's ${dlfunc} face (batv_exim_verify) with the same keyring",
              r.stdout.strip() == alice, r.stdout + r.stderr)
    else:
        check("Exim and libbatv.so are here for the ${dlfunc} cross-check", False, f"{exim} {LIBBATV}")

    marker = uuid.uuid4().hex
    res, data = smtp(port, alice, [bob_remote], source=POSTFIX_ADDR, body=message(marker, alice),
                     mail_options=["BODY=8BITMIME"])
    env = sink.find(marker)
    check("the ESMTP arguments of MAIL FROM survive the sender change (BODY=8BITMIME at the relay host)",
          bool(env) and re.fullmatch(tag_re + re.escape(alice), env[0] or "") and "BODY=8BITMIME" in env[1],
          env and env[:2] or (res, data))

    marker = uuid.uuid4().hex
    rc, out = swaks(SUBMISSION_PORT, alice, [bob_remote], source=OUTSIDE_ADDR, body=f"marker {marker}", auth=True)
    env = sink.find(marker)
    check("submission (SASL, daemon name ORIGINATING) from an outside address: signed",
          bool(env) and bool(re.fullmatch(tag_re + re.escape(alice), env[0] or "")), env and env[:2] or out[-1500:])

    marker = uuid.uuid4().hex
    res, data = smtp(port, dave, [carol], source=OUTSIDE_ADDR, body=message(marker, dave))
    got = delivered("carol", marker)
    check("an untrusted client's mail (to a local user) is not signed",
          bool(got) and f"Return-Path: <{dave}>" in got, got or (res, data))

    marker = uuid.uuid4().hex
    r = sendmail(alice, bob_remote, marker)
    env = sink.find(marker)
    check("sendmail(1) (non_smtpd_milters, a localhost client): signed",
          bool(env) and bool(re.fullmatch(tag_re + re.escape(alice), env[0] or "")), env and env[:2] or r.stderr)
    marker = uuid.uuid4().hex
    r = sendmail("", alice, marker)
    got = delivered("alice", marker)
    check("sendmail(1) with a null sender to a local untagged address: never rejected (delivered)",
          bool(got), r.stdout + r.stderr)
    marker = uuid.uuid4().hex
    smtp(port, "", [bob_remote], source=POSTFIX_ADDR, body=message(marker, ""))
    env = sink.find(marker)
    check("the null sender goes out as MAIL FROM:<> (never signed)", bool(env) and env[0] == "", env and env[:2])
    marker = uuid.uuid4().hex
    swaks(port, f"someone@{REMOTE}", [bob_remote], source=POSTFIX_ADDR, body=f"marker {marker}")
    env = sink.find(marker)
    check("a sender outside sign_domains goes out unsigned", bool(env) and env[0] == f"someone@{REMOTE}",
          env and env[:2])
    marker = uuid.uuid4().hex
    swaks(port, signed, [bob_remote], source=POSTFIX_ADDR, body=f"marker {marker}")
    env = sink.find(marker)
    check("an already tagged sender is not tagged again", bool(env) and env[0] == signed, env and env[:2])

    # 2. Bounces at RCPT.
    res, _ = smtp(port, "", [alice])
    check("bounce <> to untagged alice: 550 5.7.1 at RCPT",
          res[0][1] == 550 and res[0][2].startswith("5.7.1") and "no BATV tag" in res[0][2], res)
    rc, out = swaks(port, f"MAILER-DAEMON@{REMOTE}", [alice])
    line = rcpt_reply(out, alice)
    check("bounce from MAILER-DAEMON@ (swaks) to untagged alice: 550 5.7.1", line.startswith("550 5.7.1"), out[-800:])
    marker = uuid.uuid4().hex
    res, data = smtp(port, "", [signed], body=message(marker, ""))
    got = delivered("alice", marker)
    check(f"bounce to the freshly signed {signed}: accepted (250) at RCPT and DATA",
          res[0][1] == 250 and bool(data) and data[0] == 250, (res, data))
    check("... delivered to the plain mailbox /var/mail/alice (X-Original-To the tagged address)",
          bool(got) and f"Delivered-To: {alice}" in got and f"X-Original-To: {signed}" in got, got)
    forged = signed[:9] + ("000000" if signed[9:15] != "000000" else "111111") + signed[15:]
    # Forged, expired and unknown-key tags: the table answers NOTFOUND, so Postfix's own
    # recipient check refuses them (User unknown) before the milter could; either way a 550.
    old, _ = batv_cli("--now", str(int(time.time()) - 10 * DAY), "sign", alice)
    for what, addr in [("a forged tag", forged), (f"a tag signed 10 days ago ({old})", old),
                       ("a tag of an unknown key", "prvs=7" + signed[6:])]:
        res, _ = smtp(port, "", [addr])
        check(f"bounce to {what}: refused with 550", res[0][1] == 550, res)
        status, _ = batv_cli("status", addr)
        check(f"... the socketmap did not map it (the core says {status})",
              not re.search(r"action=rewrite reason=to <[^>]*>", syslog_since(syslog, addr)), status)
    res, _ = smtp(port, f"someone@{REMOTE}", [forged])
    check("ordinary mail to a forged tag: 550 too", res[0][1] == 550, res)
    marker = uuid.uuid4().hex
    res, data = smtp(port, "", [carol], body=message(marker, ""))
    check("bounce to the exempt carol@: accepted and delivered", bool(delivered("carol", marker)), (res, data))
    marker = uuid.uuid4().hex
    res, data = smtp(port, f"someone@{REMOTE}", [alice], body=message(marker, f"someone@{REMOTE}"))
    check("ordinary mail to untagged alice: accepted and delivered", bool(delivered("alice", marker)), (res, data))
    res, _ = smtp(port, "", [f"nosuchuser@{DOMAIN}"])
    check("bounce to an unknown local user: Postfix's own 550 (User unknown), before the milter",
          res[0][1] == 550 and "5.1.1" in res[0][2], res)
    res, _ = smtp(port, "", [f"someone@{REMOTE}"])
    check("bounce from outside to a remote domain: Postfix's relay refusal, not BATV",
          res[0][1] == 554 and "Relay access denied" in res[0][2], res)

    # 3. Logs: one line per decision, syslog facility mail.
    def logged(pat):
        return wait_for(lambda: re.search(pat, syslog.text()), 5)
    check("the reject is logged: from=<> to=<alice> action=reject reason=untagged (syslog facility mail)",
          bool(logged(r"<2[0-7]>[^\n]*batv-milter\[\d+\]: \S+: from=<> to=<" + re.escape(alice) + "> action=reject reason=untagged")),
          syslog.text()[-1500:])
    check("the signing is logged with its queue id",
          bool(logged(r"batv-milter\[\d+\]: [0-9A-Za-z]{6,}: from=<" + re.escape(alice) + r"> to=<-> action=sign")),
          syslog.text()[-1500:])
    check("no secret in the daemon's logs", secret_free(syslog.text() + daemon.output()))

    # 4. Monitor mode (doc blocks, reloaded with the unit's ExecReload).
    doc_run("monitor-on")
    daemon.reload()
    marker = uuid.uuid4().hex
    res, data = smtp(port, "", [alice], body=message(marker, "", "X-BATV: forged by the sender\r\n"))
    got = delivered("alice", marker)
    check("monitor mode: an untagged bounce is accepted and delivered", bool(got), (res, data))
    check("monitor mode: it carries one X-BATV header naming the recipient and reason; the forged copy is gone",
          bool(got) and got.count("X-BATV:") == 1 and f"X-BATV: would reject <{alice}>: untagged" in got, got)
    marker = uuid.uuid4().hex
    res, data = smtp(port, "", [signed], body=message(marker, ""))
    got = delivered("alice", marker)
    check("monitor mode: a valid tag gets no X-BATV header", bool(got) and "X-BATV" not in got, got)
    # The table follows monitor mode too: a forged tag is not an unknown user then.
    marker = uuid.uuid4().hex
    res, data = smtp(port, "", [forged], body=message(marker, ""))
    got = delivered("alice", marker)
    check("monitor mode: a forged tag is accepted, delivered to alice with X-BATV: ... bad-signature",
          bool(got) and f"X-BATV: would reject <{forged}>: bad-signature" in got, (res, got))
    check("monitor mode: the log says action=monitor", bool(logged(r"action=monitor reason=untagged")))
    doc_run("monitor-off")
    daemon.reload()
    res, _ = smtp(port, "", [alice])
    check("monitor mode off: the untagged bounce gets 550 again", res[0][1] == 550, res)

    # 5. Keyring removed: 451 and deferral; restored: delivered, nothing lost.
    os.rename(KEYRING, KEYRING + ".away")
    try:
        time.sleep(1.2)
        marker_bounce = uuid.uuid4().hex
        res, _ = smtp(port, "", [alice], body=message(marker_bounce, ""))
        check("keyring removed: a bounce to untagged alice gets 451 4.3.0, not 550",
              res[0][1] == 451 and res[0][2].startswith("4.3.0"), res)
        res2, _ = smtp(port, "", [signed])
        check("keyring removed: a bounce to a valid tag gets 451 (the table answers TEMP)",
              res2[0][1] == 451, res2)
        print(f"      transcript: RCPT TO:<{signed}> -> {res2[0][1]} {res2[0][2]}", flush=True)
        marker_smtp = uuid.uuid4().hex
        res3, data3 = smtp(port, alice, [bob_remote], source=POSTFIX_ADDR, body=message(marker_smtp, alice))
        check("keyring removed: outgoing SMTP mail is tempfailed at end of data (451 4.3.0), not sent untagged",
              bool(data3) and data3[0] == 451 and sink.find(marker_smtp, 2) is None, (res3, data3))
        marker_out = uuid.uuid4().hex
        sendmail(alice, bob_remote, marker_out)
        time.sleep(2)
        check("keyring removed: sendmail(1) mail waits in Postfix's queue, not sent untagged",
              sink.find(marker_out, 1) is None and bool(postfix.queue_ids()), postfix.queue())
        marker_ord = uuid.uuid4().hex
        res4, data4 = smtp(port, f"someone@{REMOTE}", [alice], body=message(marker_ord, f"someone@{REMOTE}"))
        check("keyring removed: ordinary incoming mail is still delivered", bool(delivered("alice", marker_ord)),
              (res4, data4))
        check("keyring removed: the daemon logs the problem, naming the file",
              bool(logged(r"action=tempfail reason=keyring /etc/batv/batv.keys: cannot read")), syslog.text()[-800:])
    finally:
        os.rename(KEYRING + ".away", KEYRING)
    time.sleep(1.2)
    res, data = smtp(port, "", [signed], body=message(marker_bounce, ""))
    check("keyring restored: the bounce, retried, is accepted and delivered",
          res[0][1] == 250 and bool(delivered("alice", marker_bounce)), (res, data))
    postfix.flush()
    env = sink.find(marker_out, 90)
    check("keyring restored: the queued sendmail(1) mail leaves, signed",
          bool(env) and bool(re.fullmatch(tag_re + re.escape(alice), env[0] or "")), env and env[:2] or postfix.queue())

    # 6. The daemon killed: Postfix tempfails; after a restart the queue drains.
    daemon.kill(signal.SIGKILL)
    check("after SIGKILL the milter socket is left behind (stale)", os.path.exists("/var/spool/postfix/batv/milter.sock"))
    res, _ = smtp(port, "", [signed])
    check("daemon killed: a bounce to a valid tag is tempfailed (4xx), not rejected",
          400 <= res[0][1] < 500, res)
    marker_in = uuid.uuid4().hex
    res, data = smtp(port, f"someone@{REMOTE}", [alice], body=message(marker_in, f"someone@{REMOTE}"))
    check("daemon killed: ordinary incoming mail is tempfailed (milter_default_action = tempfail)",
          (res[0][1] >= 400 and res[0][1] < 500) or (bool(data) and 400 <= data[0] < 500), (res, data))
    queued = []
    for _ in range(3):
        m = uuid.uuid4().hex
        sendmail(alice, bob_remote, m)
        queued.append(m)
    time.sleep(2)
    check("daemon killed: sendmail(1) mail stays queued",
          all(sink.find(m, 0.2) is None for m in queued) and bool(postfix.queue_ids()), postfix.queue())
    first_pid = daemon.proc.pid
    daemon.start()
    check("restarted: the stale socket was replaced by a new daemon, which answers on it",
          daemon.proc.pid != first_pid and daemon.proc.poll() is None
          and bool(logged(rf"batv-milter\[{daemon.proc.pid}\]: started")), syslog.text()[-600:])
    postfix.flush()
    envs = [sink.find(m, 120) for m in queued]
    check("restarted: the queue drains, every queued message leaves signed, none lost",
          all(e and re.fullmatch(tag_re + re.escape(alice), e[0] or "") for e in envs),
          [e and e[:2] for e in envs])
    check("the queue is empty again", wait_for(lambda: not postfix.queue_ids(), 60), postfix.queue())
    res, data = smtp(port, f"someone@{REMOTE}", [alice], body=message(marker_in, f"someone@{REMOTE}"))
    check("restarted: the tempfailed incoming mail, retried, is delivered", bool(delivered("alice", marker_in)),
          (res, data))

    # 7. Key rotation (doc block): key 2 signs, key-1 tags still verify.
    doc_run("rotate")
    time.sleep(1.2)
    marker = uuid.uuid4().hex
    swaks(port, alice, [bob_remote], source=POSTFIX_ADDR, body=f"marker {marker}")
    env = sink.find(marker)
    check("after rotation outgoing mail is signed with key 2", bool(env) and (env[0] or "").startswith("prvs=2"),
          env and env[:2])
    marker = uuid.uuid4().hex
    res, data = smtp(port, "", [signed], body=message(marker, ""))
    check("after rotation a bounce to a key-1 tag is still delivered", bool(delivered("alice", marker)), (res, data))
    check("nothing was lost: no message in Postfix's queue, no bounce back to alice",
          not postfix.queue_ids() and "Undelivered Mail Returned" not in mailbox("alice"), postfix.queue())


def syslog_since(syslog, needle):
    """The syslog lines that mention needle."""
    return "\n".join(l for l in syslog.text().splitlines() if needle in l)


def secret_free(text):
    try:
        keys = open(KEYRING).read()
    except OSError:
        return False
    secrets = re.findall(r"^key \d \S+ (?:base64:|hex:|text:)(\S+)", keys, re.M)
    return bool(secrets) and not any(s in text for s in secrets)


if __name__ == "__main__":
    sys.exit(main())
