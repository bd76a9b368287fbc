"""A cross-check against a model of docs/scheme.md ("MAC schemes", "Days") written here with the standard library
only (hmac, hashlib): 10,000 random keyrings, addresses and days, signed and verified by both.

The model is deliberately naive: it recomputes everything from that page's words and shares no
code or tables with the Rust core.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import random
import string
from dataclasses import dataclass

import batv

CASES = 10_000
DAY = 86_400


@dataclass(frozen=True)
class ModelKey:
    number: int
    scheme: str  # "hmac-sha256" or "hmac-sha1"
    secret: bytes


def model_mac(key: ModelKey, kddd: str, address: bytes) -> bytes:
    """Section 3: the first three bytes of the HMAC over K DDD and the address; hmac-sha256
    lower-cases the address (ASCII only, which bytes.lower() does), hmac-sha1 takes it as is."""
    if key.scheme == "hmac-sha256":
        return hmac.new(key.secret, kddd.encode() + address.lower(), hashlib.sha256).digest()[:3]
    return hmac.new(key.secret, kddd.encode() + address, hashlib.sha1).digest()[:3]


def model_sign(key: ModelKey, lifetime: int, address: str, now: int) -> str:
    """Sections 2 and 4: prvs=KDDDSSSSSS=address, the tag inside the quotes of a quoted local
    part; DDD = (floor(now / 86400) + lifetime) mod 1000."""
    ddd = (now // DAY + lifetime) % 1000
    kddd = f"{key.number}{ddd:03d}"
    tag = f"prvs={kddd}{model_mac(key, kddd, address.encode()).hex()}="
    if address.startswith('"'):
        return '"' + tag + address[1:]
    return tag + address


def model_status(keys: dict[int, ModelKey], lifetime: int, skew: int, signed: str, now: int) -> str:
    """Sections 3, 4 and 6 for a tag in the new form: key, MAC (sha1 also with the domain, then
    the whole address lower-cased), then remaining = (DDD - today mod 1000) mod 1000 against
    lifetime + skew."""
    quoted = signed.startswith('"')
    body = signed[1:] if quoted else signed
    assert body[:5].lower() == "prvs=" and body[15] == "="
    number, ddd, mac_hex = int(body[5]), int(body[6:9]), body[9:15]
    original = ('"' if quoted else "") + body[16:]
    key = keys.get(number)
    if key is None:
        return "unknown-key"
    want = bytes.fromhex(mac_hex)
    raw = original.encode()
    candidates = [raw]
    if key.scheme == "hmac-sha1":
        at = raw.rindex(b"@")
        candidates += [raw[:at] + raw[at:].lower(), raw.lower()]
    kddd = body[5:9]
    if not any(hmac.compare_digest(model_mac(key, kddd, c), want) for c in candidates):
        return "bad-signature"
    remaining = (ddd - (now // DAY) % 1000) % 1000
    return "valid" if remaining <= lifetime + skew else "expired"


LOCAL_CHARS = string.ascii_letters + string.digits + "!#$%&'*+-/=?^_`{|}~."
UNICODE_CHARS = "éüßøçÅÉΩжñ中文"


def random_address(rng: random.Random) -> str:
    """A signable address: ASCII or UTF-8 local parts with '=' and '+', mixed case, quoted local
    parts with spaces, sub-domains; never a control character, never too long to tag."""
    pool = LOCAL_CHARS + (UNICODE_CHARS if rng.random() < 0.2 else "")
    local = "".join(rng.choice(pool) for _ in range(rng.randint(1, 40)))
    if rng.random() < 0.1:
        local = '"' + local.replace('"', "") + ' x"'
    labels = [
        "".join(rng.choice(string.ascii_letters + string.digits) for _ in range(rng.randint(1, 12)))
        for _ in range(rng.randint(1, 4))
    ]
    address = local + "@" + ".".join(labels)
    if len(address.encode()) + 16 > 254:
        return random_address(rng)
    return address


def random_now(rng: random.Random) -> int:
    """Seconds anywhere from 1900 to 2400, often right at a 1000-day wraparound or midnight."""
    choice = rng.random()
    if choice < 0.2:  # near a multiple of 1000 days
        return rng.randint(-2, 15) * 1000 * DAY + rng.randint(-400, 400) * DAY + rng.randint(0, DAY - 1)
    if choice < 0.3:  # the last and first second of a day
        return rng.randint(-25_000, 160_000) * DAY + rng.choice([-1, 0])
    return rng.randint(-2_208_988_800, 13_569_465_600)


def random_keyring(rng: random.Random) -> tuple[batv.Keyring, dict[int, ModelKey], int, int, int]:
    """A keyring of 1-3 keys in every secret encoding, and its model."""
    lifetime, skew = rng.randint(1, 365), rng.randint(0, 7)
    numbers = rng.sample(range(10), rng.randint(1, 3))
    lines, model = [f"lifetime-days {lifetime}", f"skew-days {skew}"], {}
    for n in numbers:
        scheme = rng.choice(["hmac-sha256", "hmac-sha1"])
        encoding = rng.choice(["base64", "hex", "text"])
        if encoding == "text":
            text = "".join(rng.choice(string.printable[:94] + " é") for _ in range(rng.randint(1, 40)))
            text = text.strip() or "x"
            secret, written = text.encode(), f"text:{text}"
        else:
            secret = rng.randbytes(rng.randint(16, 64))
            if encoding == "hex":
                written = f"hex:{secret.hex()}"
            else:
                written = f"base64:{base64.b64encode(secret).decode()}"
        lines.append(f"key {n} {scheme} {written}")
        model[n] = ModelKey(n, scheme, secret)
    sign_key = rng.choice(numbers)
    lines.append(f"sign-key {sign_key}")
    rng.shuffle(lines)
    keys = batv.Keyring.parse("\n".join(lines) + "\n")
    return keys, model, sign_key, lifetime, skew


def test_against_stdlib_model() -> None:
    rng = random.Random(20261126)
    outcomes: dict[str, int] = {}
    keys, model, sign_key, lifetime, skew = random_keyring(rng)
    for case in range(CASES):
        if case % 50 == 0:
            keys, model, sign_key, lifetime, skew = random_keyring(rng)
        address = random_address(rng)
        now = random_now(rng)
        signed = keys.sign(address, now)
        want = model_sign(model[sign_key], lifetime, address, now)
        assert signed == want, (case, address, now)

        # Verify some days later (or earlier: a signer whose clock ran ahead), across the
        # edges of the window.
        later = now + rng.choice(
            [0, rng.randint(-3, 3), lifetime, lifetime + skew, lifetime + skew + 1, rng.randint(-999, 999)]
        ) * DAY + rng.randint(-DAY, DAY)
        if rng.random() < 0.15:  # a flipped MAC digit
            at = signed.index("prvs=") + 9 + rng.randint(0, 5)
            digit = signed[at]
            signed = signed[:at] + rng.choice([c for c in "0123456789abcdef" if c != digit]) + signed[at + 1 :]
        elif rng.random() < 0.1:  # a key number that may not be in the keyring
            at = signed.index("prvs=") + 5
            signed = signed[:at] + str(rng.randint(0, 9)) + signed[at + 1 :]
        elif rng.random() < 0.1:  # a remote MTA that upper-cased the domain
            local, domain = signed.rsplit("@", 1)
            signed = f"{local}@{domain.upper()}"
        expected = model_status(model, lifetime, skew, signed, later)
        assert keys.status(signed, later) == expected, (case, signed, later)
        if expected == "valid":
            original = keys.verify(signed, later)
            assert keys.sign(original, now) == model_sign(model[sign_key], lifetime, original, now)
        outcomes[expected] = outcomes.get(expected, 0) + 1

    # The random mix really reached every outcome the model can give, in bulk.
    assert set(outcomes) == {"valid", "expired", "bad-signature", "unknown-key"}, outcomes
    assert all(count >= 100 for count in outcomes.values()), outcomes
