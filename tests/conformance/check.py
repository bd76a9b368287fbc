#!/usr/bin/env python3
"""The cross-face conformance test: every address of inputs.txt through the four faces of
docs/scheme.md, which must give the same answers.

  - cli:    the batv command (target/release/batv), many addresses per run;
  - c:      libbatv.so through ctypes (the functions of include/batv.h);
  - python: `import batv`, in this process (run it with the Python of a virtualenv that has it);
  - exim:   Exim's ${dlfunc} functions on libbatv.so, one `exim4 -be` reading every call from
            standard input, under faketime at NOW (Exim reads the system clock).

Operations: status (the outcome word), verify (the original address of a valid tag), strip
(the octets out), sign (what the mail is sent as), and the bounce verdict of check for three
senders, enforcing and in monitor mode, with the policy of make_inputs.EXEMPT.

The only differences allowed are those of docs/scheme.md "Where the faces differ", each
written once: documented() and cli_channel() below, NOT_GIVEN (Exim's sign) and the buffer
rule in CFace.out(). Everything else must agree.

Usage: check.py --batv PATH --lib PATH [--exim PATH] --work DIR
Prints the number of inputs, per face and operation how many it carried, and each
disagreement with the input and every face's answer. Exits 1 on any disagreement, on a face
that carried nothing for an operation, or when inputs.txt is missing or not what
make_inputs.py makes.
"""

import argparse
import base64
import ctypes
import os
import re
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import make_inputs as M  # noqa: E402  (next to this file; standard library only)

NOW = M.NOW
SENDERS = ("", "MAILER-DAEMON@mx.example.net", "friend@example.net")
CHECKS = [(sender, monitor) for monitor in (False, True) for sender in SENDERS]


def check_op(sender, monitor):
    return f"check <{sender}> {'monitor' if monitor else 'enforce'}"


OPS = ["status", "verify", "strip", "sign"] + [check_op(s, m) for s, m in CHECKS]
FACES = ("cli", "c", "python", "exim")
WORDS = ("valid", "untagged", "malformed", "unknown-key", "bad-signature", "expired")


def kind(op):
    return "check" if op.startswith("check") else op


def monitor_op(op):
    return op.endswith(" monitor")


# What an answer holds, per operation. Every face that carries an input must give the same
# value for every field it has.
#   status: outcome   the outcome word
#   verify: original  the original address of a valid tag, else None; outcome  the outcome
#   strip:  address   the octets out
#   sign:   result    "ok" or "error"; sent_as  what the mail goes out as: the signed address, the
#                     address unchanged, or, on an error, the address untagged (docs/scheme.md
#                     "Signing": on an error the caller sends the mail untagged)
#   check:  accepted, monitored, reason, deliver_to (None for a reject), reply (the SMTP reply of
#           a reject, else None), would_reply (in monitor mode, the reply a reject would have had)
FIELDS = {
    "status": ("outcome",),
    "verify": ("original", "outcome"),
    "strip": ("address",),
    "sign": ("result", "sent_as"),
    "check": ("accepted", "monitored", "reason", "deliver_to", "reply", "would_reply"),
}

# Fields a face's interface has no way to give, so they are not asked of it.
NOT_GIVEN = {
    # batv_exim_verify yields "" for every outcome but valid (docs/exim.md "The functions").
    ("exim", "verify"): {"outcome"},
    # docs/scheme.md "Where the faces differ", Exim: batv_exim_sign yields an address it cannot
    # sign unchanged instead of an error, so Exim gives what the mail is sent as, not the result.
    ("exim", "sign"): {"result"},
    # batv_exim_check yields the verdict line only; Exim's router strips the recipient for
    # delivery (docs/exim.md "The functions").
    ("exim", "check"): {"deliver_to"},
    # batv_verdict.smtp_reply and Verdict.smtp_reply are set only for a reject (include/batv.h,
    # _batv.pyi); the monitored reason is there, the would-be reply text is not.
    ("c", "check"): {"would_reply"},
    ("python", "check"): {"would_reply"},
}

ABSENT = "absent"  # the face cannot be given the address at all
MISSING = "<missing>"


# ---------------------------------------------------------------------------------------------
# The table: docs/scheme.md "Where the faces differ", one rule each, and nothing else.


def has_control(a):
    return any(b < 0x20 or b == 0x7F for b in a)


def is_utf8(a):
    try:
        a.decode("utf-8")
        return True
    except UnicodeDecodeError:
        return False


CLI_LINE_MAX = 4096


def cli_channel(a):
    """How the batv command is given the address: "args", "stdin" or None (it cannot be).

    Table, the batv command: arguments cannot hold NUL; so an address with a NUL goes on
    standard input, where a line ends at LF (a CR before it is part of the line end) and is
    held to 4096 octets.
    """
    if b"\0" not in a:
        return "args"
    if b"\n" in a or a.endswith(b"\r") or len(a) > CLI_LINE_MAX:
        return None
    return "stdin"


def documented(face, op, a):
    """None when the face carries address `a` for `op` and is held to the shared answer;
    ABSENT when the face cannot be given it; otherwise the answer the table says it gives
    instead (checked as such, and not counted as carried)."""
    if face in ("c", "exim") and b"\0" in a:
        # Table, C: strings are NUL-terminated; Exim: its strings cannot hold NUL.
        return ABSENT
    if face == "python" and not is_utf8(a):
        # Table, Python: a str cannot carry octets that are not UTF-8; the str that holds them
        # as lone surrogates is a UnicodeEncodeError.
        return {"exception": "UnicodeEncodeError"}
    if face == "cli":
        if cli_channel(a) is None:
            return ABSENT
        # Table, the batv command: an address with a control character cannot be printed back
        # on a line, so strip refuses it.
        if has_control(a) and op == "strip":
            return {"refused": True}
    return None


# ---------------------------------------------------------------------------------------------
# The batv command


class CliFace:
    name = "cli"

    def __init__(self, batv, keys):
        self.batv, self.keys = batv, keys
        self.runs = 0

    def base(self):
        return [self.batv, "--keys", self.keys, "--now", str(NOW)]

    def command(self, op, addresses, stdin):
        """argv for op over `addresses`, given as arguments unless `stdin`."""
        if kind(op) == "check":
            sender, monitor = next((s, m) for s, m in CHECKS if check_op(s, m) == op)
            cmd = self.base() + ["check", f"--sender={sender}"]
            cmd += [f"--exempt={e}" for e in M.EXEMPT] + (["--monitor"] if monitor else [])
            if not stdin:
                cmd += [b"--recipient=" + a for a in addresses]
            return cmd
        return self.base() + [op] + ([] if stdin else ["--"] + list(addresses))

    def run(self, op, addresses, stdin):
        """[(line octets, refused)] for the addresses, in order, from one run."""
        cmd = self.command(op, addresses, stdin)
        data = b"".join(a + b"\n" for a in addresses) if stdin else None
        r = subprocess.run(cmd, input=data, stdin=None if stdin else subprocess.DEVNULL,
                           capture_output=True, timeout=300)
        self.runs += 1
        if r.returncode not in (0, 1):
            raise SystemExit(f"FAIL: batv {op} exited {r.returncode}: {r.stderr.decode(errors='replace')[:2000]}")
        place = "line" if stdin else "argument"
        refused = {int(m.group(1)) - 1 for m in re.finditer(rb"^batv: " + place.encode() + rb" (\d+): ", r.stderr, re.M)}
        out = r.stdout
        if len(addresses) == 1:
            # One address: the whole output is its line, whatever octets it holds.
            if not out.endswith(b"\n"):
                return [(b"<no line end: " + out + b">", False)]
            return [(out[:-1], 0 in refused)]
        lines = out.split(b"\n")
        if lines[-1] != b"" or len(lines) - 1 != len(addresses):
            raise SystemExit(f"FAIL: batv {op}: {len(lines) - 1} output lines for {len(addresses)} addresses")
        return [(line, i in refused) for i, line in enumerate(lines[:-1])]

    def answers(self, op, inputs):
        """{index: answer} for `inputs`, {index: address}, in as few runs as can be."""
        batch, single, stdin = [], [], []
        for i, a in inputs.items():
            if cli_channel(a) == "stdin":
                stdin.append(i)
            else:
                # An LF in an address could end up in the output: such addresses run one by one.
                (single if b"\n" in a else batch).append(i)
        got = {}
        if batch:
            got.update(zip(batch, self.run(op, [inputs[i] for i in batch], False)))
        for i in single:
            got[i] = self.run(op, [inputs[i]], False)[0]
        if stdin:
            got.update(zip(stdin, self.run(op, [inputs[i] for i in stdin], True)))
        return {i: self.answer(op, inputs[i], line, refused) for i, (line, refused) in got.items()}

    @staticmethod
    def answer(op, a, line, refused):
        k = kind(op)
        if k == "status":
            return {"outcome": line.decode("latin-1")}
        if k == "verify":
            word = line.decode("latin-1")
            if word in WORDS:
                return {"original": None, "outcome": word}
            return {"original": line, "outcome": "valid"}
        if k == "strip":
            return {"refused": True} if refused and line == b"" else {"address": line}
        if k == "sign":
            if refused and line == b"":
                return {"result": "error", "sent_as": a}
            return {"result": "ok", "sent_as": line}
        # check: accept<TAB>REASON<TAB>ADDRESS[<TAB>monitor: would reject with REPLY] or
        # reject<TAB>REASON<TAB>REPLY; an empty line with the reason on standard error.
        if refused and line == b"":
            return {"refused": True}
        if line.startswith(b"accept\t"):
            reason, _, rest = line[7:].partition(b"\t")
            to, sep, would = rest.rpartition(b"\tmonitor: would reject with ")
            if not sep:
                to, would = rest, None
            return {"accepted": True, "monitored": would is not None, "reason": reason.decode("latin-1"),
                    "deliver_to": to, "reply": None, "would_reply": would and would.decode("latin-1")}
        if line.startswith(b"reject\t"):
            reason, _, reply = line[7:].partition(b"\t")
            return {"accepted": False, "monitored": False, "reason": reason.decode("latin-1"),
                    "deliver_to": None, "reply": reply.decode("latin-1"), "would_reply": None}
        return {"unparsed": line}


# ---------------------------------------------------------------------------------------------
# The C library, through ctypes

BATV_ADDRESS_MAX = 255
RESULT_OK, BUFFER_TOO_SMALL = 0, 101
# batv_result codes 1-5, the verification outcomes (include/batv.h).
OUTCOME_CODES = {1: "untagged", 2: "malformed", 3: "unknown-key", 4: "bad-signature", 5: "expired"}
SIGN_ERRORS = {102: "not-an-address", 103: "too-long", 104: "not-utf8"}


class Verdict(ctypes.Structure):
    _fields_ = [("accepted", ctypes.c_bool), ("monitored", ctypes.c_bool), ("reason", ctypes.c_uint32),
                ("reason_word", ctypes.c_char_p), ("smtp_reply", ctypes.c_char_p)]


class CFace:
    name = "c"

    def __init__(self, path):
        lib = self.lib = ctypes.CDLL(path)
        P, S, I64, U32 = ctypes.c_void_p, ctypes.c_char_p, ctypes.c_int64, ctypes.c_uint32
        SZ, PSZ = ctypes.c_size_t, ctypes.POINTER(ctypes.c_size_t)
        for name, args in [
            ("batv_keyring_parse", [S, SZ, ctypes.POINTER(P)]),
            ("batv_sign", [P, S, I64, S, SZ, PSZ]),
            ("batv_verify", [P, S, I64, S, SZ, PSZ]),
            ("batv_strip", [S, S, SZ, PSZ]),
            ("batv_policy_new", [ctypes.POINTER(P)]),
            ("batv_policy_add_exempt", [P, S]),
            ("batv_policy_set_monitor", [P, ctypes.c_bool]),
            ("batv_policy_check", [P, P, S, S, I64, ctypes.POINTER(Verdict), S, SZ, PSZ]),
        ]:
            f = getattr(lib, name)
            f.argtypes, f.restype = args, U32
        text = M.KEYRING_TEXT.encode()
        self.ring = P()
        rc = lib.batv_keyring_parse(text, len(text), ctypes.byref(self.ring))
        if rc != RESULT_OK:
            raise SystemExit(f"FAIL: batv_keyring_parse of the conformance keyring returned {rc}")
        self.policies = {}
        for monitor in (False, True):
            p = P()
            ok = lib.batv_policy_new(ctypes.byref(p)) == RESULT_OK
            ok = ok and all(lib.batv_policy_add_exempt(p, e.encode()) == RESULT_OK for e in M.EXEMPT)
            ok = ok and lib.batv_policy_set_monitor(p, monitor) == RESULT_OK
            if not ok:
                raise SystemExit("FAIL: could not make a batv_policy")
            self.policies[monitor] = p

    @staticmethod
    def out(fn, *args, bigger_ok=False):
        """Calls fn(*args, buf, BATV_ADDRESS_MAX, &out_len): (result, the octets in buf, note).

        On BATV_RESULT_BUFFER_TOO_SMALL it calls again with the size asked for, and the note
        says so unless `bigger_ok`: the table, C, says BATV_ADDRESS_MAX octets always suffice
        except for batv_strip of an input over 254 octets.
        """
        size, note = BATV_ADDRESS_MAX, None
        for _ in range(2):
            buf = ctypes.create_string_buffer(size)
            n = ctypes.c_size_t(0)
            rc = fn(*args, buf, size, ctypes.byref(n))
            if rc != BUFFER_TOO_SMALL or size > BATV_ADDRESS_MAX:
                break
            if not bigger_ok:
                note = f"BUFFER_TOO_SMALL with BATV_ADDRESS_MAX octets; needed {n.value + 1}"
            size = n.value + 1
        return rc, buf.raw[:n.value] if rc == RESULT_OK else buf.value, note

    def answers(self, op, inputs):
        return {i: self.answer(op, a) for i, a in inputs.items()}

    def answer(self, op, a):
        lib, k = self.lib, kind(op)
        if k in ("status", "verify"):
            rc, buf, note = self.out(lib.batv_verify, self.ring, a, NOW)
            if rc == RESULT_OK:
                ans = {"outcome": "valid"} if k == "status" else {"original": buf, "outcome": "valid"}
            elif rc in OUTCOME_CODES:
                w = OUTCOME_CODES[rc]
                ans = {"outcome": w} if k == "status" else {"original": None, "outcome": w}
            else:
                ans = {"error": f"batv_verify returned {rc}"}
            return self.noted(ans, note)
        if k == "strip":
            # Table, C: batv_strip of an input over 254 octets may need more than
            # BATV_ADDRESS_MAX octets (its output is as long as its input).
            rc, buf, note = self.out(lib.batv_strip, a, bigger_ok=len(a) > 254)
            return self.noted({"address": buf} if rc == RESULT_OK else {"error": f"batv_strip returned {rc}"}, note)
        if k == "sign":
            rc, buf, note = self.out(lib.batv_sign, self.ring, a, NOW)
            if rc == RESULT_OK:
                ans = {"result": "ok", "sent_as": buf}
            elif rc in SIGN_ERRORS:
                ans = {"result": "error", "sent_as": a}
            else:
                ans = {"error": f"batv_sign returned {rc}"}
            return self.noted(ans, note)
        sender, monitor = next((s, m) for s, m in CHECKS if check_op(s, m) == op)
        v = Verdict()
        rc, buf, note = self.out(lib.batv_policy_check, self.policies[monitor], self.ring, sender.encode(), a,
                              NOW, ctypes.byref(v))
        word = (v.reason_word or b"").decode()
        reply = v.smtp_reply.decode() if v.smtp_reply else None
        ans = {"accepted": v.accepted, "monitored": v.monitored, "reason": word,
               "deliver_to": buf if v.accepted else None, "reply": reply}
        # The result code and buf must say what the verdict says (include/batv.h).
        want_rc = RESULT_OK if v.accepted else next((c for c, w in OUTCOME_CODES.items() if w == word), None)
        if rc != want_rc or (not v.accepted and buf.decode(errors="replace") != reply):
            ans["inconsistent"] = f"result {rc}, buf {buf!r}"
        return self.noted(ans, note)

    @staticmethod
    def noted(ans, note):
        """The answer, with a "buffer" field (which no other face has) when the call needed a
        bigger buffer than the table allows."""
        if note:
            ans["buffer"] = note
        return ans


# ---------------------------------------------------------------------------------------------
# The Python module


class PythonFace:
    name = "python"

    def __init__(self):
        import batv
        self.batv = batv
        self.ring = batv.Keyring.parse(M.KEYRING_TEXT)
        self.policies = {m: batv.Policy(self.ring, exempt=list(M.EXEMPT), monitor=m) for m in (False, True)}
        self.exceptions = {batv.Untagged: "untagged", batv.Malformed: "malformed", batv.UnknownKey: "unknown-key",
                           batv.BadSignature: "bad-signature", batv.Expired: "expired"}

    def answers(self, op, inputs):
        got = {}
        for i, a in inputs.items():
            # What is not UTF-8 goes in as the str that holds it (lone surrogates), to see the
            # UnicodeEncodeError of the table.
            s = a.decode("utf-8", "surrogateescape")
            try:
                got[i] = self.answer(op, s)
            except Exception as e:  # every exception is an answer, to compare
                got[i] = {"exception": type(e).__name__}
        return got

    def answer(self, op, s):
        batv, k = self.batv, kind(op)
        if k == "status":
            return {"outcome": self.ring.status(s, NOW)}
        if k == "verify":
            try:
                return {"original": self.ring.verify(s, NOW).encode(), "outcome": "valid"}
            except tuple(self.exceptions) as e:
                return {"original": None, "outcome": self.exceptions[type(e)]}
        if k == "strip":
            return {"address": batv.strip(s).encode()}
        if k == "sign":
            try:
                return {"result": "ok", "sent_as": self.ring.sign(s, NOW).encode()}
            except batv.BatvError:
                return {"result": "error", "sent_as": s.encode()}
        sender, monitor = next((x, m) for x, m in CHECKS if check_op(x, m) == op)
        v = self.policies[monitor].check(sender, s, NOW)
        # C and the CLI write the empty string where Python's deliver_to is None (a monitored
        # recipient that is not an address, docs/scheme.md "Bounce policy"): compare as they do.
        to = v.deliver_to.encode() if v.deliver_to is not None else b"" if v.accepted else None
        return {"accepted": v.accepted, "monitored": v.monitored, "reason": v.reason,
                "deliver_to": to, "reply": v.smtp_reply}


# ---------------------------------------------------------------------------------------------
# Exim


# Octets written as themselves in an expansion; every other one as \xHH, so that no `$`, `{`,
# `}` or `\` is special, no upper-case word is taken for a macro of Exim's configuration (-be
# replaces them), and no space or control character reaches the line.
EXIM_LITERAL = frozenset(b"abcdefghijklmnopqrstuvwxyz0123456789@.=_+-/:")


def exim_tokens(octets):
    return [chr(b) if b in EXIM_LITERAL else f"\\x{b:02x}" for b in octets]


class EximFace:
    name = "exim"

    def __init__(self, exim, lib, keys):
        self.exim, self.lib, self.keys = exim, lib, keys

    def call(self, op, a):
        """The expansion for op on address a, as tokens."""
        lib, keys, k = exim_tokens(self.lib.encode()), exim_tokens(self.keys.encode()), kind(op)
        T = list
        if k == "check":
            sender, monitor = next((s, m) for s, m in CHECKS if check_op(s, m) == op)
            exempt = exim_tokens(" ".join(M.EXEMPT).encode())
            return (T("${dlfunc{") + lib + T("}{batv_exim_check}{") + exim_tokens(sender.encode()) + T("}{")
                    + exim_tokens(a) + T("}{") + keys + T("}{") + exempt + T("}{}{") + T("1" if monitor else "0")
                    + T("}}"))
        if k == "strip":
            return T("${dlfunc{") + lib + T("}{batv_exim_strip}{") + exim_tokens(a) + T("}}")
        fn = {"status": "batv_exim_status", "verify": "batv_exim_verify", "sign": "batv_exim_sign"}[k]
        return T("${dlfunc{") + lib + T("}{" + fn + "}{") + exim_tokens(a) + T("}{") + keys + T("}}")

    def run_all(self, inputs):
        """{op: {index: answer}} for `inputs`, {op: {index: address}}, from one exim -be that
        reads every call on standard input."""
        requests = [(op, i) for op in OPS for i in inputs[op]]
        lines = []
        for n, (op, i) in enumerate(requests):
            # n:${str2b64:...}: the answer comes back as one line of base64 whatever its octets.
            tokens = list(f"{n}:${{str2b64:") + self.call(op, inputs[op][i]) + ["}"]
            # Exim reads standard input in pieces of about 1000 characters; a line that ends in
            # a backslash continues on the next, so long calls are cut between tokens.
            phys, cur = [], ""
            for t in tokens:
                if len(cur) + len(t) > 800:
                    phys.append(cur + "\\")
                    cur = ""
                cur += t
            lines.extend(phys + [cur])
        # Exim reads the system clock: faketime makes it NOW, as --now does for the others.
        cmd = ["faketime", f"@{NOW}", self.exim, "-be"]
        r = subprocess.run(cmd, input=("\n".join(lines) + "\n").encode(), capture_output=True, timeout=600)
        if r.returncode != 0:
            raise SystemExit(f"FAIL: exim -be exited {r.returncode}: {r.stderr.decode(errors='replace')[:2000]}")
        # Each answer is printed after a "> " prompt; a failure message may take more lines.
        responses = []
        for line in r.stdout.decode("ascii", "replace").split("\n"):
            if line.startswith("> "):
                responses.append(line[2:])
            elif responses:
                responses[-1] += "\n" + line
        while responses and responses[-1].strip() in ("", ">"):
            responses.pop()
        if len(responses) != len(requests):
            raise SystemExit(f"FAIL: exim -be gave {len(responses)} answers to {len(requests)} calls:\n"
                             + "\n".join(responses[:5]) + "\n" + r.stderr.decode(errors="replace")[:2000])
        out = {op: {} for op in OPS}
        for n, ((op, i), resp) in enumerate(zip(requests, responses)):
            m = re.fullmatch(rf"{n}:([A-Za-z0-9+/=]*)", resp)
            if m:
                out[op][i] = self.answer(op, base64.b64decode(m.group(1)))
            elif resp.startswith(f"{n}:") or resp.startswith("Failed:"):
                out[op][i] = {"error": resp}
            else:
                raise SystemExit(f"FAIL: exim -be answer {n} is out of step: {resp[:200]!r}")
        return out

    @staticmethod
    def answer(op, got):
        k = kind(op)
        if k == "status":
            return {"outcome": got.decode("latin-1")}
        if k == "verify":
            return {"original": got or None}
        if k == "strip":
            return {"address": got}
        if k == "sign":
            return {"sent_as": got}
        word, _, rest = got.decode("latin-1").partition(" ")
        reason, _, reply = rest.partition(" ")
        if word == "accept":
            return {"accepted": True, "monitored": False, "reason": reason, "reply": None, "would_reply": None}
        if word == "reject":
            return {"accepted": False, "monitored": False, "reason": reason, "reply": reply, "would_reply": None}
        if word == "monitor":
            return {"accepted": True, "monitored": True, "reason": reason, "reply": None, "would_reply": reply}
        return {"unparsed": got}


# ---------------------------------------------------------------------------------------------
# Comparing


def show(v):
    if isinstance(v, bytes):
        return '"' + M.encode(v).replace('"', '\\"') + '"'
    return repr(v)


def show_answer(ans):
    if ans is ABSENT:
        return "(cannot be given this address)"
    return ", ".join(f"{k}={show(v)}" for k, v in ans.items())


def compare(op, a, answers):
    """([problems], {face: carried?}) for one address and operation."""
    k = kind(op)
    problems, shared, carried = [], {}, {}
    for face, ans in answers.items():
        want = documented(face, op, a)
        if want is ABSENT:
            carried[face] = False
            if ans is not ABSENT:
                problems.append(f"{face} was given an address the table says it cannot carry")
        elif want is not None:
            carried[face] = False
            if ans != want:
                problems.append(f"{face}: the table says {show_answer(want)}")
        else:
            carried[face] = ans is not ABSENT
            if ans is ABSENT:
                problems.append(f"{face} gave no answer")
            else:
                shared[face] = ans
    keys = set(FIELDS[k]).union(*(set(x) for x in shared.values()))
    for key in sorted(keys):
        vals = {f: x.get(key, MISSING) for f, x in shared.items() if key not in NOT_GIVEN.get((f, k), ())}
        if len(set(vals.values())) > 1:
            problems.append(f"{key} differs: " + ", ".join(f"{f} {show(v)}" for f, v in vals.items()))
    return problems, carried


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--batv", required=True)
    ap.add_argument("--lib", required=True)
    ap.add_argument("--exim", default="/usr/sbin/exim4")
    ap.add_argument("--work", required=True)
    args = ap.parse_args()
    t0 = time.time()

    for path in (M.INPUTS, args.batv, args.lib, args.exim):
        if not os.path.isfile(path):
            print(f"FAIL: {path} is missing", file=sys.stderr)
            return 1
    with open(M.INPUTS, encoding="ascii", newline="\n") as f:
        if f.read() != M.make():
            print(f"FAIL: {M.INPUTS} is not what make_inputs.py makes (run it and commit the file)",
                  file=sys.stderr)
            return 1
    rows = M.read()
    inputs = [a for _, a in rows]
    groups = [g for g, _ in rows]
    print(f"conformance: {len(inputs)} inputs from {os.path.relpath(M.INPUTS)}, NOW = {NOW}", flush=True)

    os.makedirs(args.work, exist_ok=True)
    keys = os.path.join(os.path.abspath(args.work), "conformance.keys")
    fd = os.open(keys, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        f.write(M.KEYRING_TEXT)
    os.chmod(keys, 0o600)

    lib = os.path.abspath(args.lib)
    faces = {"cli": CliFace(os.path.abspath(args.batv), keys), "c": CFace(lib), "python": PythonFace()}
    results = {face: {} for face in FACES}
    timing = {}
    # Each face is given what it can carry (documented() says what it cannot).
    givable = {(f, op): {i: a for i, a in enumerate(inputs) if documented(f, op, a) is not ABSENT}
               for f in FACES for op in OPS}
    for name, face in faces.items():
        t = time.time()
        for op in OPS:
            results[name][op] = face.answers(op, givable[name, op])
        timing[name] = time.time() - t
    t = time.time()
    results["exim"] = EximFace(args.exim, lib, keys).run_all({op: givable["exim", op] for op in OPS})
    timing["exim"] = time.time() - t

    carried = {(f, op): 0 for f in FACES for op in OPS}
    documented_count = {(f, op): 0 for f in FACES for op in OPS}
    disagreements = []
    for op in OPS:
        for i, a in enumerate(inputs):
            answers = {f: results[f][op].get(i, ABSENT) for f in FACES}
            problems, did = compare(op, a, answers)
            for f, c in did.items():
                carried[f, op] += c
                documented_count[f, op] += isinstance(documented(f, op, a), dict)
            if problems:
                disagreements.append((op, i, problems, answers))

    width = max(len(op) for op in OPS)
    print("carried (face answered and was held to the shared answer) / "
          "documented (face gave the answer the table says instead):")
    print(f"  {'operation':<{width}}  " + "  ".join(f"{f:>12}" for f in FACES))
    for op in OPS:
        cells = [f"{carried[f, op]:>5} / {documented_count[f, op]:<4}" for f in FACES]
        print(f"  {op:<{width}}  " + "  ".join(f"{c:>12}" for c in cells))
    print("time per face: " + ", ".join(f"{f} {timing[f]:.1f} s" for f in FACES)
          + f"; batv runs: {faces['cli'].runs}")

    nothing = [(f, op) for f in FACES for op in OPS if carried[f, op] == 0]
    for f, op in nothing:
        print(f"FAIL: {f} carried no input for {op}")
    for op, i, problems, answers in disagreements:
        print(f"DISAGREE: {op} of {show(inputs[i])} (inputs.txt group: {groups[i]})")
        for p in problems:
            print(f"    {p}")
        for f in FACES:
            print(f"    {f:>6}: {show_answer(answers[f])}")
    by_op = {op: sum(1 for d in disagreements if d[0] == op) for op in OPS}
    if disagreements:
        print("disagreements by operation: " + ", ".join(f"{op} {n}" for op, n in by_op.items() if n))
    print(f"conformance: {len(inputs)} inputs x {len(OPS)} operations, {len(disagreements)} disagreements, "
          f"{time.time() - t0:.1f} s")
    return 1 if disagreements or nothing else 0


if __name__ == "__main__":
    sys.exit(main())
