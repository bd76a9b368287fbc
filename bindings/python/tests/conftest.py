"""Shared fixtures: where the repository and its test vectors are, and small keyrings."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

import batv

# bindings/python/tests/conftest.py -> the repository root
REPO_ROOT = Path(__file__).resolve().parents[3]

# A fixed instant: 2026-11-26 12:53:20 UTC (day 20783, so a 7-day tag has DDD 790).
NOW = 1_795_700_000
DAY = 86_400


def vectors_dir() -> Path:
    """The repository's test vectors, tests/vectors/."""
    return REPO_ROOT / "tests" / "vectors"


def vector_rows(name: str) -> list[list[str]]:
    """The rows of a vector file; a missing or empty file fails (vectors are never skipped)."""
    path = vectors_dir() / name
    if not path.is_file():
        pytest.fail(f"cannot read {path}")
    rows = [
        line.split("\t")
        for line in path.read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert rows, f"{path} has no rows"
    return rows


@pytest.fixture
def sha1_keys() -> batv.Keyring:
    """One hmac-sha1 key, number 1, secret 'secret': byte-identical with Exim's ${prvs}."""
    return batv.Keyring.parse("key 1 hmac-sha1 text:secret\n")


@pytest.fixture
def sha256_keys() -> batv.Keyring:
    """One hmac-sha256 key, number 1, secret 'secret'."""
    return batv.Keyring.parse("key 1 hmac-sha256 text:secret\n")
