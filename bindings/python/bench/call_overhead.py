"""Time the calls of the installed `batv` module, and the fastest standard-library Python
equivalents of Keyring.sign, to see what a call costs beyond the work in batv-core.

    python bindings/python/bench/call_overhead.py

Prints the best of 9 runs per call in nanoseconds (timeit, including a lambda call of about
25-30 ns, shown as `empty lambda`), and which ABI the module was built for.
"""

from __future__ import annotations

import hashlib
import hmac
import sysconfig
import time
import timeit

import batv
import batv._batv

NOW = 1_795_700_000
SECRET = b"secret"
KEYS = batv.Keyring.parse("key 1 hmac-sha256 text:secret\n")
ADDRESS = "user01@example.com"
SIGNED = KEYS.sign(ADDRESS)


def stdlib_digest(address: str, now: int | None = None) -> str:
    """hmac.digest, the one-shot C path: the fastest stdlib form we found."""
    if now is None:
        now = int(time.time())
    kddd = f"1{(now // 86_400 + 7) % 1000:03d}"
    mac = hmac.digest(SECRET, (kddd + address.lower()).encode(), "sha256")[:3].hex()
    return f"prvs={kddd}{mac}={address}"


KEYED = hmac.new(SECRET, digestmod=hashlib.sha256)


def stdlib_copy(address: str, now: int | None = None) -> str:
    """A keyed HMAC object copied per call (no re-keying)."""
    if now is None:
        now = int(time.time())
    kddd = f"1{(now // 86_400 + 7) % 1000:03d}"
    h = KEYED.copy()
    h.update((kddd + address.lower()).encode())
    return f"prvs={kddd}{h.digest()[:3].hex()}={address}"


def main() -> None:
    assert stdlib_digest(ADDRESS, NOW) == stdlib_copy(ADDRESS, NOW) == KEYS.sign(ADDRESS, NOW)
    print(f"module: {batv._batv.__file__.rsplit('/', 1)[-1]} (Python {sysconfig.get_python_version()})")
    cases = [
        ("empty lambda", lambda: None),
        ("batv.is_tagged(untagged)", lambda: batv.is_tagged(ADDRESS)),
        ("Keyring.status(untagged, now)", lambda: KEYS.status(ADDRESS, NOW)),
        ("Keyring.sign(address, now)", lambda: KEYS.sign(ADDRESS, NOW)),
        ("Keyring.sign(address)", lambda: KEYS.sign(ADDRESS)),
        ("Keyring.verify(signed)", lambda: KEYS.verify(SIGNED)),
        ("stdlib hmac.digest sign", lambda: stdlib_digest(ADDRESS)),
        ("stdlib keyed copy sign", lambda: stdlib_copy(ADDRESS)),
    ]
    best = {}
    for name, fn in cases:
        n = 200_000
        best[name] = min(timeit.repeat(fn, number=n, repeat=9)) / n * 1e9
        print(f"{name:32s} {best[name]:7.0f} ns")
    fastest = min(best["stdlib hmac.digest sign"], best["stdlib keyed copy sign"])
    print(f"fastest stdlib sign / Keyring.sign(address): {fastest / best['Keyring.sign(address)']:.1f}x")


if __name__ == "__main__":
    main()
