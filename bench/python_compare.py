#!/usr/bin/env python3
"""`batv.Keyring.sign` against the fastest pure-standard-library Python doing the same job, in
one process (target: at least 8x).

    python bench/python_compare.py [ROUNDS]      (with `import batv` installed)

The same job: `sign(address, now)` -> `prvs=KDDDSSSSSS=address` with an `hmac-sha256` key
(the default scheme: HMAC-SHA256 over `K DDD lowercase(address)`). The standard-library
candidates are in stdlib_prvs.py: a keyed `hmac` object copied per call, `hmac.digest` (the
one-shot C path) and `hmac.new` per call. Every candidate's output is first checked equal to
batv's. Rounds interleave the candidates (a rotating order); each round times N calls per
candidate with timeit; the medians over rounds are compared, and the fastest stdlib candidate
is the yardstick. Last lines, for bench/compare:
`RESULT name=<candidate> median_ns=<ns>` and `RESULT ratio=<fastest stdlib / batv> best=<name>`
"""

from __future__ import annotations

import os
import statistics
import sys
import timeit

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import batv  # noqa: E402
import stdlib_prvs  # noqa: E402

NOW = 1_795_700_000
SECRET = "secret"
ADDRESS = "user01@example.com"
N = 20_000


def main() -> None:
    rounds = int(sys.argv[1]) if len(sys.argv) > 1 else 15
    keys = batv.Keyring.parse(f"key 1 hmac-sha256 text:{SECRET}\n")
    stdlib = stdlib_prvs.make_signers("hmac-sha256", SECRET.encode(), 1)
    for address in (ADDRESS, "Frank.Thomas@Example.COM", "a.b+tag@sub.example.org"):
        want = keys.sign(address, now=NOW)
        for name, sign in stdlib.items():
            got = sign(address, NOW)
            assert got == want, f"{name}: {got!r} != batv's {want!r}"

    sign = keys.sign
    candidates = {"batv.Keyring.sign": lambda: sign(ADDRESS, NOW)}
    for name, f in stdlib.items():
        candidates[f"stdlib {name}"] = lambda f=f: f(ADDRESS, NOW)
    names = list(candidates)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds + 1):
        for j in range(len(names)):
            name = names[(j + r) % len(names)]
            t = timeit.timeit(candidates[name], number=N) / N * 1e9
            if r > 0:  # the first round warms up
                times[name].append(t)
    med = {n: statistics.median(v) for n, v in times.items()}
    best = min((n for n in names if n.startswith("stdlib")), key=med.__getitem__)
    print(f"{rounds} interleaved rounds of {N} calls each, {sys.version.split()[0]}, batv {batv.__version__}")
    for n in names:
        print(f"  {n:<24} {med[n]:>9.1f} ns/call  ({med[n] / med['batv.Keyring.sign']:.1f} x batv)")
    for n in names:
        print(f"RESULT name={n.replace(' ', '_')} median_ns={med[n]:.1f}")
    print(f"RESULT ratio={med[best] / med['batv.Keyring.sign']:.2f} best={best.replace(' ', '_')}")


if __name__ == "__main__":
    main()
