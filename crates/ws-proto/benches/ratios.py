#!/usr/bin/env python3
"""Prints ours/theirs throughput ratios from the last `codec` bench run.

Reads criterion's estimates (target/criterion/<group>/<function>/<size>/
<baseline>/estimates.json, median time per iteration) and, for each pair
below, prints theirs_time / ours_time, which equals ours_throughput /
theirs_throughput: above 1.0 means ours is faster.

On a busy machine one run is noisy. Save several runs as baselines and pass
their names: each benchmark then counts with its best (lowest) median over
those runs, which filters out samples slowed by other processes.

Usage (from the repository root):

    cargo bench -p duplex-ws-proto --bench codec
    python3 crates/ws-proto/benches/ratios.py            # last run ("new")

    for i in 1 2 3; do
        cargo bench -p duplex-ws-proto --bench codec -- --save-baseline r$i
    done
    python3 crates/ws-proto/benches/ratios.py r1 r2 r3   # best of three

The target directory is ./target unless CARGO_TARGET_DIR is set.
"""

import json
import os
import sys

# group: [(ours, theirs), ...]
PAIRS = {
    "decode_binary": [("ours", "tungstenite"), ("ours_sans_io", "tungstenite")],
    "decode_text": [("ours", "tungstenite"), ("ours_sans_io", "tungstenite")],
    "encode_binary": [
        ("ours", "tungstenite"),
        ("ours_shared_frame", "tungstenite"),
        ("ours_send_shared_prebuilt", "tungstenite"),
        ("ours_encode_frame", "tungstenite_frame_format"),
    ],
    "mask": [("ours", "naive_reference")],
    "utf8": [("ours", "std_from_utf8"), ("ours_chunked_1400", "std_from_utf8")],
}


def median_ns(root, group, function, size, baselines):
    """The lowest median over `baselines`, or None if no run has one."""
    best = None
    for baseline in baselines:
        path = os.path.join(root, group, function, size, baseline, "estimates.json")
        try:
            with open(path) as f:
                median = json.load(f)["median"]["point_estimate"]
        except (OSError, KeyError, ValueError):
            continue
        best = median if best is None else min(best, median)
    return best


def main():
    baselines = sys.argv[1:] or ["new"]
    root = os.path.join(os.environ.get("CARGO_TARGET_DIR", "target"), "criterion")
    if not os.path.isdir(root):
        sys.exit(f"no criterion results under {root}; run the bench first")
    print(f"{'group':<14} {'ours':<26} {'vs':<25} {'size':>8} {'ratio':>7}")
    for group, pairs in PAIRS.items():
        ours_dir = os.path.join(root, group)
        if not os.path.isdir(ours_dir):
            continue
        for ours, theirs in pairs:
            sizes_dir = os.path.join(ours_dir, ours)
            if not os.path.isdir(sizes_dir):
                continue
            sizes = sorted(
                (s for s in os.listdir(sizes_dir) if s.isdigit()), key=int
            )
            for size in sizes:
                a = median_ns(root, group, ours, size, baselines)
                b = median_ns(root, group, theirs, size, baselines)
                if a and b:
                    print(f"{group:<14} {ours:<26} {theirs:<25} {size:>8} {b / a:>6.2f}x")


if __name__ == "__main__":
    main()
