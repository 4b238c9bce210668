"""The `pi` example in Python's multiprocessing.Pool, with the same generator, flags and
JSON as the Swift example, for side-by-side runs:

    python3 Benchmarks/python/pi_pool.py --chunks 64 --samples 100000 --json
"""
import argparse
import json
import multiprocessing
import os
import socket
import time

MASK = (1 << 64) - 1


def count_hits(args):
    chunk, samples = args
    x = ((chunk + 1) * 0x9E3779B97F4A7C15) & MASK
    hits = 0
    limit = 1 << 62
    for _ in range(samples):
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
        u = x >> 33
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
        v = x >> 33
        if u * u + v * v < limit:
            hits += 1
    node = os.environ.get("SLURMD_NODENAME") or socket.gethostname().split(".")[0]
    return hits, node


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--chunks", type=int, default=64)
    parser.add_argument("--samples", type=int, default=1_000_000)
    parser.add_argument("--workers", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    a = parser.parse_args()
    workers = a.workers or len(os.sched_getaffinity(0))
    start = time.perf_counter()
    with multiprocessing.Pool(workers) as pool:
        results = pool.map(count_hits, [(c, a.samples) for c in range(a.chunks)])
    hits = sum(h for h, _ in results)
    nodes = sorted({n for _, n in results})
    total = a.chunks * a.samples
    pi = 4 * hits / total
    seconds = time.perf_counter() - start
    if a.json:
        print(json.dumps({"hits": hits, "samples": total, "pi": pi, "workers": workers, "nodes": nodes, "seconds": seconds}, separators=(",", ":")))
    else:
        print(f"pi ≈ {pi} ({hits} hits of {total} samples, {workers} workers on {', '.join(nodes)}, {seconds} s)")


if __name__ == "__main__":
    main()
