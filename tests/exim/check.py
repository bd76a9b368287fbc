#!/usr/bin/env python3
"""Drives a real Exim (Debian's exim4-daemon-heavy) configured exactly as docs/exim.md says.

Run by tests/exim/run as root inside a private mount namespace (`unshare --mount`): it puts
copies of /etc, the Exim spool, log and lib directories, /var/mail and /usr/local/{bin,lib}
over the real ones, so that the blocks of docs/exim.md run verbatim at the paths they name
while the machine's own files stay untouched.

Usage: check.py --mode split|nonsplit --work DIR
       check.py --print-block NAME      (print a `run` block of docs/exim.md, e.g. build)
Prints one `PASS:`/`FAIL:` line per check; exits 1 if any check failed.
"""

import argparse
import datetime
import grp
import os
import re
import shutil
import smtplib
import socket
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from mta import Recorder, check, delivered, doc_blocks, mailbox, must, run, tally, wait_for  # noqa: E402

ROOT = os.environ.get("BATV_ROOT") or os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
DOC = os.path.join(ROOT, "docs", "exim.md")
EXIM = "/usr/sbin/exim4"
LIB = "/usr/local/lib/libbatv.so"
KEYRING = "/etc/exim4/batv.keys"
DOMAIN = "example.test"
# Clients connect from this loopback address: not in Debian's relay_from_hosts (127.0.0.1, ::1),
# so Exim treats them as other servers and applies the BATV checks.
CLIENT_ADDR = "127.0.0.3"
# The smarthost listener: not Exim's own interface, so Exim does not see it as itself.
SMARTHOST_ADDR = "127.0.0.2"
EXIM_ADDR = "127.0.0.1"
USERS = {"alice": 41001, "bob": 41002, "carol": 41003, "john.smith": 41004}
# A sender written in mixed case: hmac-sha1 hashes it as written, hmac-sha256 lower-cased.
MIXED = "John.Smith@Example.test"
assert MIXED.lower() == f"john.smith@{DOMAIN}"
# The secret the "old" Exim ${prvs} configuration uses in the migration checks.
PRVS_SECRET = "exim prvs secret for the batv tests"
DAY = 86400


def one_line(reply):
    """An SMTP reply that Exim wrapped over several lines, as one line."""
    return re.sub(r"\n\d\.\d+\.\d+ ", " ", reply)


# ---------------------------------------------------------------------------------------------
# docs/exim.md: the blocks the test installs and runs

FILES, RUNS = doc_blocks(DOC, "exim")


def doc_run(name, env=None):
    """Runs a `run` block of docs/exim.md verbatim with bash -e, from the source tree."""
    script = RUNS[name]
    e = dict(os.environ)
    e.update(env or {})
    r = run(["bash", "-euo", "pipefail", "-c", script], cwd=ROOT, env=e)
    if r.returncode != 0:
        raise SystemExit(f"docs/exim.md block '{name}' failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return r


def doc_file(path):
    with open(path, "w", encoding="utf-8") as f:
        f.write(FILES[path])


# ---------------------------------------------------------------------------------------------
# The private copies of the machine's directories


def bind(src, dst):
    must(["mount", "--bind", src, dst])


def chown(path, user, group):
    shutil.chown(path, user, group)


def setup_namespace(work, mode, exim_port, smarthost_port):
    if os.path.exists(work):
        shutil.rmtree(work)
    os.makedirs(work)
    # Nothing we mount may leak back to the machine.
    must(["mount", "--make-rprivate", "/"])

    etc = os.path.join(work, "etc")
    must(["cp", "-a", "/etc", etc])
    ex = os.path.join(etc, "exim4")
    # The site as debconf would leave it: example.test is local, mail leaves via a smarthost
    # (our recording listener), the daemon listens on loopback only.
    with open(os.path.join(ex, "update-exim4.conf.conf"), "w") as f:
        f.write(
            "dc_eximconfig_configtype='smarthost'\n"
            f"dc_other_hostnames='{DOMAIN}'\n"
            f"dc_local_interfaces='{EXIM_ADDR}'\n"
            "dc_readhost=''\n"
            "dc_relay_domains=''\n"
            "dc_minimaldns='false'\n"
            "dc_relay_nets=''\n"
            f"dc_smarthost='{SMARTHOST_ADDR}::{smarthost_port}'\n"
            "CFILEMODE='644'\n"
            f"dc_use_split_config='{'true' if mode == 'split' else 'false'}'\n"
            "dc_hide_mailname=''\n"
            "dc_mailname_in_oh='true'\n"
            "dc_localdelivery='mail_spool'\n"
        )
    for leftover in ["exim4.conf.localmacros", "conf.d/main/000_local_batv",
                     "conf.d/router/250_local_batv", "batv.keys", "batv_exempt"]:
        p = os.path.join(ex, leftover)
        if os.path.exists(p):
            os.remove(p)
    with open(os.path.join(etc, "mailname"), "w") as f:
        f.write(DOMAIN + "\n")
    # No DNS in the test: a resolver that answers "refused" at once.
    with open(os.path.join(etc, "resolv.conf"), "w") as f:
        f.write("nameserver 127.0.0.1\noptions timeout:1 attempts:1\n")
    with open(os.path.join(etc, "hosts"), "w") as f:
        f.write(f"127.0.0.1 mx.{DOMAIN} {socket.gethostname()} localhost\n"
                f"{SMARTHOST_ADDR} smarthost.test\n{CLIENT_ADDR} bouncer.test\n")
    with open(os.path.join(etc, "passwd"), "a") as pw, open(os.path.join(etc, "group"), "a") as gr:
        for user, uid in USERS.items():
            pw.write(f"{user}:x:{uid}:{uid}:{user}:/home/{user}:/bin/sh\n")
            gr.write(f"{user}:x:{uid}:\n")
    bind(etc, "/etc")

    def private_dir(path, user="root", group="root", mode_bits=0o755):
        d = os.path.join(work, path.strip("/").replace("/", "_"))
        os.makedirs(d)
        chown(d, user, group)
        os.chmod(d, mode_bits)
        if not os.path.isdir(path):
            raise SystemExit(f"setup failed: {path} does not exist (is exim4 installed?)")
        bind(d, path)
        return d

    private_dir("/var/spool/exim4", "Debian-exim", "Debian-exim", 0o750)
    private_dir("/var/log/exim4", "Debian-exim", "adm", 0o2750)
    private_dir("/var/lib/exim4", "root", "root", 0o755)
    private_dir("/var/mail", "root", "mail", 0o2775)
    private_dir("/usr/local/lib")
    private_dir("/usr/local/bin")
    private_dir("/home")
    for user, uid in USERS.items():
        os.makedirs(f"/home/{user}", mode=0o750)
        os.chown(f"/home/{user}", uid, uid)
    os.makedirs("/var/spool/exim4/db", exist_ok=True)
    chown("/var/spool/exim4/db", "Debian-exim", "Debian-exim")


# ---------------------------------------------------------------------------------------------
# The smarthost: a minimal SMTP listener that records every envelope


def free_port(addr):
    with socket.socket() as s:
        s.bind((addr, 0))
        return s.getsockname()[1]


# ---------------------------------------------------------------------------------------------
# Exim


class Exim:
    def __init__(self, work, port):
        self.work, self.port, self.pidfile = work, port, os.path.join(work, "exim.pid")

    def start(self):
        if os.path.exists(self.pidfile):
            os.remove(self.pidfile)
        must([EXIM, "-bd", "-oX", str(self.port), "-oP", self.pidfile])
        deadline = time.time() + 15
        while time.time() < deadline:
            try:
                with socket.create_connection((EXIM_ADDR, self.port), timeout=1) as s:
                    if s.recv(100).startswith(b"220"):
                        return
            except OSError:
                time.sleep(0.1)
        raise SystemExit(f"Exim did not start listening on {EXIM_ADDR}:{self.port}\n{self.log('main')}")

    def stop(self):
        try:
            with open(self.pidfile) as f:
                pid = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            return
        try:
            os.kill(pid, 15)
        except ProcessLookupError:
            return
        for _ in range(100):
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
            time.sleep(0.05)

    def restart(self):
        self.stop()
        self.start()

    def log(self, which="main"):
        try:
            with open(f"/var/log/exim4/{which}log", encoding="utf-8", errors="replace") as f:
                return f.read()
        except OSError:
            return ""

    def expand(self, string, faketime=None):
        cmd = [EXIM, "-be", string]
        if faketime is not None:
            cmd = ["faketime", f"@{faketime}"] + cmd
        r = run(cmd)
        if r.returncode != 0:
            raise SystemExit(f"exim -be failed: {r.stdout}{r.stderr}")
        return r.stdout.strip()

    def sign(self, address, faketime=None):
        return self.expand("${dlfunc{%s}{batv_exim_sign}{%s}{%s}}" % (LIB, address, KEYRING), faketime)

    def queue(self):
        return run([EXIM, "-bp"]).stdout


def smtp_session(port, sender, rcpts, body=None):
    """One SMTP transaction from CLIENT_ADDR. Returns ([(rcpt, code, text)], data_code)."""
    s = smtplib.SMTP(EXIM_ADDR, port, source_address=(CLIENT_ADDR, 0), timeout=30)
    try:
        s.ehlo("bouncer.test")
        code, msg = s.mail(sender)
        if code != 250:
            return [(r, code, msg.decode()) for r in rcpts], None
        results = []
        for r in rcpts:
            code, msg = s.rcpt(r)
            results.append((r, code, msg.decode(errors="replace")))
        data_code = None
        if body is not None and any(c == 250 for _, c, _ in results):
            data_code, _ = s.data(body)
        else:
            s.rset()
        return results, data_code
    finally:
        try:
            s.quit()
        except smtplib.SMTPException:
            pass


def message(marker, sender="mailer-daemon@remote.example", subject="Undelivered Mail"):
    return (f"From: {sender}\r\nTo: <undisclosed-recipients@{DOMAIN}>\r\nSubject: {subject}\r\n"
            f"Message-ID: <{marker}@bouncer.test>\r\n\r\nmarker {marker}\r\n")


def bs_session(sender, rcpt, faketime, rcpt_command=None):
    """An SMTP transaction through `exim -bs` under faketime, as host 192.0.2.7 (so the ACL sees
    a remote, non-relay host). `rcpt_command` replaces `RCPT TO:<rcpt>`. Returns the RCPT reply
    line."""
    p = subprocess.Popen(["faketime", f"@{faketime}", EXIM, "-bs", "-oMa", "192.0.2.7"],
                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)

    def reply():
        lines = []
        while True:
            l = p.stdout.readline()
            if not l:
                return " ".join(lines) or "(no reply)"
            lines.append(l.strip())
            if len(l) >= 4 and l[3] == " ":
                return " ".join(lines)

    def send(line):
        p.stdin.write(line + "\r\n")
        p.stdin.flush()
        return reply()

    try:
        reply()
        send("EHLO bouncer.test")
        send(f"MAIL FROM:<{sender}>")
        answer = send(rcpt_command or f"RCPT TO:<{rcpt}>")
        send("QUIT")
        return answer
    finally:
        p.stdin.close()
        p.wait(timeout=30)


def send_out(user="alice", sender=None):
    """Hands a message for bob@remote.example to Exim's sendmail interface (delivery in the
    foreground): as the local user `user`, or as root with envelope sender `sender`. Returns
    the message's marker and the command's result."""
    marker = uuid.uuid4().hex
    cmd = [EXIM, "-odf", "-oi", "bob@remote.example"]
    cmd = ["runuser", "-u", user, "--"] + cmd if sender is None else cmd[:1] + ["-f", sender] + cmd[1:]
    return marker, run(cmd, input=f"Subject: outgoing {marker}\n\nmarker {marker}\n")


def relayed(recorder, marker, seconds=15):
    """The (MAIL FROM, RCPT TOs, data) the smarthost recorded for the message with `marker`."""
    def find():
        with recorder.lock:
            for env in recorder.envelopes:
                if f"marker {marker}" in env[2]:
                    return env
        return None
    return wait_for(find, seconds)


def sent_from(recorder, **kw):
    """Sends a message out (see send_out) and returns the MAIL FROM the smarthost saw, or None."""
    marker, _ = send_out(**kw)
    env = relayed(recorder, marker)
    return env[0] if env else None


def deliver(port, rcpt, sender="", user="alice"):
    """One message over SMTP; returns (RCPT results, DATA code, the delivered text in `user`'s
    mailbox or None)."""
    marker = uuid.uuid4().hex
    res, dc = smtp_session(port, sender, [rcpt], message(marker, sender or "mailer-daemon@remote.example"))
    got = delivered(user, marker) if dc == 250 else None
    return res, dc, got


def batv_sign(address):
    """The address as `batv sign` (the installed command, the doc's keyring) signs it now."""
    return must(["/usr/local/bin/batv", "--keys", KEYRING, "sign", address]).stdout.strip()


def signing_scheme():
    """The scheme of the keyring's signing key, as the file says."""
    with open(KEYRING, encoding="utf-8") as f:
        words = [l.split() for l in f]
    n = next(w[1] for w in words if w[:1] == ["sign-key"])
    return next(w[2] for w in words if w[:2] == ["key", n])


def mixed_case(exim, port, m, scheme):
    """A mixed-case sender signed with the keyring's signing key (of `scheme`): the bounce to
    the tag exactly as signed is accepted and delivered to the plain mailbox."""
    check(f"{m}: {scheme}: the signing key is an {scheme} key", signing_scheme() == scheme,
          signing_scheme())
    signed = batv_sign(MIXED)
    key = signed[5:6]
    check(f"{m}: {scheme}: batv sign {MIXED} keeps the case ({signed})",
          signed.startswith("prvs=") and signed.endswith("=" + MIXED), signed)
    res, dc, got = deliver(port, signed, user="john.smith")
    check(f"{m}: {scheme}: bounce <> to {signed} is accepted (250) and delivered to /var/mail/john.smith",
          code_of(res) == 250 and bool(got) and f"Envelope-to: {signed}" in got,
          f"RCPT {res}; delivered: {got!r}")
    forged = signed[:9] + ("000000" if signed[9:15] != "000000" else "111111") + signed[15:]
    res, _ = smtp_session(port, "", [forged])
    check(f"{m}: {scheme}: a forged tag on {MIXED} still gets 550 (bad-signature)",
          code_of(res) == 550 and "invalid BATV signature" in res[0][2], res)
    return key, signed


def release_fifo(path):
    """Lets any process blocked opening the FIFO at `path` go on: a writer comes and goes, and
    the reader sees an empty file. Nobody waiting is no error."""
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass


def code_of(results):
    return results[0][1] if results else None


# ---------------------------------------------------------------------------------------------
# The checks


def day_start(day):
    return day * DAY


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--mode", choices=["split", "nonsplit"])
    ap.add_argument("--work")
    ap.add_argument("--print-block", metavar="NAME")
    args = ap.parse_args()
    if args.print_block:
        sys.stdout.write(RUNS[args.print_block])
        return 0
    if not (args.mode and args.work):
        ap.error("--mode and --work are required")
    mode = args.mode
    print(f"--- Exim with docs/exim.md, {mode} configuration", flush=True)

    exim_port = free_port(EXIM_ADDR)
    smarthost_port = free_port(SMARTHOST_ADDR)
    setup_namespace(args.work, mode, exim_port, smarthost_port)

    recorder = Recorder((SMARTHOST_ADDR, smarthost_port))
    threading.Thread(target=recorder.serve_forever, daemon=True).start()

    # docs/exim.md, in its order.
    doc_run("install")
    doc_run("keyring")
    for path in FILES:
        doc_file(path)
    with open("/etc/exim4/batv_exempt", "w") as f:
        f.write(f"# test site data\ncarol@{DOMAIN}\n@lists.{DOMAIN}\n")
    doc_run(mode)

    exim = Exim(args.work, exim_port)
    exim.start()
    try:
        checks(exim, recorder, exim_port, mode)
    finally:
        exim.stop()
        recorder.shutdown()
    print(f"--- {mode}: {tally.passes} passed, {len(tally.failures)} failed", flush=True)
    if tally.failures:
        print("--- mainlog tail:\n" + "\n".join(exim.log("main").splitlines()[-40:]))
        print("--- paniclog tail:\n" + "\n".join(exim.log("panic").splitlines()[-10:]))
    return 1 if tally.failures else 0


def checks(exim, recorder, port, mode):
    m = mode
    alice = f"alice@{DOMAIN}"
    stat = os.stat(KEYRING)
    check(f"{m}: the keyring from the doc is mode 0640, group Debian-exim",
          (stat.st_mode & 0o777) == 0o640 and stat.st_gid == grp.getgrnam("Debian-exim").gr_gid,
          oct(stat.st_mode))

    # 1. A bounce to an untagged local address: 550. Ordinary mail and exemptions pass.
    res, _ = smtp_session(port, "", [alice])
    check(f"{m}: bounce <> to untagged {alice} gets the core's 550 5.7.1 (no BATV tag)",
          code_of(res) == 550 and "5.7.1 Bounce rejected: this address did not send the original message (no BATV tag)" in one_line(res[0][2]), res)
    res, _ = smtp_session(port, "MAILER-DAEMON@remote.example", [alice])
    check(f"{m}: bounce from MAILER-DAEMON@ to untagged {alice} gets 550", code_of(res) == 550, res)
    res, dc, got = deliver(port, alice, sender="someone@remote.example")
    check(f"{m}: ordinary mail to untagged {alice} is accepted and delivered", bool(got), res)
    res, dc, got = deliver(port, f"carol@{DOMAIN}", user="carol")
    check(f"{m}: bounce to exempt carol@{DOMAIN} (batv_exempt) is accepted and delivered",
          bool(got), res)

    # 2. Mail from a local user relayed out carries prvs= in MAIL FROM.
    marker, r = send_out("alice")
    env = relayed(recorder, marker)
    signed = env[0] if env else ""
    check(f"{m}: alice's outgoing mail reaches the smarthost with MAIL FROM <prvs=1...={alice}>",
          bool(re.fullmatch(r"prvs=1\d{3}[0-9a-f]{6}=" + re.escape(alice), signed)),
          f"recorded {env and env[:2]}; sendmail said {r.returncode} {r.stderr}")
    check(f"{m}: the smarthost got the original recipient", bool(env) and env[1] == ["bob@remote.example"])
    check(f"{m}: batv_exim_sign from exim -be matches what the transport sent",
          exim.sign(alice) == signed, exim.sign(alice))
    foreign = sent_from(recorder, sender="someone@remote.example")
    check(f"{m}: a sender outside BATV_SIGN_DOMAINS goes out unsigned", foreign == "someone@remote.example",
          foreign)
    null = sent_from(recorder, sender="")
    check(f"{m}: the null sender goes out as MAIL FROM:<>", null == "", null)

    # 3. A bounce to that freshly signed address is accepted and delivered to alice's mailbox.
    res, dc, got = deliver(port, signed)
    check(f"{m}: bounce to {signed} is accepted (250) and delivered to /var/mail/alice",
          code_of(res) == 250 and bool(got), res)
    check(f"{m}: it is the bounce (Return-path: <>) for {signed}, in alice's own mailbox",
          bool(got) and "Return-path: <>" in got and f"Envelope-to: {signed}" in got, got)
    # Upper-case hex (some remote MTAs change case; Exim's ${prvscheck} refuses it): take a tag
    # from the last few days whose six hex digits include a letter.
    now = int(time.time())
    lettered = next((t for t in (exim.sign(alice, faketime=now - d * DAY) for d in range(7))
                     if re.search("[a-f]", t[9:15])), None)
    upper = lettered and lettered[:9] + lettered[9:15].upper() + lettered[15:]
    res, _ = smtp_session(port, "", [upper]) if upper else ([], None)
    check(f"{m}: upper-case hex in the tag is accepted ({upper})", code_of(res) == 250, res)
    # prvs=K DDD SSSSSS =: the six hex digits are signed[9:15].
    forged = signed[:9] + ("000000" if signed[9:15] != "000000" else "111111") + signed[15:]
    res, _ = smtp_session(port, "", [forged])
    check(f"{m}: bounce to a forged tag gets 550 (bad-signature)",
          code_of(res) == 550 and "invalid BATV signature" in res[0][2], res)
    res, _ = smtp_session(port, "someone@remote.example", [forged])
    check(f"{m}: ordinary mail to a forged tag gets 550 too", code_of(res) == 550, res)
    unknown = "prvs=7" + signed[6:]
    res, _ = smtp_session(port, "", [unknown])
    check(f"{m}: a tag of a key not in the keyring gets 550 (unknown-key)",
          code_of(res) == 550 and "signed with an unknown key" in res[0][2], res)
    # A malformed tag has no user behind it: the router cannot strip it, so Debian's
    # "verify = recipient" rejects it before the BATV statement would.
    res, _ = smtp_session(port, "", [f"prvs=x={alice}"])
    check(f"{m}: a malformed tag gets 550", code_of(res) == 550, res)

    # 4. Expiry: a tag signed 10 days ago, and the 1000-day wraparound, with faketime.
    old = exim.sign(alice, faketime=now - 10 * DAY)
    check(f"{m}: faketime reaches libbatv (a tag signed 10 days back has another day stamp)",
          old != signed and old.startswith("prvs=1"), old)
    res, _ = smtp_session(port, "", [old])
    check(f"{m}: bounce to a tag signed 10 days ago gets 550 (expired)",
          code_of(res) == 550 and "BATV tag has expired" in res[0][2], res)
    # A day whose number is 995 mod 1000: the tag's day stamp wraps to 002.
    today = now // DAY
    d0 = today + (995 - today % 1000) % 1000
    t0 = day_start(d0) + 12 * 3600
    wrapped = exim.sign(alice, faketime=t0)
    check(f"{m}: a tag signed on day {d0} (= 995 mod 1000) has day stamp 002",
          wrapped.startswith("prvs=1002"), wrapped)
    for days, want in [(0, 250), (7, 250), (8, 550), (9, 550), (400, 550)]:
        when = t0 + days * DAY
        stamp = datetime.datetime.fromtimestamp(when, datetime.timezone.utc).date()
        line = bs_session("", wrapped, when)
        ok = line.startswith(str(want)) and (want == 250 or "expired" in line)
        check(f"{m}: at day {d0 + days} ({stamp}, {days} days after signing, "
              f"{(d0 + days) % 1000:03d} mod 1000) exim under faketime answers {want}", ok, line)

    # 5. Keyring removed: 451, nothing lost; restored: the same bounce is delivered, and the
    #    mail that waited in the queue goes out signed.
    os.rename(KEYRING, KEYRING + ".away")
    try:
        marker = uuid.uuid4().hex
        res, _ = smtp_session(port, "", [signed], message(marker))
        check(f"{m}: keyring removed: bounce to a valid tag gets 451, not 550",
              code_of(res) == 451, res)
        print(f"      transcript: RCPT TO:<{signed}> -> {res[0][1]} {res[0][2]}", flush=True)
        res2, _ = smtp_session(port, "", [alice])
        check(f"{m}: keyring removed: bounce to an untagged address gets 451 too",
              code_of(res2) == 451, res2)
        res3, dc3, got3 = deliver(port, alice, sender="someone@remote.example")
        check(f"{m}: keyring removed: ordinary mail is still accepted and delivered", bool(got3), res3)
        check(f"{m}: keyring removed: mainlog names the problem",
              f"batv: keyring {KEYRING}: cannot read the file" in exim.log("main"))
        out_marker, _ = send_out("alice")
        time.sleep(1)
        queued = exim.queue()
        check(f"{m}: keyring removed: alice's outgoing mail waits in the queue, not sent untagged",
              "bob@remote.example" in queued and relayed(recorder, out_marker, 1) is None, queued)
        check(f"{m}: keyring removed: the mail was not bounced back to alice",
              "Mail delivery failed" not in mailbox("alice"))
    finally:
        os.rename(KEYRING + ".away", KEYRING)
    time.sleep(1.1)  # one check interval, for processes that had cached the error
    res, dc = smtp_session(port, "", [signed], message(marker))
    check(f"{m}: keyring restored: the same bounce, retried, is accepted and delivered",
          code_of(res) == 250 and dc == 250 and bool(delivered("alice", marker)), res)
    run([EXIM, "-qff"])
    env = relayed(recorder, out_marker)
    check(f"{m}: keyring restored: the queued mail is delivered with a prvs= MAIL FROM",
          bool(env) and env[0].startswith("prvs=1") and env[0].endswith("=" + alice),
          env and env[:2])
    check(f"{m}: the queue is empty again", wait_for(lambda: exim.queue().strip() == "", 10),
          exim.queue())

    # 5b. A FIFO in place of the keyring: the RCPT gets 451 at once, as for a removed file. An
    #     open(2) that waited for a writer would hold the session (and its Exim process) for
    #     good; smtplib's timeout ends the wait on our side, and the FIFO is released after.
    os.rename(KEYRING, KEYRING + ".away")
    os.mkfifo(KEYRING, 0o640)
    chown(KEYRING, "root", "Debian-exim")
    try:
        try:
            res, _ = smtp_session(port, "", [signed])
        except (OSError, smtplib.SMTPException) as e:
            res = [(signed, None, f"no answer within smtplib's timeout: {e!r}")]
        check(f"{m}: keyring replaced by a FIFO: bounce to a valid tag gets 451, not a hang",
              code_of(res) == 451, res)
        print(f"      transcript: RCPT TO:<{signed}> -> {res[0][1]} {res[0][2]}", flush=True)
        check(f"{m}: keyring replaced by a FIFO: mainlog says it is not a regular file",
              f"batv: keyring {KEYRING}: not a regular file" in exim.log("main"))
    finally:
        release_fifo(KEYRING)
        os.remove(KEYRING)
        os.rename(KEYRING + ".away", KEYRING)
    time.sleep(1.1)  # one check interval, for processes that had cached the error
    res, _ = smtp_session(port, "", [signed])
    check(f"{m}: keyring restored after the FIFO: the bounce is accepted again", code_of(res) == 250, res)

    # 6. Monitor mode (docs block), then back.
    doc_run("monitor-on")
    exim.restart()
    res, dc, got = deliver(port, alice)
    check(f"{m}: monitor mode: untagged bounce accepted, delivered with an X-BATV header",
          bool(got) and f"X-BATV: untagged <{alice}>" in got, got or res)
    res, dc, got = deliver(port, forged)
    check(f"{m}: monitor mode: forged tag accepted, delivered to alice with X-BATV: bad-signature",
          bool(got) and "X-BATV: bad-signature" in got, got or res)
    res, dc, got = deliver(port, signed)
    check(f"{m}: monitor mode: a valid tag gets no X-BATV header",
          bool(got) and "X-BATV" not in got, got or res)
    check(f"{m}: monitor mode: mainlog says what would have been rejected",
          f"BATV monitor: would reject <{alice}>: untagged" in exim.log("main"))
    os.rename(KEYRING, KEYRING + ".away")
    try:
        res, _ = smtp_session(port, "", [alice])
        check(f"{m}: monitor mode: with the keyring removed a bounce gets 451 too",
              code_of(res) == 451, res)
    finally:
        os.rename(KEYRING + ".away", KEYRING)
    time.sleep(1.1)
    doc_run("monitor-off")
    exim.restart()
    res, _ = smtp_session(port, "", [alice])
    check(f"{m}: monitor mode off: untagged bounce gets 550 again", code_of(res) == 550, res)

    # 7. Key rotation (docs block): new mail signs with key 2, key 1 tags still verify.
    doc_run("rotate")
    time.sleep(1.1)
    key2 = sent_from(recorder) or ""
    check(f"{m}: after rotation outgoing mail is signed with key 2", key2.startswith("prvs=2"), key2)
    res, dc, got = deliver(port, signed)
    check(f"{m}: after rotation a bounce to a key-1 tag is still delivered", bool(got), res)
    res, dc, got = deliver(port, key2)
    check(f"{m}: after rotation a bounce to the key-2 tag is delivered", bool(got), res)

    # 8. A mixed-case sender, with the hmac-sha256 key that signs now.
    mixed_case(exim, port, m, "hmac-sha256")

    # 9. Migration from Exim's ${prvs} (docs block) with the shared text: key.
    doc_run("migrate", env={"EXIM_PRVS_SECRET": PRVS_SECRET})
    time.sleep(1.1)
    # The mixed-case sender with the hmac-sha1 key, which hashes the address as written: Exim
    # must check the address as received, not its lower-cased $domain.
    key, mixed = mixed_case(exim, port, m, "hmac-sha1")
    signed_alice = batv_sign(alice)
    check(f"{m}: hmac-sha1: the tag is key 0's, and Exim's own ${{prvs}} writes the same",
          key == "0" and mixed == exim.expand("${prvs{%s}{%s}{0}}" % (MIXED, PRVS_SECRET)), mixed)
    out = sent_from(recorder, sender=MIXED) or ""
    check(f"{m}: hmac-sha1: mail from {MIXED} goes out with that tag in MAIL FROM",
          out == mixed, out)
    # The RCPT TO forms Exim takes: a space after the colon and a source route keep the address
    # as written; without angle brackets the ACL falls back to Exim's lower-cased address.
    now = int(time.time())
    for form in [f"RCPT TO: <{mixed}>", f"rcpt to:<@relay.test:{mixed}>"]:
        line = bs_session("", None, now, rcpt_command=form)
        check(f"{m}: hmac-sha1: '{form}' is accepted", line.startswith("250"), line)
    line = bs_session("", None, now, rcpt_command=f"RCPT TO:{signed_alice}")
    check(f"{m}: 'RCPT TO:{signed_alice}' without angle brackets is accepted", line.startswith("250"), line)
    # hmac-sha1 hashes the local part as written: a copy whose case was changed is refused.
    lowered = mixed[:16] + MIXED.lower()
    res, _ = smtp_session(port, "", [lowered])
    check(f"{m}: hmac-sha1: the tag with its address lower-cased ({lowered}) gets 550",
          code_of(res) == 550 and "invalid BATV signature" in res[0][2], res)
    exim_signed = exim.expand("${prvs{%s}{%s}{0}}" % (alice, PRVS_SECRET))
    check(f"{m}: Exim's own ${{prvs}} signed {exim_signed}", exim_signed.startswith("prvs=0"))
    original = exim.expand("${dlfunc{%s}{batv_exim_verify}{%s}{%s}}" % (LIB, exim_signed, KEYRING))
    check(f"{m}: batv_exim_verify accepts the ${{prvs}} tag and yields {alice}", original == alice, original)
    res, dc, got = deliver(port, exim_signed)
    check(f"{m}: a bounce to the ${{prvs}}-signed address is accepted and delivered", bool(got), res)
    key0 = sent_from(recorder) or ""
    check(f"{m}: during the migration outgoing mail is signed with key 0 (hmac-sha1)",
          key0.startswith("prvs=0"), key0)
    verdict = exim.expand("${prvscheck{%s}{%s}}:$prvscheck_result" % (key0, PRVS_SECRET))
    check(f"{m}: Exim's own ${{prvscheck}} accepts the tag libbatv signed ({key0})",
          verdict == f"{alice}:1", verdict)
    wrong = exim.expand("${prvscheck{%s}{%s}}:$prvscheck_result" % (key0, "another secret"))
    check(f"{m}: ... and ${{prvscheck}} with another secret does not", not wrong.endswith(":1"), wrong)
    doc_run("migrate-done")
    time.sleep(1.1)
    key1 = sent_from(recorder) or ""
    check(f"{m}: after the migration outgoing mail is signed with key 1 (hmac-sha256) again",
          key1.startswith("prvs=1"), key1)
    res, _ = smtp_session(port, "", [exim_signed])
    check(f"{m}: after the migration ${{prvs}} tags still verify until key 0 is deleted",
          code_of(res) == 250, res)

    logs = exim.log("main") + exim.log("panic")
    check(f"{m}: no secret in Exim's logs", PRVS_SECRET not in logs and "base64:" not in logs)


if __name__ == "__main__":
    sys.exit(main())
