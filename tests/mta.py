"""What the real-MTA tests share (tests/exim, tests/postfix, tests/sendmail): the tally of
checks, running commands, waiting, reading the page's blocks and mailboxes, and a smarthost
that records every envelope it is handed."""

import os
import re
import socket
import socketserver
import subprocess
import threading
import time


class Tally:
    """The checks so far: how many passed, and the names of those that failed."""

    def __init__(self):
        self.passes = 0
        self.failures = []


tally = Tally()


def check(name, ok, detail=""):
    """Prints one PASS or FAIL line (with at most 2000 characters of detail) and counts it."""
    if ok:
        tally.passes += 1
        print(f"PASS: {name}", flush=True)
    else:
        tally.failures.append(name)
        print(f"FAIL: {name}" + (f"\n      {str(detail)[:2000]}" if detail else ""), flush=True)
    return ok


def run(cmd, **kw):
    """Runs a command; returns CompletedProcess with text output."""
    kw.setdefault("capture_output", True)
    kw.setdefault("text", True)
    return subprocess.run(cmd, **kw)


def must(cmd, **kw):
    """run(), and the end of the test when the command fails."""
    r = run(cmd, **kw)
    if r.returncode != 0:
        raise SystemExit(f"setup failed: {cmd!r} exited {r.returncode}\n{r.stdout}{r.stderr}")
    return r


# A small SMTP listener as the smarthost: `envelopes` holds (MAIL FROM, [RCPT TO], data).
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


def read(path):
    """The file's text, or "" when it cannot be read (not there yet, say)."""
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def mailbox(user):
    return read(f"/var/mail/{user}")


def delivered(user, marker, seconds=20):
    """The text of the message with this marker in the user's mailbox, up to the line with the
    marker (its headers and the start of its body), waiting for delivery; None if it never comes."""
    def find():
        box = mailbox(user)
        i = box.find(f"marker {marker}")
        if i < 0:
            return None
        return box[box.rfind("\nFrom ", 0, i) + 1:i]
    return wait_for(find, seconds)


def socket_answers(path):
    """Whether something accepts connections on the Unix socket at `path`."""
    try:
        with socket.socket(socket.AF_UNIX) as c:
            c.connect(path)
            return True
    except OSError:
        return False


def wait_for(predicate, seconds=15):
    """The predicate's first true value within `seconds` (polled every 0.1 s), else its last."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        v = predicate()
        if v:
            return v
        time.sleep(0.1)
    return predicate()


def doc_blocks(doc, tag):
    """The blocks of a page that the test applies: each `<!-- TAG-test: file|run NAME -->`
    marker followed by a fenced block, as ({name: text} of files, {name: text} of commands).
    A marker without its block, or a name used twice, ends the test."""
    text = read(doc)
    if not text:
        raise SystemExit(f"cannot read {doc}")
    marker = re.compile(rf"<!-- {tag}-test: (file|run) (\S+) -->\n```[a-z]*\n(.*?)\n```", re.DOTALL)
    page = os.path.relpath(doc, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    files, runs = {}, {}
    for kind, name, body in marker.findall(text):
        target = files if kind == "file" else runs
        if name in target:
            raise SystemExit(f"{page}: two blocks named {name}")
        target[name] = body + "\n"
    if len(files) + len(runs) != text.count(f"<!-- {tag}-test: "):
        raise SystemExit(f"{page}: a {tag}-test marker is not followed by a fenced block")
    return files, runs
