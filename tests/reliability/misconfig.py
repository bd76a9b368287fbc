#!/usr/bin/env python3
"""The misconfiguration matrix: every keyring error of docs/scheme.md ("Keyring file"), through every
binding, must give its clear error, and none may show the secret.

One table, CASES: each row is a broken keyring (file text and mode, or a path that is not a
usable file) and what is wrong with it. Every row goes through

  - the C library (ctypes on libbatv.so): batv_keyring_load_ex returns the configuration result
    code of the row (200 KEYRING_IO, 201 KEYRING_INSECURE, 202 KEYRING_INVALID) and a message
    that names the file (and the line, where there is one); batv_strerror has a message too;
  - Python: batv.Keyring.load raises batv.KeyringError (a BatvError, a ValueError) with .path
    and .line set;
  - Exim: `exim4 -be` of ${dlfunc{libbatv.so}{batv_exim_status}{...}{keyring}} fails (DEFER)
    with a `batv:` message, and an SMTP session (`exim4 -bh`) whose RCPT ACL makes that call
    answers the RCPT with 451 (tempfail: the sender retries, nothing is lost), never 550;
  - the CLI: `batv --keys FILE verify ...` exits 2 with a message naming the file.

Every output of every binding is checked for the row's secret. Rows whose problem needs
another user (an unreadable file) run that user's probes with setpriv as nobody.

Every probe runs under a time limit (PROBE_TIMEOUT): one that has not answered by then is
hung, which is a FAIL (a FIFO as the keyring once blocked every face in open(2)), and its
process group is killed so that the matrix itself always ends. The rows for the owner and the
ACLs need root (chown, setfacl); a named group that may only read is a control that every
binding must accept.

Usage: misconfig.py --lib target/release/libbatv.so --batv target/release/batv [--no-exim]
Prints one line per row and binding, and `misconfig: N rows x M bindings, all clear` at the end.
"""

import argparse
import ctypes
import grp
import os
import pwd
import signal
import shutil
import subprocess
import sys
import tempfile

SECRET = "Distinctive-Misconfig-Secret-7q3Z"
SECRET_B64 = "RGlzdGluY3RpdmUtTWlzY29uZmlnLVNlY3JldC03cTNa"  # base64 of SECRET
SECRET_HEX = SECRET.encode().hex()
GOOD = f"key 5 hmac-sha256 text:{SECRET}\n"  # a valid line that carries the secret
# Short words that are secrets, where a longer one would be refused unshown: a secret typed in
# place of the scheme, and the second half of a base64 secret wrapped onto its own line (the
# first 24 characters decode to 18 bytes, enough for a key, so the error is on line 2).
SHORT_SECRET = "Hunter2Secret"
WRAPPED_HEAD, WRAPPED_TAIL = SECRET_B64[:24], SECRET_B64[24:]

IO, INSECURE, INVALID = 200, 201, 202

# Another unprivileged user and group, for the owner and ACL rows.
NOBODY = pwd.getpwnam("nobody").pw_uid
NOGROUP = grp.getgrnam("nogroup").gr_gid

# Seconds a probe may take before it counts as hung. Not a speed limit: every probe answers in
# well under a second, and one blocked in open(2) on a FIFO never answers at all.
PROBE_TIMEOUT = 15

# name, file text (bytes or str; None: the path is made by `special`), mode, C code, line,
# words the message must contain (any binding's), special
CASES = [
    ("missing file", None, 0o600, IO, None, ["not found", "No such file", "does not exist"], "missing"),
    ("a directory", None, 0o750, IO, None, ["not a regular file"], "directory"),
    ("unreadable by the MTA user", GOOD, 0o600, IO, None, ["ermission denied", "not readable"], "unreadable"),
    ("world-readable (0644)", GOOD, 0o644, INSECURE, None, ["other users", "chmod"], None),
    ("group-writable (0660)", GOOD, 0o660, INSECURE, None, ["other users", "chmod"], None),
    ("world-writable (0602)", GOOD, 0o602, INSECURE, None, ["other users", "chmod"], None),
    ("a FIFO", None, 0o640, IO, None, ["not a regular file"], "fifo"),
    ("owned by another user (nobody)", GOOD, 0o640, INSECURE, None, [f"owned by uid {NOBODY}"], "foreign-owner"),
    ("ACL: a named user may read", GOOD, 0o640, INSECURE, None, [f"gives user uid {NOBODY} access"], "acl-user-read"),
    ("ACL: a named group may write", GOOD, 0o640, INSECURE, None, [f"lets group gid {NOGROUP} write"], "acl-group-write"),
    ("bad base64", f"{GOOD}key 1 hmac-sha256 base64:{SECRET_B64}!!\n", 0o640, INVALID, 2, ["base64"], None),
    ("bad hex", f"{GOOD}key 1 hmac-sha256 hex:{SECRET_HEX}zz\n", 0o640, INVALID, 2, ["hexadecimal"], None),
    ("short secret", f"{GOOD}key 1 hmac-sha256 hex:00112233445566\n", 0o640, INVALID, 2, ["at least 16"], None),
    ("empty secret", f"{GOOD}key 1 hmac-sha1 text:\n", 0o640, INVALID, 2, ["empty"], None),
    ("no secret prefix", f"key 1 hmac-sha1 {SECRET}\n", 0o640, INVALID, 1, ["base64:, hex: or text:"], None),
    ("unknown scheme", f"key 1 hmac-md5 text:{SECRET}\n", 0o640, INVALID, 1, ["unknown scheme"], None),
    ("secret in place of the scheme", f"key 1 base64:{SECRET_B64}\n", 0o640, INVALID, 1, ["unknown scheme"], None),
    ("a short secret in place of the scheme", f"key 0 {SHORT_SECRET}\n", 0o640, INVALID, 1, ["unknown scheme"], None),
    ("a short secret before the scheme", f"key 0 {SHORT_SECRET} hmac-sha256 text:{SECRET}\n", 0o640, INVALID, 1, ["unknown scheme"], None),
    ("bad key number", f"key 10 hmac-sha1 text:{SECRET}\n", 0o640, INVALID, 1, ["one digit"], None),
    ("duplicate key", f"key 1 hmac-sha1 text:{SECRET}\nkey 1 hmac-sha1 text:{SECRET}\n", 0o640, INVALID, 2, ["twice"], None),
    ("several keys, no sign-key", f"key 1 hmac-sha1 text:{SECRET}\n{GOOD}", 0o640, INVALID, 2, ["sign-key"], None),
    ("sign-key naming no key", f"sign-key 4\n{GOOD}", 0o640, INVALID, 1, ["not defined"], None),
    ("sign-key set twice", f"sign-key 5\nsign-key 5\n{GOOD}", 0o640, INVALID, 2, ["set twice"], None),
    ("lifetime 0", f"lifetime-days 0\n{GOOD}", 0o640, INVALID, 1, ["lifetime-days"], None),
    ("lifetime 366", f"lifetime-days 366\n{GOOD}", 0o640, INVALID, 1, ["lifetime-days"], None),
    ("lifetime not a number", f"lifetime-days seven\n{GOOD}", 0o640, INVALID, 1, ["lifetime-days"], None),
    ("skew 8", f"skew-days 8\n{GOOD}", 0o640, INVALID, 1, ["skew-days"], None),
    ("trailing text", f"skew-days 1 2\n{GOOD}", 0o640, INVALID, 1, ["unexpected text"], None),
    ("unknown directive", f"{GOOD}frobnicate 1\n", 0o640, INVALID, 2, ["unknown directive"], None),
    ("a secret pasted on its own line", f"{GOOD}{SECRET_B64}\n", 0o640, INVALID, 2, ["unknown directive"], None),
    ("a base64 secret wrapped onto a second line", f"key 1 hmac-sha256 base64:{WRAPPED_HEAD}\n{WRAPPED_TAIL}\n", 0o640, INVALID, 2, ["unknown directive"], None),
    ("a short secret alone on a line", f"{GOOD}{SHORT_SECRET}\n", 0o640, INVALID, 2, ["unknown directive"], None),
    ("no keys", "# nothing here yet\nlifetime-days 7\n", 0o640, INVALID, 3, ["no key line"], None),
    ("empty file", "", 0o640, INVALID, 1, ["no key line"], None),
    ("not UTF-8", GOOD.encode() + b"key 1 hmac-sha1 text:caf\xe9\n", 0o640, INVALID, 2, ["UTF-8"], None),
]

failures = []
results = 0


def check(row, binding, ok, detail):
    global results
    results += 1
    print(f"{'PASS' if ok else 'FAIL'}: {row}: {binding}: {detail}")
    if not ok:
        failures.append(f"{row}: {binding}")


def secret_free(text):
    return all(s not in text for s in (SECRET, SECRET_B64, SECRET_HEX, SECRET[:16], SECRET_B64[:16],
                                       SHORT_SECRET, WRAPPED_HEAD, WRAPPED_TAIL))


def redact(text):
    for s in (SECRET, SECRET_B64, SECRET_HEX, SHORT_SECRET, WRAPPED_HEAD, WRAPPED_TAIL):
        text = text.replace(s, "<SECRET>")
    return text


# Keyring files are root:Debian-exim, mode 0640 (group read is allowed): how Exim, which runs
# as Debian-exim, reads them in production. The "unreadable" row is root's alone (0600).
MTA_GROUP = "Debian-exim"


def make(work, i, case, group):
    name, text, mode, _code, _line, _words, special = case
    path = os.path.join(work, f"case{i:02d}.keys")
    if special == "missing":
        return path
    if special == "directory":
        os.mkdir(path)
    elif special == "fifo":
        os.mkfifo(path)
    else:
        with open(path, "wb") as f:
            f.write(text.encode() if isinstance(text, str) else text)
    os.chmod(path, mode)
    if group:
        shutil.chown(path, "root", group)
    if special == "foreign-owner":
        shutil.chown(path, "nobody")
    acl = {"acl-user-read": "u:nobody:r", "acl-group-write": "g:nogroup:rw", "acl-group-read": "g:nogroup:r"}
    if special in acl:
        subprocess.run(["setfacl", "-m", acl[special], path], check=True)
    return path


def as_nobody(special):
    return special == "unreadable"


# What the probes run as nobody use: copies in the world-readable work directory (the checkout
# and the virtualenv may sit where nobody cannot reach them), and the system Python with the
# installed package's files on PYTHONPATH. Set up by stage().
STAGE = {}


def stage(work, lib, batv, py):
    d = os.path.join(work, "stage")
    os.makedirs(os.path.join(d, "pylib"))
    STAGE["lib"] = shutil.copy(lib, os.path.join(d, "libbatv.so"))
    STAGE["batv"] = shutil.copy(batv, os.path.join(d, "batv"))
    pkg = subprocess.run([py, "-c", "import batv, os; print(os.path.dirname(batv.__file__))"],
                         capture_output=True, text=True, check=True).stdout.strip()
    shutil.copytree(pkg, os.path.join(d, "pylib", "batv"))
    STAGE["pythonpath"] = os.path.join(d, "pylib")
    STAGE["python"] = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else py
    for root, dirs, files in os.walk(d):
        for n in dirs + files:
            os.chmod(os.path.join(root, n), 0o755)


def run(cmd, nobody=False, input=None, **kw):
    """The probe's result; a probe that has not ended within PROBE_TIMEOUT is killed with its
    process group and comes back with returncode "hung"."""
    if nobody:
        cmd = ["setpriv", "--reuid=nobody", "--regid=nogroup", "--clear-groups", "--"] + cmd
        kw["env"] = dict(os.environ, PYTHONPATH=STAGE["pythonpath"], HOME="/")
    p = subprocess.Popen(cmd, stdin=subprocess.PIPE if input is not None else subprocess.DEVNULL,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, errors="replace",
                         start_new_session=True, **kw)
    try:
        out, err = p.communicate(input, timeout=PROBE_TIMEOUT)
        return subprocess.CompletedProcess(cmd, p.returncode, out, err)
    except subprocess.TimeoutExpired:
        os.killpg(p.pid, signal.SIGKILL)
        out, err = p.communicate()
        return subprocess.CompletedProcess(cmd, "hung", out, err + f"(hung: no answer in {PROBE_TIMEOUT} s)")


# ---------------------------------------------------------------------------------------------
# The C library, through ctypes (in a child process, so that the unreadable row can run as
# nobody: root reads every file).

C_PROBE = r"""
import ctypes, sys
lib = ctypes.CDLL(sys.argv[1])
lib.batv_keyring_load_ex.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_void_p), ctypes.c_char_p, ctypes.c_size_t]
lib.batv_keyring_load_ex.restype = ctypes.c_uint32
lib.batv_strerror.argtypes = [ctypes.c_uint32]
lib.batv_strerror.restype = ctypes.c_char_p
lib.batv_keyring_free.argtypes = [ctypes.c_void_p]
out = ctypes.c_void_p(1)
err = ctypes.create_string_buffer(1024)
code = lib.batv_keyring_load_ex(sys.argv[2].encode(), ctypes.byref(out), err, len(err))
print(code)
print("null" if not out.value else "handle")
print(err.value.decode("utf-8", "replace"))
print(lib.batv_strerror(code).decode())
if out.value:
    lib.batv_keyring_free(out)
"""


def c_library(lib, row, case, path):
    name, _text, _mode, code, line, words, special = case
    nobody = as_nobody(special)
    py = STAGE["python"] if nobody else sys.executable
    r = run([py, "-c", C_PROBE, STAGE["lib"] if nobody else lib, path], nobody=nobody)
    if r.returncode != 0:
        return check(row, "C", False, f"probe failed: {r.stderr.strip()[-300:]}")
    got_code, handle, message, strerror = (r.stdout.split("\n") + ["", "", "", ""])[:4]
    ok = (
        int(got_code) == code
        and handle == "null"
        and path in message
        and any(w in message for w in words)
        and (line is None or f"line {line}:" in message)
        and strerror != ""
        and secret_free(r.stdout + r.stderr)
    )
    check(row, "C", ok, f"{got_code} {redact(message)!r} / strerror {strerror!r}")


# ---------------------------------------------------------------------------------------------
# Python

PY_PROBE = r"""
import sys, batv
try:
    batv.Keyring.load(sys.argv[1])
except batv.KeyringError as e:
    assert isinstance(e, batv.BatvError) and isinstance(e, ValueError)
    print("KeyringError")
    print(e.path)
    print(e.line)
    print(str(e))
    print(repr(e))
else:
    print("no error")
"""


def python(py, row, case, path):
    name, _text, _mode, _code, line, words, special = case
    nobody = as_nobody(special)
    r = run([STAGE["python"] if nobody else py, "-c", PY_PROBE, path], nobody=nobody)
    out = (r.stdout.split("\n") + [""] * 5)[:5]
    ok = (
        r.returncode == 0
        and out[0] == "KeyringError"
        and out[1] == path
        and out[2] == str(line)
        and any(w in out[3] for w in words)
        and secret_free(r.stdout + r.stderr)
    )
    detail = redact(out[3]) if r.returncode == 0 else redact(r.stderr.strip()[-300:])
    check(row, "Python", ok, f"{out[0]} line={out[2]} {detail!r}")


# ---------------------------------------------------------------------------------------------
# Exim: -be shows the DEFER, -bh shows the 451.

EXIM_CONF = """\
# A minimal Exim configuration for the misconfiguration matrix: one RCPT ACL that asks libbatv.
primary_hostname = mx.example.com
domainlist local_domains = example.com
acl_smtp_rcpt = acl_check_rcpt
log_file_path = {work}/exim-%slog
spool_directory = {work}/spool
begin acl
acl_check_rcpt:
  deny    senders = :
          condition = ${{if eq{{${{dlfunc{{{lib}}}{{batv_exim_status}}{{$local_part@$domain}}{{$acl_m_keys}}}}}}{{valid}}{{no}}{{yes}}}}
          message = 550 5.7.1 Bounce rejected
  accept
begin routers
begin transports
"""


def exim_session(work, path, nobody=False):
    """The RCPT reply of an SMTP session (exim -bh) whose ACL asks libbatv about a bounce."""
    session = "EHLO client.example.net\r\nMAIL FROM:<>\r\nRCPT TO:<user@example.com>\r\nQUIT\r\n"
    r = run(["exim4", "-C", os.path.join(work, "exim.conf"), "-oMa", "192.0.2.7", "-bh", "192.0.2.7",
             "-DKEYS=" + path], input=session, nobody=nobody)
    # Final reply lines in order: 220 greeting, 250 EHLO, 250 MAIL, then the RCPT's, then 221.
    finals = [l for l in r.stdout.splitlines() if len(l) > 3 and l[:3].isdigit() and l[3] == " "]
    if len(finals) > 3:
        return finals[3], r.stdout + r.stderr
    return "(no RCPT reply: " + redact(r.stdout + r.stderr)[-300:] + ")", r.stdout + r.stderr


def exim_control(lib, work):
    """With a good keyring the same ACL rejects the bounce with 550: the 451s below come from
    the broken keyrings, not from the test's configuration."""
    path = os.path.join(work, "good.keys")
    with open(path, "w") as f:
        f.write(GOOD)
    os.chmod(path, 0o640)
    shutil.chown(path, "root", MTA_GROUP)
    r = run(["exim4", "-C", os.path.join(work, "exim.conf"), "-be",
             "${dlfunc{%s}{batv_exim_status}{user@example.com}{%s}}" % (lib, path)])
    reply, _ = exim_session(work, path)
    ok = r.stdout.strip() == "untagged" and reply.startswith("550")
    check("control: a good keyring", "Exim", ok, f"-be: {r.stdout.strip()!r}; RCPT: {reply!r}")
    if not ok:
        raise SystemExit("misconfig: the Exim control failed; the Exim rows would prove nothing")


def acl_group_read_control(lib, py, batv, work, group):
    """A named group that may only read, as the file's own group may: every binding accepts the
    keyring (so the ACL rows above fail for their entries, not for having an ACL at all)."""
    row = "control: ACL: a named group may read"
    path = make(work, 99, (row, GOOD, 0o640, None, None, None, "acl-group-read"), group)
    r = run([sys.executable, "-c", C_PROBE, lib, path])
    out = r.stdout.split("\n")
    check(row, "C", r.returncode == 0 and out[:2] == ["0", "handle"], redact(r.stdout + r.stderr)[-300:])
    r = run([py, "-c", PY_PROBE, path])
    check(row, "Python", r.returncode == 0 and r.stdout.startswith("no error"), redact(r.stdout + r.stderr)[-300:])
    if group:
        r = run(["exim4", "-C", os.path.join(work, "exim.conf"), "-be",
                 "${dlfunc{%s}{batv_exim_status}{user@example.com}{%s}}" % (lib, path)])
        reply, _ = exim_session(work, path)
        ok = r.stdout.strip() == "untagged" and reply.startswith("550")
        check(row, "Exim", ok, f"-be: {redact(r.stdout + r.stderr).strip()!r}; RCPT: {reply!r}")
    r = run([batv, "--keys", path, "--now", "1795700000", "sign", "user@example.com"])
    check(row, "CLI", r.returncode == 0 and r.stdout.startswith("prvs=5"), f"exit {r.returncode} {redact(r.stdout + r.stderr).strip()!r}")


def exim(lib, work, row, case, path):
    name, _text, _mode, _code, _line, words, special = case
    # -be runs as its caller: the unreadable row's caller is nobody (root reads any file). The
    # SMTP session runs as Debian-exim whoever starts it.
    nobody = as_nobody(special)
    expansion = "${dlfunc{%s}{batv_exim_status}{user@example.com}{%s}}" % (
        STAGE["lib"] if nobody else lib, path)
    r = run(["exim4", "-C", os.path.join(work, "exim.conf"), "-be", expansion], nobody=nobody)
    text = r.stdout + r.stderr
    # exim -be exits 0 either way; a failed expansion prints "Failed: " and the message.
    ok_be = "Failed: batv: " in text and secret_free(text)
    rcpt_reply, session_text = exim_session(work, path)
    ok_bh = rcpt_reply.startswith("451") and secret_free(session_text)
    be_line = next((l for l in text.splitlines() if "batv:" in l), text.strip()[-200:])
    check(row, "Exim", ok_be and ok_bh, f"-be: {redact(be_line)!r}; RCPT: {rcpt_reply!r}")


# ---------------------------------------------------------------------------------------------
# The CLI


def cli(batv, row, case, path):
    name, _text, _mode, _code, line, words, special = case
    # verify, not sign: `batv sign` creates a missing keyring on purpose (a new installation
    # needs no set-up), so a missing file is no error there.
    nobody = as_nobody(special)
    r = run([STAGE["batv"] if nobody else batv, "--keys", path, "--now", "1795700000", "verify",
             "prvs=1790c1c5ba=user@example.com"], nobody=nobody)
    err = r.stderr.strip()
    ok = (
        r.returncode == 2
        and r.stdout == ""
        and path in err
        and any(w in err for w in words)
        and (line is None or f"line {line}" in err)
        and secret_free(r.stdout + r.stderr)
    )
    check(row, "CLI", ok, f"exit {r.returncode} {redact(err.splitlines()[-1] if err else '')!r}")


# ---------------------------------------------------------------------------------------------
# A good keyring's Python objects, printed every way Python prints them.

REPR_PROBE = r"""
import sys, batv
k = batv.Keyring.load(sys.argv[1])
p = batv.Policy(k, exempt=("postmaster@",), monitor=True)
shown = [repr(k), str(k), repr(p), str(p), repr(p.check("", "user@example.com", now=0)),
         repr(k.rotated()), repr(k.key_numbers)]
for bad in ("prvs=1790c1c5ba=user@example.com", "user@example.com", "prvs=x"):
    try:
        k.verify(bad, now=1795700000)
    except batv.BatvError as e:
        shown += [repr(e), str(e)]
print("\n".join(shown))
"""


def python_repr(py, work):
    path = os.path.join(work, "good-repr.keys")
    with open(path, "w") as f:
        f.write(f"sign-key 1\nkey 1 hmac-sha256 base64:{SECRET_B64}\n{GOOD}")
    os.chmod(path, 0o600)
    r = run([py, "-c", REPR_PROBE, path])
    ok = r.returncode == 0 and "batv.Keyring" in r.stdout and secret_free(r.stdout + r.stderr)
    check("a good keyring", "Python repr/str", ok, f"{len(r.stdout.splitlines())} reprs and messages, "
          + ("none shows the secret" if ok else redact(r.stdout + r.stderr)[-300:]))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--lib", required=True)
    ap.add_argument("--batv", required=True)
    ap.add_argument("--python", default=sys.executable)
    ap.add_argument("--no-exim", action="store_true")
    a = ap.parse_args()
    lib = os.path.abspath(a.lib)
    work = tempfile.mkdtemp(prefix="batv-misconfig-")
    os.chmod(work, 0o755)  # nobody must reach the files (and be refused by their own modes)
    try:
        stage(work, lib, os.path.abspath(a.batv), a.python)
        if not a.no_exim:
            os.makedirs(os.path.join(work, "spool"))
            # The SMTP session runs as Debian-exim: it loads the staged copy of the library, as
            # the checkout may sit where that user cannot reach it.
            with open(os.path.join(work, "exim.conf"), "w") as f:
                f.write(EXIM_CONF.format(work=work, lib=STAGE["lib"]).replace("$acl_m_keys", "KEYS"))
            shutil.chown(os.path.join(work, "spool"), "Debian-exim", "Debian-exim")
            exim_control(lib, work)
        bindings = 3 if a.no_exim else 4
        python_repr(a.python, work)
        acl_group_read_control(lib, a.python, os.path.abspath(a.batv), work, None if a.no_exim else MTA_GROUP)
        for i, case in enumerate(CASES):
            path = make(work, i, case, None if a.no_exim else MTA_GROUP)
            row = case[0]
            c_library(lib, row, case, path)
            python(a.python, row, case, path)
            if not a.no_exim:
                exim(lib, work, row, case, path)
            cli(os.path.abspath(a.batv), row, case, path)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    if failures:
        print(f"misconfig: {len(failures)} of {results} checks FAILED: " + "; ".join(failures))
        sys.exit(1)
    control = " (and the controls: a named group's read ACL is accepted" + (
        "" if a.no_exim else "; a good keyring gets its 550 from Exim") + ")"
    print(f"misconfig: {len(CASES)} broken keyrings x {bindings} bindings = {len(CASES) * bindings} "
          f"checks, every one a clear error, no secret shown{control}")


if __name__ == "__main__":
    main()
