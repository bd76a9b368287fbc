#!/usr/bin/env python3
"""Prints the median of every criterion benchmark under a criterion output directory.

Usage: bench/criterion_medians.py [TARGET/criterion]   ->  lines "full_id<TAB>median_ns"
Reads each `<bench>/new/benchmark.json` (for the id) and `new/estimates.json` (for the median
point estimate, in nanoseconds), as written by the last `cargo bench` run.
"""
import json
import os
import sys

root = sys.argv[1] if len(sys.argv) > 1 else "target/criterion"
rows = []
for dirpath, dirnames, filenames in os.walk(root):
    if os.path.basename(dirpath) != "new" or "benchmark.json" not in filenames:
        continue
    with open(os.path.join(dirpath, "benchmark.json")) as f:
        full_id = json.load(f)["full_id"]
    with open(os.path.join(dirpath, "estimates.json")) as f:
        median = json.load(f)["median"]["point_estimate"]
    rows.append((full_id, median))
for full_id, median in sorted(rows):
    print(f"{full_id}\t{median:.3f}")
