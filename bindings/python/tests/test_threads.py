"""One keyring and one policy shared by many threads: every thread gets exactly the answers a
single thread gets, and nothing blocks or crashes."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor

import batv
from conftest import DAY, NOW

THREADS = 8
PER_THREAD = 2_000


def _work(keys: batv.Keyring, policy: batv.Policy, thread: int) -> list[tuple[str, str, str, bool]]:
    results = []
    for i in range(PER_THREAD):
        address = f"user{thread}.{i}@example{i % 7}.org"
        now = NOW + (i % 40) * DAY
        signed = keys.sign(address, now)
        later = now + (i % 11) * DAY
        results.append((signed, keys.status(signed, later), batv.strip(signed), policy.check("", signed, later).accepted))
    return results


def test_threads_share_one_keyring_and_policy() -> None:
    keys = batv.Keyring.parse("key 3 hmac-sha256 text:shared between threads\nskew-days 2\n")
    policy = batv.Policy(keys, exempt=["@example0.org"])
    expected = [_work(keys, policy, t) for t in range(THREADS)]

    barrier = threading.Barrier(THREADS)

    def run(thread: int) -> list[tuple[str, str, str, bool]]:
        barrier.wait()  # start together, so the calls really overlap
        return _work(keys, policy, thread)

    with ThreadPoolExecutor(max_workers=THREADS) as pool:
        got = list(pool.map(run, range(THREADS)))
    assert got == expected

    # The answers are not trivially the same: the window was crossed (lifetime 7 + skew 2).
    statuses = {r[1] for rows in got for r in rows}
    assert statuses == {"valid", "expired"}
    assert all(r[2].startswith("user") for rows in got for r in rows)


def test_threads_verify_and_raise_concurrently() -> None:
    keys = batv.Keyring.generate()
    signed = keys.sign("user@example.com", NOW)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            for _ in range(PER_THREAD):
                assert keys.verify(signed, NOW) == "user@example.com"
                try:
                    keys.verify(signed, NOW + 30 * DAY)
                except batv.Expired:
                    pass
                else:
                    raise AssertionError("an expired tag verified")
        except BaseException as e:  # noqa: BLE001 - collected and re-raised in the main thread
            errors.append(e)

    threads = [threading.Thread(target=run) for _ in range(THREADS)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
