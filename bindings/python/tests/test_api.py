"""Every call of `import batv`, every exception, and the forms of `now`."""

from __future__ import annotations

import enum
import importlib.metadata
import inspect
import os
import pickle
import time
from collections.abc import Callable
from datetime import date, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

import batv
import batv._batv
from conftest import DAY, NOW

SIGNED = "prvs=1790c1c5ba=user@example.com"  # hmac-sha1, key 1, 'secret', at NOW
SECRET_B64 = "q83vEjRWeJCrze8SNFZ4kKvN7xI0VniQq83vEjRWeJA="
TWO_KEYS = f"""# two keys
lifetime-days 7
skew-days 1
sign-key 1
key 1 hmac-sha256 base64:{SECRET_B64}
key 0 hmac-sha1 text:secret shared with exim
"""


# --- the module ---------------------------------------------------------------------------


def test_public_names_are_the_native_objects() -> None:
    for name in batv.__all__:
        assert getattr(batv, name) is getattr(batv._batv, name), name
    assert set(batv.__all__) == set(batv._batv.__all__)


def test_version_is_the_package_version() -> None:
    assert batv.__version__ == importlib.metadata.version("batv")
    assert batv.__version__.count(".") == 2


def test_exception_hierarchy() -> None:
    assert issubclass(batv.BatvError, ValueError)
    for exc in (batv.Untagged, batv.Malformed, batv.UnknownKey, batv.BadSignature, batv.Expired, batv.KeyringError):
        assert issubclass(exc, batv.BatvError)
        assert exc.__module__ == "batv"
        assert exc.__doc__
    assert batv.KeyringError.path is None and batv.KeyringError.line is None
    # Python code can raise them too, with the attributes defaulting to None.
    err = batv.KeyringError("made in Python")
    assert err.path is None and err.line is None


def test_classes_are_frozen_and_have_no_public_constructor(sha1_keys: batv.Keyring) -> None:
    with pytest.raises(AttributeError):
        sha1_keys.lifetime_days = 3  # type: ignore[misc]
    with pytest.raises(AttributeError):
        sha1_keys.anything = 3  # type: ignore[attr-defined]
    with pytest.raises(TypeError):
        batv.Keyring()
    with pytest.raises(TypeError):
        batv.Verdict()
    verdict = batv.Policy(sha1_keys).check("", "user@example.com", NOW)
    with pytest.raises(AttributeError):
        verdict.accepted = True  # type: ignore[misc]
    policy = batv.Policy(sha1_keys)
    with pytest.raises(AttributeError):
        policy.monitor = True  # type: ignore[misc]
    for cls in (batv.Keyring, batv.Policy, batv.Verdict):
        assert cls.__module__ == "batv"


def test_signatures_are_inspectable() -> None:
    assert str(inspect.signature(batv.Keyring.sign)) == "(self, /, address, now=None)"
    assert str(inspect.signature(batv.Policy.check)) == "(self, /, sender, recipient, now=None)"
    assert str(inspect.signature(batv.strip)) == "(address)"


# --- Keyring construction --------------------------------------------------------------------


def test_parse(sha1_keys: batv.Keyring) -> None:
    keys = batv.Keyring.parse(TWO_KEYS)
    assert keys.key_numbers == (0, 1)
    assert keys.sign_key == 1
    assert keys.lifetime_days == 7 and keys.skew_days == 1
    assert keys.sign("user@example.com", NOW).startswith("prvs=1790")
    # key 0 verifies what Exim-compatible signers made with it
    exim = batv.Keyring.parse("key 0 hmac-sha1 text:secret shared with exim\n")
    assert keys.verify(exim.sign("user@example.com", NOW), NOW) == "user@example.com"
    custom = batv.Keyring.parse("lifetime-days 30\nskew-days 0\nkey 4 hmac-sha1 text:x\n")
    assert (custom.lifetime_days, custom.skew_days, custom.sign_key, custom.key_numbers) == (30, 0, 4, (4,))
    assert sha1_keys.sign("user@example.com", NOW) == SIGNED


@pytest.mark.parametrize(
    ("text", "line", "words"),
    [
        ("", 1, "no key line"),
        ("key 1 hmac-md5 text:x\n", 1, "unknown scheme: a word of 8 characters with punctuation"),
        ("key 1 key text:x\n", 1, "unknown scheme 'key'"),
        ("# c\n\nkey 1 hmac-sha1 hex:0011\n", 3, "at least 16"),
        ("key 1 hmac-sha1 base64:!!notbase64!!\n", 1, "not valid base64"),
        ("key 1 hmac-sha1 text:a\nkey 1 hmac-sha1 text:b\n", 2, "key 1 is defined twice"),
        ("key 1 hmac-sha1 text:a\nkey 2 hmac-sha1 text:b\n", 2, "no sign-key"),
        ("key 1 hmac-sha1 text:a\nsign-key 5\n", 2, "sign-key 5"),
        ("lifetime-days 0\nkey 1 hmac-sha1 text:a\n", 1, "lifetime-days"),
        ("skew-days 8\nkey 1 hmac-sha1 text:a\n", 1, "skew-days"),
        ("key 11 hmac-sha1 text:a\n", 1, "one digit"),
        ("frobnicate 1\nkey 1 hmac-sha1 text:a\n", 1, "unknown directive: a word of 10 letters"),
        ("hmac-sha1 text:a\nkey 1 hmac-sha1 text:a\n", 1, "unknown directive 'hmac-sha1'"),
    ],
)
def test_parse_errors_name_the_line(text: str, line: int, words: str) -> None:
    with pytest.raises(batv.KeyringError) as info:
        batv.Keyring.parse(text)
    err = info.value
    assert isinstance(err, ValueError)
    assert err.path is None
    assert err.line == line
    assert f"line {line}" in str(err)
    assert words in str(err)


def test_parse_errors_never_show_the_secret() -> None:
    secret = "c2VjcmV0LXRoYXQtbXVzdC1ub3QtbGVhaw"  # base64 without padding: invalid
    with pytest.raises(batv.KeyringError) as info:
        batv.Keyring.parse(f"key 1 hmac-sha256 base64:{secret}\n")
    assert secret not in str(info.value) and secret not in repr(info.value)
    # a secret pasted on a line of its own is not echoed either
    with pytest.raises(batv.KeyringError) as info:
        batv.Keyring.parse(f"base64:{secret}\nkey 1 hmac-sha1 text:a\n")
    assert secret not in str(info.value)


def _write_keyring(path: Path, text: str, mode: int) -> Path:
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def test_load(tmp_path: Path) -> None:
    path = _write_keyring(tmp_path / "batv.keys", TWO_KEYS, 0o600)
    for arg in (path, str(path)):
        keys = batv.Keyring.load(arg)
        assert keys.key_numbers == (0, 1)
        assert keys.sign("user@example.com", NOW) == batv.Keyring.parse(TWO_KEYS).sign("user@example.com", NOW)
    # group read is allowed (an MTA's group may read a root-owned file)
    batv.Keyring.load(_write_keyring(tmp_path / "group.keys", TWO_KEYS, 0o640))


def test_load_refuses_a_file_others_can_read(tmp_path: Path) -> None:
    path = _write_keyring(tmp_path / "open.keys", TWO_KEYS, 0o644)
    with pytest.raises(batv.KeyringError) as info:
        batv.Keyring.load(path)
    assert info.value.path == str(path)
    assert info.value.line is None
    assert f"chmod 600 {path}" in str(info.value)
    assert SECRET_B64 not in str(info.value)


def test_load_errors_carry_path_and_line(tmp_path: Path) -> None:
    path = _write_keyring(tmp_path / "bad.keys", "# ok\nkey 1 hmac-sha1 hex:00\n", 0o600)
    with pytest.raises(batv.KeyringError) as info:
        batv.Keyring.load(path)
    assert info.value.path == str(path) and info.value.line == 2
    assert str(path) in str(info.value) and "line 2" in str(info.value)

    missing = tmp_path / "missing.keys"
    with pytest.raises(batv.KeyringError) as info:
        batv.Keyring.load(missing)
    assert info.value.path == str(missing) and info.value.line is None
    assert "cannot read" in str(info.value)

    with pytest.raises(batv.KeyringError) as info:
        batv.Keyring.load(tmp_path)
    assert "not a regular file" in str(info.value)


def test_generate_rotate_and_file_text() -> None:
    a, b = batv.Keyring.generate(), batv.Keyring.generate()
    assert a.key_numbers == (1,) and a.sign_key == 1
    assert a.lifetime_days == 7 and a.skew_days == 1
    assert a.sign("user@example.com", NOW) != b.sign("user@example.com", NOW)
    text = a.to_file_text()
    assert "key 1 hmac-sha256 base64:" in text
    again = batv.Keyring.parse(text)
    assert again.sign("user@example.com", NOW) == a.sign("user@example.com", NOW)

    rotated = a.rotated()
    assert rotated.sign_key == 2 and rotated.key_numbers == (1, 2)
    old = a.sign("user@example.com", NOW)
    assert rotated.verify(old, NOW) == "user@example.com"
    assert rotated.sign("user@example.com", NOW).startswith("prvs=2")
    assert a.key_numbers == (1,)  # the original is unchanged


def test_repr_never_shows_a_secret() -> None:
    keys = batv.Keyring.parse(TWO_KEYS)
    text = repr(keys)
    assert text == "<batv.Keyring keys=[0 hmac-sha1, 1 hmac-sha256] sign_key=1 lifetime_days=7 skew_days=1>"
    assert SECRET_B64 not in text and "exim" not in text
    policy = batv.Policy(keys)
    assert SECRET_B64 not in repr(policy) and "secret" not in repr(policy)
    generated = batv.Keyring.generate()
    secret = generated.to_file_text().split("base64:")[1].strip()
    assert secret not in repr(generated) and secret not in str(generated)


def test_keyring_cannot_be_pickled() -> None:
    # Pickling would copy the secrets somewhere else; it is refused.
    with pytest.raises(TypeError):
        pickle.dumps(batv.Keyring.parse(TWO_KEYS))


# --- sign / verify / status ------------------------------------------------------------------


def test_sign(sha1_keys: batv.Keyring, sha256_keys: batv.Keyring) -> None:
    assert sha1_keys.sign("user@example.com", NOW) == SIGNED
    assert sha256_keys.sign("user@example.com", NOW) == "prvs=1790ac4fd6=user@example.com"
    assert sha256_keys.sign("User@Example.COM", NOW) == "prvs=1790ac4fd6=User@Example.COM"
    assert sha1_keys.sign('"john doe"@example.com', NOW).startswith('"prvs=1790')
    assert sha1_keys.sign("list=owner@lists.example.org", NOW).endswith("=list=owner@lists.example.org")
    # deterministic for an address, key and day; another day gives another tag
    assert sha1_keys.sign("user@example.com", NOW + 3600) == SIGNED
    assert sha1_keys.sign("user@example.com", NOW + DAY).startswith("prvs=1791")


def test_sign_leaves_bounces_and_tagged_addresses_alone(sha1_keys: batv.Keyring) -> None:
    assert sha1_keys.sign("", NOW) == ""
    assert sha1_keys.sign("<>", NOW) == "<>"  # the null sender as SMTP writes it
    tagged = "prvs=9123abcdef=other@example.com"  # someone else's tag, never doubled
    assert sha1_keys.sign(tagged, NOW) is tagged
    assert sha1_keys.sign(SIGNED, NOW) is SIGNED


@pytest.mark.parametrize(
    ("address", "words"),
    [
        ("user", "no '@'"),
        ("@example.com", "local part"),
        ("user@", "domain"),
        ("us\ner@example.com", "control character"),
        ("us\x00er@example.com", "control character"),
        ("a" * 230 + "@example.com", "too long"),
        # the SMTP path with its angle brackets: sign the address inside them
        ("<user@example.com>", "give the address inside <...>"),
        ("<user@example.com", "give the address inside <...>"),
        # a space (or other whitespace) outside a quoted local part
        (" user@example.com", "whitespace outside a quoted local part"),
        ("user@example.com ", "whitespace outside a quoted local part"),
        ("us er@example.com", "whitespace outside a quoted local part"),
        ("user@exa mple.com", "whitespace outside a quoted local part"),
        ("user\u00a0@example.com", "whitespace outside a quoted local part"),
    ],
)
def test_sign_refuses_what_is_not_an_address(sha1_keys: batv.Keyring, address: str, words: str) -> None:
    with pytest.raises(batv.BatvError) as info:
        sha1_keys.sign(address, NOW)
    assert type(info.value) is batv.BatvError
    assert str(info.value).startswith("cannot sign")
    assert words in str(info.value)
    assert len(str(info.value)) < 200  # a long address is not copied into the message


def test_verify_and_status(sha1_keys: batv.Keyring) -> None:
    assert sha1_keys.verify(SIGNED, NOW) == "user@example.com"
    assert sha1_keys.status(SIGNED, NOW) == "valid"
    # the old form of Exim before 4.68 and upper-case prefix and hex
    assert sha1_keys.verify("prvs=user/1790c1c5ba@example.com", NOW) == "user@example.com"
    assert sha1_keys.verify("PRVS=1790C1C5BA=user@example.com", NOW) == "user@example.com"
    quoted = sha1_keys.sign('"john doe"@example.com', NOW)
    assert sha1_keys.verify(quoted, NOW) == '"john doe"@example.com'
    # inside quotes a space and angle brackets belong to the local part
    for address in ('" "@example.com', '"<john doe>"@example.com'):
        assert sha1_keys.verify(sha1_keys.sign(address, NOW), NOW) == address
    assert sha1_keys.verify(sha1_keys.sign("é@exämple.org", NOW), NOW) == "é@exämple.org"


OUTCOMES = [
    ("user@example.com", batv.Untagged, "untagged", "no prvs= tag"),
    ("prvs=x790c1c5ba=user@example.com", batv.Malformed, "malformed", "key number"),
    ("prvs=1790c1c5ba=", batv.Malformed, "malformed", "no local@domain"),
    ("prvs=1790c1c5bz=user@example.com", batv.Malformed, "malformed", "hexadecimal"),
    ("prvs=2790c1c5ba=user@example.com", batv.UnknownKey, "unknown-key", "key 2 is not in the keyring"),
    ("prvs=1790c1c5bb=user@example.com", batv.BadSignature, "bad-signature", "not made with this keyring"),
    ("prvs=1790c1c5ba=other@example.com", batv.BadSignature, "bad-signature", "not made with this keyring"),
]


@pytest.mark.parametrize(("address", "exc", "word", "words"), OUTCOMES)
def test_each_outcome_raises_its_exception(
    sha1_keys: batv.Keyring, address: str, exc: type[batv.BatvError], word: str, words: str
) -> None:
    with pytest.raises(exc) as info:
        sha1_keys.verify(address, NOW)
    assert type(info.value) is exc
    message = str(info.value)
    assert repr(address) in message and f": {word}: " in message and words in message
    assert "secret" not in message
    assert sha1_keys.status(address, NOW) == word


def test_expired(sha1_keys: batv.Keyring) -> None:
    # Signed at NOW with lifetime 7 and skew 1: valid through the 7th day after, then expired.
    end_of_day_7 = (NOW // DAY + 7) * DAY + DAY - 1
    assert sha1_keys.verify(SIGNED, end_of_day_7) == "user@example.com"
    with pytest.raises(batv.Expired) as info:
        sha1_keys.verify(SIGNED, end_of_day_7 + 1)
    assert "expired: the tag's day is outside the window" in str(info.value)
    assert sha1_keys.status(SIGNED, end_of_day_7 + 1) == "expired"
    # a signer whose clock runs one day ahead is tolerated (skew), two days are not
    ahead_1 = sha1_keys.sign("user@example.com", NOW + DAY)
    ahead_2 = sha1_keys.sign("user@example.com", NOW + 2 * DAY)
    assert sha1_keys.status(ahead_1, NOW) == "valid"
    assert sha1_keys.status(ahead_2, NOW) == "expired"


def test_status_words_are_interned(sha1_keys: batv.Keyring) -> None:
    assert sha1_keys.status(SIGNED, NOW) is sha1_keys.status(SIGNED, NOW)


# --- strip / is_tagged -----------------------------------------------------------------------


def test_strip_and_is_tagged() -> None:
    assert batv.strip(SIGNED) == "user@example.com"
    assert batv.strip("prvs=1790c1c5bb=user@example.com") == "user@example.com"  # not verified
    assert batv.strip("prvs=user/1790c1c5ba@example.com") == "user@example.com"
    assert batv.strip('"prvs=0790e9e584=john doe"@example.com') == '"john doe"@example.com'
    assert batv.strip("prvs=1790c1c5ba=prvs=2790c1c5ba=user@example.com") == "user@example.com"
    plain = "user@example.com"
    assert batv.strip(plain) is plain
    assert batv.strip("prvs=garbage") == "prvs=garbage"
    assert batv.strip("") == ""
    assert batv.is_tagged(SIGNED) and batv.is_tagged("prvs=user/1790c1c5ba@example.com")
    assert not batv.is_tagged(plain) and not batv.is_tagged("prvs=garbage") and not batv.is_tagged("")


# --- now ---------------------------------------------------------------------------------------


def test_now_defaults_to_the_clock(sha1_keys: batv.Keyring) -> None:
    for _ in range(3):  # retry if the day changed between the two clock reads
        before = int(time.time())
        signed = sha1_keys.sign("user@example.com")
        after = int(time.time())
        if before // DAY == after // DAY:
            break
    assert signed == sha1_keys.sign("user@example.com", before)
    assert sha1_keys.verify(signed) == "user@example.com"
    assert sha1_keys.status(signed) == "valid"
    assert sha1_keys.status(SIGNED, None) == sha1_keys.status(SIGNED)
    assert sha1_keys.sign("user@example.com", now=None) == signed


def test_now_as_int_and_aware_datetime(sha1_keys: batv.Keyring) -> None:
    utc = datetime.fromtimestamp(NOW, timezone.utc)
    assert sha1_keys.sign("user@example.com", utc) == SIGNED
    assert sha1_keys.verify(SIGNED, now=utc) == "user@example.com"
    assert batv.Policy(sha1_keys).check("", SIGNED, utc).accepted
    # another zone: the same instant, whatever the local date
    eastern = utc.astimezone(timezone(timedelta(hours=-5)))
    assert sha1_keys.sign("user@example.com", eastern) == SIGNED
    # the day changes at UTC midnight, not local midnight
    midnight = datetime(2026, 11, 27, tzinfo=timezone.utc)
    late_in_utc_minus_1 = (midnight - timedelta(microseconds=1)).astimezone(timezone(timedelta(hours=-1)))

    def stamp(now: int | datetime) -> str:
        return sha1_keys.sign("user@example.com", now)[5:9]

    assert stamp(late_in_utc_minus_1) == "1790"
    assert stamp(midnight) == "1791"
    assert stamp(int(midnight.timestamp()) - 1) == "1790"
    # before 1970 floors, like the int form
    old = datetime(1969, 12, 31, 23, 59, 59, 999_999, tzinfo=timezone.utc)
    assert stamp(old) == stamp(-1) == "1006"
    # an int subclass is an int
    class Seconds(enum.IntEnum):
        SIGNED_AT = NOW

    assert sha1_keys.sign("user@example.com", Seconds.SIGNED_AT) == SIGNED


@pytest.mark.parametrize(
    ("now", "exc", "words"),
    [
        (True, TypeError, "not bool"),
        (1.5e9, TypeError, "not float"),
        ("1795700000", TypeError, "not str"),
        (date(2026, 11, 26), TypeError, "not date"),
        (datetime(2026, 11, 26, 12), TypeError, "naive datetime"),
        (2**63, OverflowError, "64-bit"),
        (-(2**63) - 1, OverflowError, "64-bit"),
    ],
)
def test_bad_now(sha1_keys: batv.Keyring, now: object, exc: type[Exception], words: str) -> None:
    calls: list[Callable[[], object]] = [
        lambda: sha1_keys.sign("user@example.com", now),  # type: ignore[arg-type]
        lambda: sha1_keys.verify(SIGNED, now),  # type: ignore[arg-type]
        lambda: sha1_keys.status(SIGNED, now=now),  # type: ignore[arg-type]
        lambda: batv.Policy(sha1_keys).check("", SIGNED, now),  # type: ignore[arg-type]
    ]
    for call in calls:
        with pytest.raises(exc) as info:
            call()
        assert words in str(info.value)


def test_extreme_int_now_is_fine(sha1_keys: batv.Keyring) -> None:
    for now in (-(2**63), -1, 0, 2**63 - 1):
        signed = sha1_keys.sign("user@example.com", now)
        assert sha1_keys.verify(signed, now) == "user@example.com"


# --- wrong types: always TypeError, never a PanicException -----------------------------------


def test_non_string_arguments_raise_type_error(sha1_keys: batv.Keyring) -> None:
    policy = batv.Policy(sha1_keys)
    calls: dict[str, list[Callable[[Any], object]]] = {
        "address": [
            lambda v: sha1_keys.sign(v),
            lambda v: sha1_keys.verify(v),
            lambda v: sha1_keys.status(v),
            lambda v: batv.strip(v),
            lambda v: batv.is_tagged(v),
        ],
        "text": [lambda v: batv.Keyring.parse(v)],
        "sender": [lambda v: policy.check(v, "user@example.com")],
        "recipient": [lambda v: policy.check("", v)],
    }
    for name, fns in calls.items():
        for fn in fns:
            for value, type_name in ((None, "NoneType"), (42, "int"), (b"user@example.com", "bytes"), (["a@b"], "list")):
                with pytest.raises(TypeError) as info:
                    fn(value)
                assert str(info.value).startswith(f"{name} must be a str, not {type_name}"), str(info.value)
    with pytest.raises(TypeError, match="decode it first"):
        sha1_keys.sign(b"user@example.com")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="path must be a str or os.PathLike, not int"):
        batv.Keyring.load(3)  # type: ignore[arg-type]
    with pytest.raises(TypeError):
        sha1_keys.sign()  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        sha1_keys.sign("a@b", NOW, 3)  # type: ignore[call-arg]
    with pytest.raises(TypeError):
        sha1_keys.sign("a@b", when=NOW)  # type: ignore[call-arg]


def test_strings_that_are_not_unicode_text(sha1_keys: batv.Keyring) -> None:
    # A lone surrogate cannot be UTF-8: Python's own UnicodeEncodeError (a ValueError).
    with pytest.raises(UnicodeEncodeError):
        sha1_keys.sign("us\udcffer@example.com", NOW)
    with pytest.raises(UnicodeEncodeError):
        batv.strip("\ud800")


def test_str_subclass_is_accepted(sha1_keys: batv.Keyring) -> None:
    class Address(str):
        pass

    assert sha1_keys.sign(Address("user@example.com"), NOW) == SIGNED
    assert sha1_keys.verify(Address(SIGNED), NOW) == "user@example.com"


# --- Policy and Verdict ------------------------------------------------------------------------


def test_policy_defaults(sha1_keys: batv.Keyring) -> None:
    policy = batv.Policy(sha1_keys)
    assert policy.keyring is sha1_keys
    assert policy.exempt == ()
    assert policy.bounce_local_parts == ("mailer-daemon",)
    assert policy.monitor is False
    assert repr(policy).startswith("batv.Policy(<batv.Keyring keys=[1 hmac-sha1]")


def test_policy_check_every_reason(sha1_keys: batv.Keyring) -> None:
    policy = batv.Policy(sha1_keys, exempt=["dmarc@example.com", "@lists.example.org", "postmaster@"])
    cases = [
        # sender, recipient, accepted, reason, deliver_to
        ("", SIGNED, True, "valid", "user@example.com"),
        ("someone@example.net", SIGNED, True, "valid", "user@example.com"),
        ("", "DMARC@Example.com", True, "exempt", "DMARC@Example.com"),
        ("<>", "anything@lists.example.org", True, "exempt", "anything@lists.example.org"),
        ("", "postmaster@example.com", True, "exempt", "postmaster@example.com"),
        ("someone@example.net", "user@example.com", True, "not-bounce", "user@example.com"),
        ("", "user@example.com", False, "untagged", None),
        ("<>", "user@example.com", False, "untagged", None),
        ("MAILER-DAEMON@mx.example.net", "user@example.com", False, "untagged", None),
        ("", "prvs=x790c1c5ba=user@example.com", False, "malformed", None),
        ("", "prvs=2790c1c5ba=user@example.com", False, "unknown-key", None),
        ("someone@example.net", "prvs=1790c1c5bb=user@example.com", False, "bad-signature", None),
    ]
    for sender, recipient, accepted, reason, deliver_to in cases:
        v = policy.check(sender, recipient, NOW)
        assert (v.accepted, v.reason, v.deliver_to, v.monitored) == (accepted, reason, deliver_to, False), (
            sender,
            recipient,
        )
        if accepted:
            assert v.smtp_reply is None
        else:
            assert v.smtp_reply is not None and v.smtp_reply.startswith("550 5.7.1 ")
    expired = policy.check("", SIGNED, NOW + 30 * DAY)
    assert (expired.accepted, expired.reason) == (False, "expired")
    assert expired.smtp_reply == "550 5.7.1 Bounce rejected: BATV tag has expired"


def test_policy_bounce_local_parts_and_monitor(sha1_keys: batv.Keyring) -> None:
    policy = batv.Policy(sha1_keys, bounce_local_parts=("mailer-daemon", "bounces"), monitor=False)
    assert not policy.check("bounces@example.net", "user@example.com", NOW).accepted
    assert policy.check("postmaster@example.net", "user@example.com", NOW).accepted
    only_null = batv.Policy(sha1_keys, bounce_local_parts=[])
    assert only_null.check("mailer-daemon@example.net", "user@example.com", NOW).reason == "not-bounce"
    assert only_null.check("", "user@example.com", NOW).reason == "untagged"

    monitor = batv.Policy(sha1_keys, monitor=True)
    assert monitor.monitor is True
    v = monitor.check("", "prvs=1790c1c5bb=user@example.com", NOW)
    assert (v.accepted, v.reason, v.monitored, v.smtp_reply) == (True, "bad-signature", True, None)
    assert v.deliver_to == "user@example.com"
    ok = monitor.check("", SIGNED, NOW)
    assert (ok.accepted, ok.reason, ok.monitored) == (True, "valid", False)


def test_policy_accepts_any_iterable(sha1_keys: batv.Keyring) -> None:
    policy = batv.Policy(sha1_keys, exempt=(p for p in ["a@example.com"]), bounce_local_parts={"bounces"})
    assert policy.exempt == ("a@example.com",)
    assert policy.bounce_local_parts == ("bounces",)


def test_policy_refuses_bad_configuration(sha1_keys: batv.Keyring) -> None:
    with pytest.raises(batv.BatvError, match="exempt pattern 'nobody': an exemption must be"):
        batv.Policy(sha1_keys, exempt=["nobody"])
    with pytest.raises(batv.BatvError, match="exempt pattern '@'"):
        batv.Policy(sha1_keys, exempt=["@"])
    with pytest.raises(batv.BatvError, match="bounce_local_parts: a bounce local part"):
        batv.Policy(sha1_keys, bounce_local_parts=["a@b"])
    with pytest.raises(batv.BatvError, match="bounce_local_parts"):
        batv.Policy(sha1_keys, bounce_local_parts=[""])
    with pytest.raises(TypeError, match=r"exempt must be an iterable of str, not a single str \(write \('a@b',\)\)"):
        batv.Policy(sha1_keys, exempt="a@b")  # a str is an Iterable[str] to a type checker
    with pytest.raises(TypeError, match="each item of exempt must be a str, not int"):
        batv.Policy(sha1_keys, exempt=[1])  # type: ignore[list-item]
    with pytest.raises(TypeError, match="exempt must be an iterable of str, not int"):
        batv.Policy(sha1_keys, exempt=1)  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="keyring must be a batv.Keyring, not str"):
        batv.Policy("batv.keys")  # type: ignore[arg-type]
    with pytest.raises(TypeError, match="monitor must be a bool, not int"):
        batv.Policy(sha1_keys, monitor=1)  # type: ignore[arg-type]


def test_policy_refuses_patterns_that_could_match_nothing(sha1_keys: batv.Keyring) -> None:
    # A glob would be a literal address that matches nothing: refused, naming what works.
    with pytest.raises(ValueError, match=r"exempt pattern '\*@lists.example.com': .*write '@lists.example.com'"):
        batv.Policy(sha1_keys, exempt=["dmarc@example.com", "*@lists.example.com"])
    with pytest.raises(batv.BatvError, match=r"exempt pattern 'bounces@\*': .*write 'bounces@'"):
        batv.Policy(sha1_keys, exempt=["bounces@*"])
    # So is a pattern longer than any address; the message quotes only its start.
    with pytest.raises(batv.BatvError, match="at most 254 octets") as info:
        batv.Policy(sha1_keys, exempt=["a" * (1 << 20) + "@example.com"])
    assert len(str(info.value)) < 400
    # 20,000 exemptions, each of which works.
    many = [f"user{i}@example.com" for i in range(20_000)]
    policy = batv.Policy(sha1_keys, exempt=many)
    assert all(policy.check("", f"USER{i}@example.com").reason == "exempt" for i in range(20_000))
    assert policy.check("", "user20000@example.com").reason == "untagged"


def test_verdict_value_semantics(sha1_keys: batv.Keyring) -> None:
    policy = batv.Policy(sha1_keys)
    a = policy.check("", "user@example.com", NOW)
    b = policy.check("", "user@example.com", NOW)
    c = policy.check("", SIGNED, NOW)
    assert a == b and hash(a) == hash(b)
    assert a != c
    assert len({a, b, c}) == 2
    assert repr(a) == (
        "Verdict(accepted=False, reason='untagged', deliver_to=None, smtp_reply='550 5.7.1 Bounce "
        "rejected: this address did not send the original message (no BATV tag)', monitored=False)"
    )
    assert repr(c) == (
        "Verdict(accepted=True, reason='valid', deliver_to='user@example.com', smtp_reply=None, monitored=False)"
    )
