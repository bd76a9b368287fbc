"""The test vectors of tests/vectors/ through the Python API: batv-scheme.tsv (both schemes) and
exim-prvs.tsv (made by a real Exim 4.96 ${prvs}), signed, verified, stripped and tampered with.
"""

from __future__ import annotations

from datetime import date, datetime, time, timedelta, timezone

import batv
from conftest import DAY, vector_rows


def _tampered(signed: str) -> str:
    """The signed address with its first hex digit changed."""
    at = signed.index("prvs=") + 9
    return signed[:at] + ("1" if signed[at] == "0" else "0") + signed[at + 1 :]


def _check_row(keys: batv.Keyring, address: str, now: int | datetime, want: str) -> None:
    assert keys.sign(address, now) == want
    assert keys.sign(address, now=now) == want
    assert keys.verify(want, now) == address
    assert keys.status(want, now) == "valid"
    assert batv.strip(want) == address
    assert batv.is_tagged(want)
    assert not batv.is_tagged(address)
    assert keys.status(_tampered(want), now) == "bad-signature"


def test_batv_scheme_vectors() -> None:
    rows = vector_rows("batv-scheme.tsv")
    assert len(rows) == 6
    for algorithm, secret, key, address, now, lifetime, signed in rows:
        keys = batv.Keyring.parse(f"lifetime-days {lifetime}\nkey {key} {algorithm} text:{secret}\n")
        assert keys.lifetime_days == int(lifetime)
        _check_row(keys, address, int(now), signed)
        # The same instant as an aware datetime gives the same tag.
        _check_row(keys, address, datetime.fromtimestamp(int(now), timezone.utc), signed)


def test_exim_prvs_vectors() -> None:
    rows = vector_rows("exim-prvs.tsv")
    assert len(rows) == 5
    for day, secret, key, address, signed in rows:
        keys = batv.Keyring.parse(f"key {key} hmac-sha1 text:{secret}\n")
        noon = datetime.combine(date.fromisoformat(day), time(12), tzinfo=timezone.utc)
        _check_row(keys, address, noon, signed)
        seconds = int(noon.timestamp())
        _check_row(keys, address, seconds, signed)
        # Exim's tag expires 7 days after signing: valid through that whole day, then not.
        last = noon + timedelta(days=7, hours=11, minutes=59, seconds=59)
        assert keys.status(signed, last) == "valid"
        assert keys.status(signed, last + timedelta(seconds=1)) == "expired"
        assert keys.status(signed, seconds + 7 * DAY + 43_200) == "expired"
        # A remote MTA that smashes case: hmac-sha1 retries with the domain, then the whole
        # address, lower-cased, which recovers an address that was signed in lower case.
        tag, addr = signed[:16], signed[16:]
        if addr == addr.lower():
            local, domain = addr.rsplit("@", 1)
            assert keys.verify(f"{tag}{local}@{domain.upper()}", noon) == f"{local}@{domain.upper()}"
            assert keys.status(tag + addr.upper(), noon) == "valid"
        else:
            # Signed in mixed case: the lower-cased form is a different address.
            assert keys.status(tag + addr.lower(), noon) == "bad-signature"
        # Upper-case hex, which Exim itself rejects, is accepted.
        assert keys.verify(signed[:5] + signed[5:15].upper() + signed[15:], noon) == address
