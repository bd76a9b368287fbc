"""The native module behind ``import batv`` (Rust, over ``batv-core``).

Every function that takes ``now`` accepts ``None`` (the system clock), an ``int`` (Unix
seconds; not ``bool``) or an aware ``datetime`` (its instant, floored to the second). A naive
``datetime`` raises ``TypeError``: it could be local time or UTC, and a guess could move the
tag's day. Addresses must be ``str``; anything else raises ``TypeError``.
"""

import os
from collections.abc import Iterable
from datetime import datetime
from typing import Final, final

__all__ = [
    "__version__",
    "BadSignature",
    "BatvError",
    "Expired",
    "Keyring",
    "KeyringError",
    "Malformed",
    "Policy",
    "UnknownKey",
    "Untagged",
    "Verdict",
    "is_tagged",
    "strip",
]

__version__: Final[str]

_Now = int | datetime | None

class BatvError(ValueError):
    """Base class of every batv error; a ValueError."""

class Untagged(BatvError):
    """The address has no prvs= tag."""

class Malformed(BatvError):
    """The address starts like a prvs= tag but is not one."""

class UnknownKey(BatvError):
    """The tag's key number is not in the keyring."""

class BadSignature(BatvError):
    """The tag's signature does not match: it was not made with this keyring."""

class Expired(BatvError):
    """The tag's signature matches, but its day is outside the keyring's window."""

class KeyringError(BatvError):
    """A keyring could not be loaded or parsed; .path and .line say where (None when unknown)."""

    path: str | None
    """The keyring file, or None when the keyring came from text."""
    line: int | None
    """The 1-based line of the problem, or None when it is not on one line."""

@final
class Keyring:
    """An immutable set of up to ten BATV keys with their lifetime and skew.

    Build one with ``load``, ``parse`` or ``generate`` and share it between threads. The
    ``sign_key`` signs; every key verifies. ``repr()`` shows key numbers and schemes, never a
    secret.
    """

    @staticmethod
    def generate() -> Keyring:
        """A new keyring with one random hmac-sha256 key, number 1 (save it with to_file_text)."""

    @staticmethod
    def load(path: str | os.PathLike[str]) -> Keyring:
        """Loads a keyring file.

        Raises KeyringError (with .path and .line) when the file cannot be read, is not a
        regular file or not a valid keyring, or other users could read or write it by its mode,
        owner or ACL (the message gives the chmod, chown or setfacl that fixes it).
        """

    @staticmethod
    def parse(text: str) -> Keyring:
        """Parses keyring text; no file, so no permission check. Raises KeyringError."""

    def sign(self, address: str, now: _Now = None) -> str:
        """Signs an envelope sender: ``user@example.com`` -> ``prvs=KDDDSSSSSS=user@example.com``.

        The null sender (``""`` or ``"<>"``) and addresses already tagged come back unchanged.
        A quoted local part keeps the tag inside the quotes. An address without ``@``, with an
        empty local part or domain, with a control character, with ``<`` or ``>`` (pass
        ``user@example.com``, not ``<user@example.com>``), with a space or other whitespace
        outside a quoted local part, or too long to tag (254 octets signed) raises BatvError:
        send it untagged.
        """

    def verify(self, address: str, now: _Now = None) -> str:
        """Verifies a tagged address and returns the original address.

        Raises Untagged, Malformed, UnknownKey, BadSignature or Expired (all BatvError).
        """

    def status(self, address: str, now: _Now = None) -> str:
        """The outcome word, without raising for a bad tag.

        One of ``valid``, ``untagged``, ``malformed``, ``unknown-key``, ``bad-signature``,
        ``expired``.
        """

    def rotated(self) -> Keyring:
        """This keyring with a new random key (the signing key's scheme) under a free key
        number (the first after the signing key, 9 wrapping to 0), which becomes the signing key;
        the old keys keep verifying. Keep the old key for lifetime_days + skew_days days, then
        drop it from the file. Raises KeyringError when every number holds a key that may still
        verify.
        """

    def to_file_text(self) -> str:
        """The keyring in file form, SECRETS INCLUDED: write it only to a file of mode 0600."""

    @property
    def lifetime_days(self) -> int:
        """Days a new tag lives (1-365, default 7)."""

    @property
    def skew_days(self) -> int:
        """Days of signer clock skew tolerated beyond the lifetime (0-7, default 1)."""

    @property
    def sign_key(self) -> int:
        """The number (0-9) of the key that signs."""

    @property
    def key_numbers(self) -> tuple[int, ...]:
        """The numbers of all keys, in ascending order; every one verifies."""

@final
class Verdict:
    """The decision for one recipient of one SMTP transaction; immutable, hashable, comparable."""

    @property
    def accepted(self) -> bool:
        """Whether to accept the recipient (always True in monitor mode)."""

    @property
    def reason(self) -> str:
        """``valid``, ``exempt``, ``not-bounce``, or the outcome word that rejects:
        ``untagged``, ``malformed``, ``unknown-key``, ``bad-signature``, ``expired``.
        """

    @property
    def deliver_to(self) -> str | None:
        """The address to deliver to (the original address for a tagged recipient); None when
        rejected.
        """

    @property
    def smtp_reply(self) -> str | None:
        """The SMTP reply for a reject (``550 5.7.1 ...``); None when accepted."""

    @property
    def monitored(self) -> bool:
        """True when monitor mode accepted what it would otherwise have rejected."""

    def __eq__(self, value: object, /) -> bool: ...
    def __hash__(self) -> int: ...

@final
class Policy:
    """The bounce policy: reject bounces to addresses whose tag does not verify.

    ``exempt`` lists untagged recipients that may receive bounces: ``user@domain``,
    ``@domain`` or ``user@`` (ASCII case-insensitive). A sender is a bounce when it is empty
    (``""`` or ``"<>"``) or its local part is one of ``bounce_local_parts``. ``monitor=True``
    accepts everything but keeps the verdict's reason, for a trial period. Bad patterns raise
    BatvError; wrong types raise TypeError.
    """

    def __new__(
        cls,
        keyring: Keyring,
        exempt: Iterable[str] = (),
        # A list, not a tuple, only because inspect cannot read a one-element tuple from a
        # native text signature (it drops the comma); any iterable of str is accepted.
        bounce_local_parts: Iterable[str] = ["mailer-daemon"],
        monitor: bool = False,
    ) -> Policy: ...
    def check(self, sender: str, recipient: str, now: _Now = None) -> Verdict:
        """Decides one recipient.

        A tagged recipient is accepted when its tag is valid (deliver to the original
        address) and rejected otherwise, whoever the sender. An untagged recipient is
        accepted when exempt or when the sender is not a bounce, and rejected (``untagged``)
        when a bounce is sent to it.
        """

    @property
    def keyring(self) -> Keyring:
        """The keyring this policy verifies against."""

    @property
    def exempt(self) -> tuple[str, ...]:
        """The exemption patterns, as given."""

    @property
    def bounce_local_parts(self) -> tuple[str, ...]:
        """The sender local parts that count as bounces besides the null sender, as given."""

    @property
    def monitor(self) -> bool:
        """Whether monitor mode (never reject) is on."""

def strip(address: str) -> str:
    """The original address of a tagged address, every tag layer removed, without verifying
    anything (for allow-lists and logs); the address itself when untagged or malformed.
    """

def is_tagged(address: str) -> bool:
    """Whether the address carries a well-formed prvs= tag (either form), verified or not."""
