#!/usr/bin/env bash
# Step: every Rust test in the workspace (core, CLI, C ABI crate), doctests included, and
# clippy with warnings as errors.
set -euo pipefail
source "$(dirname "$0")/lib.sh"
cd "$BATV_ROOT"
cargo build --workspace --all-targets --locked
cargo test --workspace --locked
if cargo clippy --version >/dev/null 2>&1; then
  cargo clippy --workspace --all-targets --locked -- -D warnings
else
  skip "cargo clippy is not installed"
fi
