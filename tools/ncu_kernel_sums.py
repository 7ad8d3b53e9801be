#!/usr/bin/env python3
"""Sum Nsight Compute's per-launch kernel durations by kernel name (docs/08 §8.8).

    ncu --clock-control none --metrics gpu__time_duration.sum --csv \\
        ./build/gpu/bench_lm --device cuda --steps 1 --warmup 1 --decode-batches "" > launches.csv
    python3 tools/ncu_kernel_sums.py launches.csv --top 20

Prints the total kernel time and launch count, then one line per kernel name, largest first: total ms,
share of the total, launches, mean µs per launch. ncu runs each kernel from cold caches, so small
kernels read longer than they run inside a step; compare shares and counts, not absolute times.
"""
import argparse
import collections
import csv
import sys

MICROSECONDS = {"ns": 1e-3, "nsecond": 1e-3, "us": 1.0, "usecond": 1.0, "ms": 1e3, "msecond": 1e3,
                "s": 1e6, "second": 1e6}


def kernel_name(raw):
    """'void ssm::k<float>(args)' -> 'ssm::k<float>' (templates kept, arguments and 'void ' dropped)."""
    name = raw[len("void "):] if raw.startswith("void ") else raw
    return name.split("(")[0]


def kernel_sums(lines):
    """{name: [total µs, launches]} from ncu's CSV lines (its own log lines, not quoted, are skipped)."""
    rows = [line for line in lines if line.startswith('"')]
    sums = collections.defaultdict(lambda: [0.0, 0])
    for row in csv.DictReader(rows):
        if row.get("Metric Name") != "gpu__time_duration.sum":
            continue
        unit = row.get("Metric Unit", "")
        if unit not in MICROSECONDS:
            raise ValueError(f"unknown duration unit {unit!r} for {row.get('Kernel Name')!r}")
        entry = sums[kernel_name(row["Kernel Name"])]
        entry[0] += float(row["Metric Value"].replace(",", "")) * MICROSECONDS[unit]
        entry[1] += 1
    return sums


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("csv", help="ncu --csv output with the gpu__time_duration.sum metric")
    parser.add_argument("--top", type=int, default=30, help="kernel names to list (default 30)")
    args = parser.parse_args()
    try:
        with open(args.csv, errors="replace") as f:
            sums = kernel_sums(f)
    except (OSError, ValueError) as e:
        sys.exit(f"ncu_kernel_sums: {e}")
    if not sums:
        sys.exit(f"ncu_kernel_sums: no gpu__time_duration.sum rows in {args.csv} (was ncu run with --csv "
                 "--metrics gpu__time_duration.sum?)")
    total = sum(us for us, _ in sums.values())
    launches = sum(n for _, n in sums.values())
    print(f"total {total / 1e3:.3f} ms in {launches} launches")
    for name, (us, n) in sorted(sums.items(), key=lambda item: -item[1][0])[:args.top]:
        print(f"{us / 1e3:10.3f} ms {100 * us / total:5.1f}% {n:7d}x {us / n:9.1f} us  {name[:110]}")


if __name__ == "__main__":
    main()
