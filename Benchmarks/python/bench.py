"""The Python peer of mp-bench: the same workloads, flags and JSON, run through
multiprocessing.Pool (engine `pool`, the platform's default start method: fork on
Linux), concurrent.futures.ProcessPoolExecutor (engine `executor`), or sequentially
(`--workers 0`, engine `seq`). Checksums match the Swift side for the same flags.

    python3 Benchmarks/python/bench.py --workload tiny-map --workers 2 --engine pool
"""
import argparse
import concurrent.futures
import hashlib
import json
import multiprocessing
import os
import resource
import statistics
import time

MASK = (1 << 64) - 1


def seed(k):
    return ((k + 1) * 0x9E3779B97F4A7C15) & MASK


def step(x):
    x ^= (x << 13) & MASK
    x ^= x >> 7
    x ^= (x << 17) & MASK
    return x


def spin(k, n):
    x = seed(k)
    for _ in range(n):
        x ^= (x << 13) & MASK
        x ^= x >> 7
        x ^= (x << 17) & MASK
    return x


def square(x):
    return x * x


def nothing(x):
    return x


def spin_args(args):
    return spin(*args)


def imbalanced(args):
    i, base = args
    return spin(i, base * (1 + (i * 7919) % 100))


def byte_sum(b):
    return len(b) + b[0]


def pi_chunk(args):
    chunk, samples = args
    x = seed(chunk)
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
    return hits


def hash_file(path):
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).digest()


def corpus_files(folder):
    """The regular files of a folder, sorted by name, and their total size."""
    paths = [os.path.join(folder, name) for name in sorted(os.listdir(folder)) if not name.startswith(".")]
    paths = [p for p in paths if os.path.isfile(p)]
    return paths, sum(os.path.getsize(p) for p in paths)


class CPUMeter:
    """This process's CPU time (the parent's: its threads included) and its reaped
    children's (the workers', once the pool has been joined), from getrusage."""

    def __init__(self):
        self.start_self = resource.getrusage(resource.RUSAGE_SELF)
        self.start_children = resource.getrusage(resource.RUSAGE_CHILDREN)
        self.fields = {}

    def stop(self):
        s = resource.getrusage(resource.RUSAGE_SELF)
        c = resource.getrusage(resource.RUSAGE_CHILDREN)
        parent = (s.ru_utime - self.start_self.ru_utime, s.ru_stime - self.start_self.ru_stime)
        workers = (c.ru_utime - self.start_children.ru_utime, c.ru_stime - self.start_children.ru_stime)
        self.fields = {"parent_user_s": parent[0], "parent_sys_s": parent[1],
                       "workers_user_s": workers[0], "workers_sys_s": workers[1]}
        if sum(parent) + sum(workers) > 0:
            self.fields["parent_share"] = sum(parent) / (sum(parent) + sum(workers))


CPU = {}


def worker_rss_kib():
    me = os.getpid()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                stat = f.read()
            if int(stat[stat.rindex(")") + 2:].split()[1]) != me:
                continue
            with open(f"/proc/{entry}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        return int(line.split()[1])
        except (OSError, ValueError):
            continue
    return None


class Engine:
    """map / imap_unordered / apply over a Pool or a ProcessPoolExecutor."""

    def __init__(self, kind, workers):
        self.kind = kind
        if kind == "pool":
            self.pool = multiprocessing.Pool(workers)
        else:
            self.pool = concurrent.futures.ProcessPoolExecutor(workers)
        self.workers = workers

    def map(self, f, items, chunksize=None):
        if self.kind == "pool":
            return self.pool.map(f, items, chunksize)
        if chunksize is None:  # the executor has no automatic size: use Pool's rule
            chunksize = max(1, len(items) // (self.workers * 4))
        return list(self.pool.map(f, items, chunksize=chunksize))

    def unordered(self, f, items, chunksize=None):
        if self.kind == "pool":
            return self.pool.imap_unordered(f, items, chunksize or 1)
        futures = [self.pool.submit(f, x) for x in items]
        return (fut.result() for fut in concurrent.futures.as_completed(futures))

    def apply(self, f, x):
        if self.kind == "pool":
            return self.pool.apply(f, (x,))
        return self.pool.submit(f, x).result()

    def close(self):
        if self.kind == "pool":
            self.pool.close()
            self.pool.join()
        else:
            self.pool.shutdown()


def timed(args, body):
    """(seconds, checksum, rss) of body(engine or None), the engine created and warmed first."""
    if args.workers == 0:
        start = time.perf_counter()
        checksum = body(None)
        return time.perf_counter() - start, checksum, None
    meter = CPUMeter()
    engine = Engine(args.engine, args.workers)
    try:
        for _ in range(3):
            engine.map(nothing, [1, 2, 3, 4])
        rss = worker_rss_kib()
        start = time.perf_counter()
        checksum = body(engine)
        return time.perf_counter() - start, checksum, rss
    finally:
        engine.close()
        meter.stop()
        CPU.update(meter.fields)


def measure(args):
    w = args.workload
    extra = {}
    if w in ("tiny-map", "tiny-map-c1"):
        n = args.items or (1_000_000 if w == "tiny-map" else 100_000)
        items = list(range(n))
        chunk = 1 if w == "tiny-map-c1" else args.chunksize
        seconds, checksum, rss = timed(
            args, lambda e: sum(e.map(square, items, chunk)) if e else sum(x * x for x in items))
        extra["us_per_item"] = seconds / n * 1e6
    elif w == "latency":
        n = args.items or 10_000
        seconds, checksum, rss = timed(
            args, lambda e: sum(e.apply(square, i) for i in range(n)) if e else sum(i * i for i in range(n)))
        extra["us_per_roundtrip"] = seconds / n * 1e6
    elif w in ("cpu-bound", "imbalanced"):
        if w == "cpu-bound":
            n = args.items or 64
            items = [(k, args.iters) for k in range(n)]
            f = spin_args
        else:
            n = args.items or 200
            items = [(i, args.base) for i in range(n)]
            f = imbalanced
        start = time.perf_counter()
        seq_checksum = sum(f(x) for x in items)
        sequential = time.perf_counter() - start
        if w == "cpu-bound":
            body = lambda e: sum(e.map(f, items, args.chunksize)) if e else seq_checksum
        else:
            body = lambda e: sum(e.unordered(f, items, args.chunksize)) if e else seq_checksum
        seconds, checksum, rss = timed(args, body)
        extra["efficiency_vs_seq"] = sequential / (seconds * max(args.workers, 1))
        extra["seq_seconds"] = sequential
    elif w == "startup":
        # As mp-bench: start_ms until the first apply's answer, close_ms the close and join.
        n = args.trials or 20
        trials, starts, closes = [], [], []
        for _ in range(n):
            start = time.perf_counter()
            e = Engine(args.engine, max(args.workers, 1))
            e.apply(nothing, 1)
            answered = time.perf_counter()
            e.close()
            end = time.perf_counter()
            trials.append(end - start)
            starts.append(answered - start)
            closes.append(end - answered)
        seconds, checksum, rss = statistics.median(trials), 20, None
        extra["ms_per_startup"] = seconds * 1e3
        extra["start_ms"] = statistics.median(starts) * 1e3
        extra["close_ms"] = statistics.median(closes) * 1e3
    elif w == "large-args":
        n = args.items or 64
        items = [bytes((i + j) % 256 for j in range(args.size)) for i in range(n)]
        seconds, checksum, rss = timed(
            args, lambda e: sum(e.map(byte_sum, items, args.chunksize)) if e else sum(byte_sum(b) for b in items))
        extra["mb_per_s"] = n * args.size / 1e6 / seconds
    elif w == "hash-files":
        # Pool creation and close inside the timing; imap_unordered, chunksize 8.
        paths, size = corpus_files(args.corpus)
        n = len(paths)
        acc = 0
        meter = CPUMeter()
        start = time.perf_counter()
        if args.workers == 0:
            for p in paths:
                acc ^= int.from_bytes(hash_file(p), "big")
        else:
            engine = Engine(args.engine, args.workers)
            for digest in engine.unordered(hash_file, paths, args.chunksize or 8):
                acc ^= int.from_bytes(digest, "big")
            engine.close()
        seconds = time.perf_counter() - start
        meter.stop()
        CPU.update(meter.fields)
        if args.workers == 0:
            CPU.pop("parent_share", None)
        checksum, rss = None, None
        extra.update({"bytes": size, "gb_per_s": size / 1e9 / seconds, "checksum_hex": f"{acc:064x}"})
    elif w == "mapreduce-pi":
        n = args.items or 64
        items = [(c, args.samples) for c in range(n)]
        seconds, checksum, rss = timed(
            args, lambda e: sum(e.unordered(pi_chunk, items)) if e else sum(pi_chunk(x) for x in items))
        extra["hits"] = checksum
        extra["samples_per_s"] = n * args.samples / seconds
    else:
        raise SystemExit(f"unknown workload {w}")
    result = {
        "lang": "python", "engine": "seq" if args.workers == 0 else args.engine, "workload": w,
        "workers": args.workers, "items": n, "seconds": seconds, "items_per_s": n / seconds,
        "checksum": extra.pop("checksum_hex") if "checksum_hex" in extra else str(checksum & MASK),
    }
    result.update(CPU)
    if rss is not None:
        result["worker_rss_kib"] = rss
    result.update(extra)
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--workload", required=True)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--engine", default="pool", choices=["pool", "executor"])
    p.add_argument("--items", type=int)
    p.add_argument("--chunksize", type=int)
    p.add_argument("--trials", type=int, help="startup: pools started and closed (default 20)")
    p.add_argument("--iters", type=int, default=12_000_000)
    p.add_argument("--base", type=int, default=80_000)
    p.add_argument("--samples", type=int, default=1_000_000)
    p.add_argument("--size", type=int, default=1 << 20)
    p.add_argument("--corpus", help="hash-files: the folder of files to hash")
    print(json.dumps(measure(p.parse_args()), sort_keys=True))


if __name__ == "__main__":
    main()
