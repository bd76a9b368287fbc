#!/usr/bin/env bash
# Step: every Rust test in the workspace (core, CLI, C ABI crate), doctests included, and
# clippy with warnings as errors. The pyo3 crate links against libpython, so the python step
# builds and tests it instead (clippy only checks it, which needs no libpython).
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BATV_ROOT"
# setfacl and getfacl: batv-cli/tests/keyring_write.rs checks that a rotation keeps an ACL.
command -v setfacl >/dev/null && command -v getfacl >/dev/null || need_apt acl
cargo build --workspace --exclude batv-python --all-targets --locked
cargo test --workspace --exclude batv-python --locked
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --locked -- -D warnings
else
  skip "cargo clippy is not installed"
fi
