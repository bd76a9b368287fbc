"""BATV (``prvs=``) bounce address tags: sign envelope senders, verify bounces, stop backscatter.

Everything here comes from the native module ``batv._batv`` (Rust, over ``batv-core``); see its
stub ``_batv.pyi`` for the documentation of each name.
"""

from ._batv import (
    BadSignature,
    BatvError,
    Expired,
    Keyring,
    KeyringError,
    Malformed,
    Policy,
    UnknownKey,
    Untagged,
    Verdict,
    __version__,
    is_tagged,
    strip,
)

__all__ = [
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
    "__version__",
    "is_tagged",
    "strip",
]
