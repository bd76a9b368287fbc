#!/usr/bin/env python3
"""Walks the rotation runbook of docs/operations.md with a master copy of a keyring and three
hosts' copies, running the page's commands as they stand (under faketime, on the days a real
rotation would), and copying the master to the hosts one at a time.

After every copy to every host it checks what the page promises: an address signed on any host
verifies on every host, and so does every tag signed earlier that has not expired. A last
check does what the page warns against (--rotate, copied to one host) and must see a tag fail,
so the checks above can fail.

Usage: check.py /path/to/batv
"""

import os
import re
import shutil
import subprocess
import sys
import tempfile

BATV = sys.argv[1]
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
DOC = os.path.join(ROOT, "docs", "operations.md")
DAY = 86400
T0 = 1796126400  # 2026-12-01 12:00 UTC
HOSTS = ["mx1", "mx2", "mx3"]
PROBE = "probe@example.com"
LIFETIME = 7

failures = []
checks = 0


def check(name, ok, detail=""):
    global checks
    checks += 1
    if not ok:
        failures.append(name)
        print(f"FAIL: {name}" + (f"\n      {detail}" if detail else ""), flush=True)
    return ok


def blocks():
    """The commands of each `<!-- fleet-test: NAME -->` block of the page."""
    text = open(DOC, encoding="utf-8").read()
    found = dict(re.findall(r"<!-- fleet-test: (\S+) -->\n```sh\n(.*?)```", text, re.S))
    for name in ("add", "promote", "prune"):
        if name not in found:
            sys.exit(f"FAIL: docs/operations.md has no fleet-test block {name}")
    return found


def batv(keys, *args, now=None):
    cmd = [BATV, "--keys", keys] + (["--now", str(now)] if now is not None else []) + list(args)
    return subprocess.run(cmd, capture_output=True, text=True)


def doc_run(block, master, now):
    """A block of the page, verbatim, in a shell with BATV_KEYS naming the master copy, at
    `now` (faketime), with the built batv first on the PATH."""
    env = dict(os.environ, BATV_KEYS=master, TZ="UTC",
               PATH=os.path.dirname(BATV) + ":" + os.environ["PATH"])
    stamp = subprocess.run(["date", "-u", "-d", f"@{now}", "+%Y-%m-%d %H:%M:%S"],
                           capture_output=True, text=True, check=True).stdout.strip()
    r = subprocess.run(["faketime", stamp, "bash", "-euo", "pipefail", "-c", block],
                       capture_output=True, text=True, env=env)
    print(f"+ {block.strip()}  (at {stamp} UTC)\n  {r.stderr.strip()}", flush=True)
    return r


class Fleet:
    def __init__(self, work):
        self.master = os.path.join(work, "master", "batv.keys")
        self.hosts = {h: os.path.join(work, h, "batv.keys") for h in HOSTS}
        for path in [self.master, *self.hosts.values()]:
            os.makedirs(os.path.dirname(path))
        self.tags = []  # (tag, day signed, host)

    def copy_to(self, host):
        tmp = self.hosts[host] + ".new"
        shutil.copy2(self.master, tmp)  # mode kept (0600)
        os.rename(tmp, self.hosts[host])

    def sweep(self, now, when):
        """Every host signs; every fresh or unexpired tag verifies on every host."""
        for h, keys in self.hosts.items():
            r = batv(keys, "sign", PROBE, now=now)
            if check(f"{when}: {h} signs", r.returncode == 0 and r.stdout.startswith("prvs="), r.stderr):
                self.tags.append((r.stdout.strip(), now // DAY, h))
        for tag, day, signer in self.tags:
            if now // DAY > day + LIFETIME:
                continue  # expired by now everywhere; nobody may expect it to verify
            for h, keys in self.hosts.items():
                r = batv(keys, "verify", tag, now=now)
                check(f"{when}: a tag {signer} signed on day {day - T0 // DAY} verifies on {h}",
                      r.stdout.strip() == PROBE, f"{tag}: {r.stdout.strip()}")

    def distribute(self, now, step):
        for h in HOSTS:
            self.copy_to(h)
            self.sweep(now, f"{step}, copied to {h}")


def main():
    doc = blocks()
    work = tempfile.mkdtemp(prefix="batv-fleet-")
    try:
        fleet = Fleet(work)
        r = batv(fleet.master, "keygen", now=T0)
        check("the master copy is made with batv keygen", r.returncode == 0, r.stderr)
        for h in HOSTS:
            fleet.copy_to(h)
        fleet.sweep(T0, "start")

        r = doc_run(doc["add"], fleet.master, T0)
        check("step 1 adds key 2, which does not sign yet",
              r.returncode == 0 and "added key 2" in r.stderr, r.stderr)
        fleet.distribute(T0, "step 1 (add)")

        r = doc_run(doc["promote"], fleet.master, T0 + DAY)
        check("step 3 promotes key 2", r.returncode == 0 and "key 2 signs from now on" in r.stderr, r.stderr)
        fleet.distribute(T0 + DAY, "step 3 (promote)")
        with open(fleet.master) as f:
            check("the master copy records the day key 1 stopped signing",
                  "\nretired 1 2026-12-02\n" in f.read())

        before = open(fleet.master, "rb").read()
        r = doc_run(doc["prune"], fleet.master, T0 + 5 * DAY)
        check("step 4 within the window changes nothing",
              r.returncode == 0 and "nothing changed" in r.stderr and open(fleet.master, "rb").read() == before,
              r.stderr)
        fleet.sweep(T0 + 5 * DAY, "day 5")

        r = doc_run(doc["prune"], fleet.master, T0 + 10 * DAY)
        check("step 4 after the window removes key 1", r.returncode == 0 and "removed key 1" in r.stderr, r.stderr)
        fleet.distribute(T0 + 10 * DAY, "step 4 (prune)")
        with open(fleet.master) as f:
            text = f.read()
        check("the pruned copy holds key 2 alone", re.findall(r"^key (\d)", text, re.M) == ["2"])

        # The control: what the page warns against, --rotate copied to one host, must fail.
        r = batv(fleet.master, "keygen", "--rotate", now=T0 + 11 * DAY)
        fleet.copy_to("mx1")
        tag = batv(fleet.hosts["mx1"], "sign", PROBE, now=T0 + 11 * DAY).stdout.strip()
        other = batv(fleet.hosts["mx2"], "verify", tag, now=T0 + 11 * DAY).stdout.strip()
        check("the control: after --rotate reached one host only, its tag fails on another",
              tag.startswith("prvs=3") and other == "unknown-key", f"{tag}: {other}")
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print(f"fleet: {checks} checks, {len(failures)} failed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
