#!/usr/bin/env python3
"""Throughput and load figures for batv-milter in a real Postfix, set up exactly as the Postfix
test sets it up (tests/postfix/check.py: docs/postfix.md in a private mount namespace).

  perf.py --root DIR --work DIR throughput [--messages N] [--rounds R] [--reuse]
      smtp-source -> Postfix -> smtp-sink, four smtpd services of one Postfix side by side:
      no BATV at all (no milter, a cleanup without the socketmap), the socketmap alone, a
      milter on the same library that does nothing, and batv-milter as docs/postfix.md
      configures it. The services take turns, round after round; prints one `throughput` line
      with the medians. One message per SMTP session, or many with --reuse.
  perf.py --root DIR --work DIR load [--sessions S] [--messages N]
      S concurrent SMTP sessions and N messages at once: half outgoing (smtp-source from a
      trusted address, signed), a quarter bounces to freshly tagged addresses, a quarter
      bounces to untagged addresses, from an outside address. Then every message is accounted
      for: delivered, rejected by rule, or still queued. Prints `load` lines; exits 1 when a
      message is missing or was wrongly rejected.

Run as root inside `unshare --mount` (bench/compare and tests/reliability/run do that).
"""

import argparse
import os
import re
import smtplib
import statistics
import subprocess
import sys
import threading
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import check  # noqa: E402  (the Postfix test's set-up, reused as it is)

EXAMPLES = os.path.join(check.ROOT, "target", "release", "examples", "milter_bench")
QUEUES = ["maildrop", "incoming", "active", "deferred", "hold"]


def queued_files():
    n = 0
    for q in QUEUES:
        for _, _, files in os.walk(f"/var/spool/postfix/{q}"):
            n += len(files)
    return n


def wait_empty(seconds=600):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if queued_files() == 0:
            return True
        time.sleep(0.02)
    return False


def add_service(port, settings):
    name = f"{check.POSTFIX_ADDR}:{port}/inet"
    check.must(["postconf", "-M", f"{name}={check.POSTFIX_ADDR}:{port} inet n - y - - smtpd"])
    check.must(["postconf", "-P"] + [f"{name}/{k}={v}" for k, v in settings])


def smtp_source(port, n, sessions, sender, rcpt, size=1000, reuse=False):
    cmd = ["smtp-source"] + (["-d"] if reuse else []) + ["-s", str(sessions), "-m", str(n), "-l", str(size), "-f", sender, "-t", rcpt,
           "-M", "client.test", f"{check.POSTFIX_ADDR}:{port}"]
    return subprocess.run(cmd, capture_output=True, text=True)


def throughput(args, site):
    # The null milter, on a socket Postfix can reach, and the two comparison services.
    null_sock = "/var/spool/postfix/batv/null.sock"
    null = subprocess.Popen([EXAMPLES, "null", f"unix:{null_sock}"])
    check.STARTED.append(null)
    check.wait_for(lambda: os.path.exists(null_sock), 10)
    os.chmod(null_sock, 0o666)
    check.must(["postconf", "-M", "cleanupplain/unix=cleanupplain unix n - y - 0 cleanup"])
    check.must(["postconf", "-P", "cleanupplain/unix/recipient_canonical_maps=",
                "cleanupplain/unix/non_smtpd_milters="])
    plain_port, null_port = check.free_port(check.POSTFIX_ADDR), check.free_port(check.POSTFIX_ADDR)
    map_port = check.free_port(check.POSTFIX_ADDR)
    add_service(plain_port, [("smtpd_milters", ""), ("cleanup_service_name", "cleanupplain")])
    add_service(null_port, [("smtpd_milters", "unix:batv/null.sock")])
    add_service(map_port, [("smtpd_milters", "")])
    check.must(["postfix", "reload"])
    time.sleep(1)
    services = [("no-milter", plain_port), ("socketmap-only", map_port), ("null-milter", null_port),
                ("batv-milter", site["port"])]
    n = args.messages
    results = {name: [] for name, _ in services}
    sender, rcpt = f"alice@{check.DOMAIN}", f"bob@{check.REMOTE}"
    # One warm-up round, then the measured ones; the order turns every round.
    for rnd in range(args.rounds + 1):
        order = services[rnd % len(services):] + services[:rnd % len(services)]
        for name, port in order:
            wait_empty()
            t0 = time.monotonic()
            r = smtp_source(port, n, args.sessions, sender, rcpt, reuse=args.reuse)
            if not wait_empty():
                raise SystemExit(f"{name}: the queue did not drain:\n{check.run(['postqueue', '-p']).stdout[-2000:]}")
            dt = time.monotonic() - t0
            if r.returncode != 0:
                raise SystemExit(f"{name}: smtp-source failed: {r.stdout}{r.stderr}")
            if rnd > 0:
                results[name].append(n / dt)
            print(f"round {rnd} {name}: {n} messages in {dt:.2f} s = {n / dt:.0f}/s", flush=True)
    null.terminate()
    null.wait(timeout=10)
    med = {k: statistics.median(v) for k, v in results.items()}
    signed = len(re.findall(r"action=sign ", site["syslog"].text()))
    print(f"throughput messages={n} sessions={args.sessions} rounds={args.rounds} reuse={int(args.reuse)} "
          f"no_milter={med['no-milter']:.0f} socketmap_only={med['socketmap-only']:.0f} "
          f"null_milter={med['null-milter']:.0f} "
          f"batv_milter={med['batv-milter']:.0f} ratio={med['batv-milter'] / med['no-milter']:.3f} "
          f"ratio_vs_null={med['batv-milter'] / med['null-milter']:.3f} signed={signed} "
          f"postfix={site['version']}", flush=True)
    expected = n * (args.rounds + 1)
    if signed < expected:
        raise SystemExit(f"batv-milter signed {signed} messages, expected {expected}")
    return 0


class Bouncer(threading.Thread):
    """One outside client sending bounces, one session per message."""

    def __init__(self, port, rcpts, counts, lock):
        super().__init__(daemon=True)
        self.port, self.rcpts, self.counts, self.lock = port, rcpts, counts, lock
        self.retry = []

    def one(self, kind, rcpt, marker):
        try:
            s = smtplib.SMTP(check.POSTFIX_ADDR, self.port, source_address=(check.OUTSIDE_ADDR, 0), timeout=120)
        except OSError:
            return "connect-failed"
        try:
            s.ehlo("bouncer.test")
            s.mail("")
            code, msg = s.rcpt(rcpt)
            if code == 250:
                dcode, _ = s.data(check.message(marker, ""))
                return "accepted" if dcode == 250 else f"data-{dcode}"
            if code == 550 and msg.startswith(b"5.7.1"):
                return "rejected-by-rule"
            return f"rcpt-{code}"
        except (smtplib.SMTPException, OSError) as e:
            return f"error-{type(e).__name__}"
        finally:
            try:
                s.quit()
            except (smtplib.SMTPException, OSError):
                pass

    def run(self):
        for kind, rcpt, marker in self.rcpts:
            result = self.one(kind, rcpt, marker)
            with self.lock:
                self.counts[(kind, result)] = self.counts.get((kind, result), 0) + 1
            if result not in ("accepted", "rejected-by-rule"):
                self.retry.append((kind, rcpt, marker))


def load(args, site):
    port = site["port"]
    n = args.messages
    n_out, n_valid = n // 2, n // 4
    n_untagged = n - n_out - n_valid
    out_sessions = args.sessions // 2
    in_sessions = args.sessions - out_sessions
    alice = f"alice@{check.DOMAIN}"
    tagged, _ = check.batv_cli("sign", alice)
    work = [("valid", tagged, f"v{i:06d}") for i in range(n_valid)]
    work += [("untagged", alice, f"u{i:06d}") for i in range(n_untagged)]
    work.sort(key=lambda w: w[2][1:])  # interleave the two kinds
    counts, lock = {}, threading.Lock()
    bouncers = [Bouncer(port, work[i::in_sessions], counts, lock) for i in range(in_sessions)]
    t0 = time.monotonic()
    out = {}

    def outgoing():
        out["r"] = smtp_source(port, n_out, out_sessions, alice, f"bob@{check.REMOTE}")

    ot = threading.Thread(target=outgoing)
    ot.start()
    for b in bouncers:
        b.start()
    peak = {"sessions": 0}

    def watch():
        while ot.is_alive() or any(b.is_alive() for b in bouncers):
            r = check.run(["ss", "-Htn", "state", "established", f"( sport = :{port} )"])
            peak["sessions"] = max(peak["sessions"], len(r.stdout.splitlines()))
            time.sleep(0.5)

    wt = threading.Thread(target=watch, daemon=True)
    wt.start()
    ot.join()
    for b in bouncers:
        b.join()
    t_sent = time.monotonic() - t0
    # What was tempfailed, the client retries (as a real one would) after the run.
    retried = {}
    for b in bouncers:
        for kind, rcpt, marker in b.retry:
            res = b.one(kind, rcpt, marker)
            retried[(kind, res)] = retried.get((kind, res), 0) + 1
    drained = wait_empty(600)
    t_all = time.monotonic() - t0
    envs = site["sink"].envelopes()
    signed_out = sum(1 for e in envs if e[0] and re.fullmatch(r"prvs=\d{4}[0-9a-f]{6}=" + re.escape(alice), e[0]))
    box = check.mailbox("alice")
    delivered_valid = len(re.findall(r"^marker v\d{6}", box, re.M))
    delivered_untagged = len(re.findall(r"^marker u\d{6}", box, re.M))
    still_queued = queued_files()
    r = out["r"]
    src_errors = (r.stdout + r.stderr).strip().splitlines()
    lines = [
        f"load sessions={args.sessions} (outgoing {out_sessions}, bounces {in_sessions}) peak_established={peak['sessions']} "
        f"messages={n} sent_in={t_sent:.1f}s all_done_in={t_all:.1f}s postfix={site['version']}",
        f"load outgoing: sent={n_out} delivered_signed={signed_out} delivered_total={len(envs)} "
        f"smtp_source_errors={len(src_errors)}",
        f"load bounces to valid tags: sent={n_valid} " + " ".join(
            f"{res}={c}" for (k, res), c in sorted(counts.items()) if k == "valid") + f" delivered={delivered_valid}",
        f"load bounces to untagged: sent={n_untagged} " + " ".join(
            f"{res}={c}" for (k, res), c in sorted(counts.items()) if k == "untagged") + f" delivered={delivered_untagged}",
        f"load retried after a tempfail: " + (" ".join(f"{k}:{res}={c}" for (k, res), c in sorted(retried.items())) or "none"),
        f"load queue after the run: {still_queued} files, drained={drained}",
    ]
    for l in lines:
        print(l, flush=True)
    if src_errors:
        print("smtp-source said: " + " | ".join(src_errors[:5]), flush=True)
    valid_ok = counts.get(("valid", "accepted"), 0) + retried.get(("valid", "accepted"), 0)
    untagged_rejected = counts.get(("untagged", "rejected-by-rule"), 0) + retried.get(("untagged", "rejected-by-rule"), 0)
    ok = (signed_out + still_queued >= n_out and len(envs) == signed_out
          and valid_ok == n_valid and delivered_valid == n_valid
          and untagged_rejected == n_untagged and delivered_untagged == 0)
    print(f"load accounted: outgoing {signed_out}+{still_queued} queued of {n_out}; valid bounces "
          f"{delivered_valid} delivered of {n_valid}; untagged bounces {untagged_rejected} rejected by rule of "
          f"{n_untagged}, {delivered_untagged} delivered; {'OK' if ok else 'MISMATCH'}", flush=True)
    return 0 if ok else 1


def proc_status(pid, key):
    """A field of /proc/PID/status in KiB (VmRSS, VmHWM)."""
    try:
        with open(f"/proc/{pid}/status") as f:
            m = re.search(rf"^{key}:\s+(\d+) kB", f.read(), re.M)
        return int(m.group(1)) if m else -1
    except OSError:
        return -1


def raise_nofile():
    import resource
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def netstring(s):
    return f"{len(s)}:{s},".encode()


def socketmap_junk(path, n, tagged, plain):
    """n connections of broken netstrings to the socketmap, with a well-behaved client asking
    after each one; returns (junk connections made, good answers, wrong answers)."""
    import socket as so
    samples = [b"12:batv prvs", b"99999999999999:", b"4097:" + b"a" * 4097 + b",", b"x:batv a,",
               b"9:batv a@b;", b"5:batv", b":,", b"-1:,", b"0000000000001:a,"]
    good = so.socket(so.AF_UNIX)
    good.connect(path)
    made, right, wrong = 0, 0, 0

    def ask(key):
        good.sendall(netstring(f"batv {key}"))
        buf = b""
        while not buf.endswith(b","):
            chunk = good.recv(4096)
            if not chunk:
                return None
            buf += chunk
        return buf.split(b":", 1)[1][:-1].decode()

    for i in range(n):
        c = so.socket(so.AF_UNIX)
        try:
            c.connect(path)
            c.sendall(samples[i % len(samples)])
            if i % 3 == 0:
                c.shutdown(so.SHUT_WR)
                c.settimeout(5)
                try:
                    c.recv(100)
                except OSError:
                    pass
            made += 1
        except OSError:
            pass
        finally:
            c.close()
        if i % 100 == 0:
            a, b = ask(tagged), ask(plain)
            if a == f"OK {check.strip_tag(tagged)}" and b == "NOTFOUND ":
                right += 1
            else:
                wrong += 1
    good.close()
    return made, right, wrong


def hostile(args, site):
    pid = site["daemon"].proc.pid
    port = site["port"]
    alice = f"alice@{check.DOMAIN}"
    milter_sock = "/var/spool/postfix/batv/milter.sock"
    socketmap_sock = "/var/spool/postfix/batv/socketmap.sock"
    rss0 = proc_status(pid, "VmRSS")
    out = []

    def delivered_signed():
        return sum(1 for e in site["sink"].envelopes() if e[0] and e[0].startswith("prvs="))

    def mail_during(n, sessions=10):
        """Sends n messages and returns (delivered signed, smtp-source runs, their error lines).
        smtp-source gives up at its first tempfail (a 451 while junk holds every milter
        connection); a real client keeps such a message and retries, so what is left is sent
        again, up to 5 runs."""
        before = delivered_signed()
        got, runs, errors = 0, 0, []
        while runs < 5 and got < n:
            runs += 1
            r = smtp_source(port, n - got, sessions, alice, f"bob@{check.REMOTE}")
            wait_empty(300)
            errors += [l.strip() for l in (r.stdout + r.stderr).splitlines() if l.strip()]
            got = delivered_signed() - before
        return got, runs, errors

    def said(runs, errors):
        return f"in {runs} smtp-source run(s)" + (f", errors: {errors[:2]}" if errors else ", no errors")

    # A. Malformed milter packets, while Postfix sends mail through the daemon.
    junk = subprocess.Popen([EXAMPLES, "junk", f"unix:{milter_sock}", str(args.junk)], stdout=subprocess.PIPE,
                            text=True, preexec_fn=raise_nofile)
    got, runs, errs = mail_during(1000)
    jout = junk.communicate(timeout=600)[0].strip()
    out.append(f"hostile milter junk: {jout}; meanwhile 1000 messages through Postfix: {got} delivered signed "
               f"{said(runs, errs)}; daemon alive={site['daemon'].proc.poll() is None} "
               f"rss={proc_status(pid, 'VmRSS')} kB")
    ok = got == 1000 and site["daemon"].proc.poll() is None

    # B. Broken netstrings to the socketmap, with a good client asking in between.
    tagged, _ = check.batv_cli("sign", alice)
    made, right, wrong = socketmap_junk(socketmap_sock, args.junk, tagged, alice)
    out.append(f"hostile socketmap junk: {made} connections of truncated, oversized and malformed netstrings; "
               f"good client answered right {right} times, wrong {wrong}; rss={proc_status(pid, 'VmRSS')} kB")
    ok = ok and wrong == 0 and right > 0 and site["daemon"].proc.poll() is None

    # C. Idle connections: under max_connections, then far over it. Meanwhile one message
    #    every 0.25 s through Postfix, each a new SMTP session (so a new milter connection).
    for n_idle in (args.idle_under, args.idle_over):
        idle = subprocess.Popen([EXAMPLES, "idle", f"unix:{milter_sock}", str(n_idle), "14"], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True, preexec_fn=raise_nofile)
        t0 = time.monotonic()
        attempts = []
        while time.monotonic() - t0 < 14:
            res, data = check.smtp(port, alice, [f"bob@{check.REMOTE}"], source=check.POSTFIX_ADDR,
                                   body=check.message(f"idle{n_idle}-{len(attempts)}", alice))
            code = data[0] if data else res[0][1]
            attempts.append((time.monotonic() - t0, code))
            time.sleep(0.25)
        rss_idle = proc_status(pid, "VmRSS")
        iout = idle.communicate(timeout=60)[0].strip().replace("\n", "; ")
        accepted = [t for t, c in attempts if c == 250]
        tempfailed = [t for t, c in attempts if 400 <= c < 500]
        other = [c for t, c in attempts if c != 250 and not 400 <= c < 500]
        got2, runs2, errs2 = mail_during(300)
        span = f", tempfailed from {tempfailed[0]:.1f} s to {tempfailed[-1]:.1f} s" if tempfailed else ""
        out.append(f"hostile idle {n_idle} connections ({iout}) for 14 s: daemon rss={rss_idle} kB; "
                   f"{len(attempts)} messages sent one by one meanwhile: {len(accepted)} accepted, "
                   f"{len(tempfailed)} tempfailed (451, the client keeps them){span}, {len(other)} other; "
                   f"then 300 with smtp-source: {got2} delivered signed {said(runs2, errs2)}")
        if n_idle == args.idle_under:
            ok = ok and not tempfailed and not other
        ok = ok and not other and got2 == 300 and site["daemon"].proc.poll() is None
    log = site["daemon"].output() + site["syslog"].text()
    out.append(f"hostile end: daemon alive={site['daemon'].proc.poll() is None} rss start={rss0} kB "
               f"peak (VmHWM)={proc_status(pid, 'VmHWM')} kB; 'panicked' in its output: {'panicked' in log}")
    ok = ok and "panicked" not in log
    for l in out:
        print(l, flush=True)
    print(f"hostile: {'OK' if ok else 'FAILED'}", flush=True)
    return 0 if ok else 1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--root", required=True)
    ap.add_argument("--work", required=True)
    ap.add_argument("mode", choices=["throughput", "load", "hostile"])
    ap.add_argument("--junk", type=int, default=20000)
    ap.add_argument("--idle-under", type=int, default=1000)
    ap.add_argument("--idle-over", type=int, default=5000)
    ap.add_argument("--messages", type=int)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--sessions", type=int)
    ap.add_argument("--reuse", action="store_true",
                    help="throughput: many messages per SMTP session (smtp-source -d), not one")
    args = ap.parse_args()
    if args.mode == "throughput":
        args.messages = args.messages or 2000
        args.sessions = args.sessions or 20
        settings = []
    elif args.mode == "hostile":
        settings = []
    else:
        args.messages = args.messages or 20000
        args.sessions = args.sessions or 200
        # Site tuning for 200 sessions at once from two addresses: enough smtpd processes, and
        # no per-client connection limit (anvil) for the outside test client.
        settings = ["default_process_limit = 400", "smtpd_client_connection_count_limit = 0",
                    "local_destination_concurrency_limit = 8"]
    site = check.bring_up(os.path.abspath(args.root), os.path.abspath(args.work), dump=(args.mode != "throughput"),
                          site_settings=settings)
    try:
        if args.mode == "load":
            rc = load(args, site)
            print(f"load: batv-milter peak memory (VmHWM) {proc_status(site['daemon'].proc.pid, 'VmHWM')} kB", flush=True)
            return rc
        return throughput(args, site) if args.mode == "throughput" else hostile(args, site)
    finally:
        site["postfix"].stop()
        site["daemon"].kill(check.signal.SIGTERM)
        site["sink"].stop()


if __name__ == "__main__":
    sys.exit(main())
