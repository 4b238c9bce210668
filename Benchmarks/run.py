#!/usr/bin/env python3
"""Runs every benchmark workload on every engine, Swift and Python, interleaved, and
prints medians and the ratios the targets are stated in.

    python3 Benchmarks/run.py            # or scripts/bench
    python3 Benchmarks/run.py --reps 3 --quick
    python3 Benchmarks/run.py --nodes    # a pool across two Slurm nodes vs one node
    python3 Benchmarks/run.py --workloads hash-files,tiny-map --reps 7
    python3 Benchmarks/run.py --scaling  # tiny-map and pool start at 2, 16, 64, 200 workers

Builds mp-bench in release mode (and a --static-swift-stdlib copy for the startup
figure), compiles the C ping-pong floor, then runs each configuration --reps times,
interleaving configurations so that machine noise spreads evenly. Swift and Python use
different sizes (each timed region lasts at least ~200 ms); compare per-item figures.

hash-files, the real job, hashes a corpus generated here (seeded, in a temporary folder,
removed at the end; --corpus keeps one): --corpus-files files of log-uniform sizes from
1 KiB to 4 MiB (3,000 files: about 1.5 GB), fewer when the disk or the memory (the page
cache must hold it) is short, with a note saying so.
"""
import argparse
import json
import math
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SWIFT = os.path.join(ROOT, ".build/release/mp-bench")
SWIFT_STATIC = os.path.join(ROOT, ".build-static/release/mp-bench")
PYTHON = [sys.executable, os.path.join(ROOT, "Benchmarks/python/bench.py")]
PINGPONG = os.path.join(ROOT, ".build/pingpong")

# workload -> (swift flags, python flags, the figure compared, higher is better)
WORKLOADS = {
    "tiny-map": (["--items", "30000000"], ["--items", "2000000"], "us_per_item", False),
    "tiny-map-c1": (["--items", "30000"], ["--items", "20000"], "us_per_item", False),
    "latency": (["--items", "5000"], ["--items", "3000"], "us_per_roundtrip", False),
    "cpu-bound": ([], ["--iters", "60000"], "efficiency_vs_seq", True),
    "imbalanced": ([], ["--base", "400"], "efficiency_vs_seq", True),
    "startup": ([], [], "ms_per_startup", False),
    "large-args": (["--items", "256"], ["--items", "256"], "mb_per_s", True),
    "mapreduce-pi": (["--samples", "2000000"], ["--samples", "20000"], "samples_per_s", True),
    # The corpus folder is added at run time (--corpus); 2 workers or more only.
    "hash-files": ([], [], "gb_per_s", True),
}

# The parent's share of the CPU time (mp-bench and bench.py print it; see PoolReport.parentShare).
CPU_SHARE = "parent_share"

CORPUS_SEED = 20
CORPUS_SMALLEST = 1 << 10
CORPUS_LARGEST = 4 << 20


def corpus_expected_bytes(files):
    """The mean of a log-uniform size from CORPUS_SMALLEST to CORPUS_LARGEST, times files."""
    mean = (CORPUS_LARGEST - CORPUS_SMALLEST) / math.log(CORPUS_LARGEST / CORPUS_SMALLEST)
    return int(files * mean)


def corpus_size_that_fits(folder, files):
    """`files`, or fewer (with a note on stderr) so that the corpus fits on the disk with
    2 GB to spare and in half the available memory (the page cache must hold it)."""
    free_disk = shutil.disk_usage(folder).free - (2 << 30)
    available = None
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                available = int(line.split()[1]) * 1024
    limit = min(free_disk, available // 2 if available else free_disk)
    wanted = corpus_expected_bytes(files)
    if wanted <= limit:
        return files
    fitting = max(100, int(files * limit / wanted))
    print(f"note: {files} files (~{wanted / 1e9:.2f} GB) do not fit (free disk {free_disk / 1e9:.1f} GB beyond 2 GB, "
          f"available memory {available / 1e9 if available else 0:.1f} GB): the corpus has {fitting} files instead",
          file=sys.stderr)
    return fitting


def make_corpus(folder, files):
    """Writes `files` files of log-uniform sizes (seeded) into `folder`, unless a corpus of
    the same seed and count is there already. Each file is a slice of one 8 MiB random
    block, after its own 8-byte number (so no two are alike). Returns the total bytes."""
    stamp = os.path.join(folder, ".corpus")
    if os.path.exists(stamp) and open(stamp).read() == f"{CORPUS_SEED} {files}":
        return sum(os.path.getsize(os.path.join(folder, n)) for n in os.listdir(folder) if not n.startswith("."))
    for name in os.listdir(folder):
        if not name.startswith("."):
            os.unlink(os.path.join(folder, name))
    rng = random.Random(CORPUS_SEED)
    block = rng.randbytes(8 << 20)
    low, high = math.log(CORPUS_SMALLEST), math.log(CORPUS_LARGEST)
    total = 0
    for i in range(files):
        size = max(8, int(math.exp(rng.uniform(low, high))))
        offset = rng.randrange(len(block) - size + 1)
        with open(os.path.join(folder, f"f{i:06d}"), "wb") as f:
            f.write(i.to_bytes(8, "little") + block[offset:offset + size - 8])
        total += size
    with open(stamp, "w") as f:
        f.write(f"{CORPUS_SEED} {files}")
    return total


def warm_corpus(folder):
    """Reads every file once (untimed), so that the timed runs find them in the page cache."""
    buffer = bytearray(1 << 20)
    view = memoryview(buffer)
    for name in os.listdir(folder):
        with open(os.path.join(folder, name), "rb", buffering=0) as f:
            while f.readinto(view):
                pass


def run(command):
    out = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=ROOT)
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def median_of(results, key, field):
    """The median of `field` over the runs of one configuration, or None."""
    values = [r[field] for r in results.get(key, []) if field in r]
    return statistics.median(values) if values else None


def configurations(workers_list, quick, workloads):
    configs = []
    for workload, (swift_flags, python_flags, _, _) in WORKLOADS.items():
        if workload not in workloads:
            continue
        for workers in workers_list:
            if workload == "hash-files" and workers < 2:
                continue
            w = ["--workload", workload, "--workers", str(workers)]
            configs.append(("swift", "process", workers, workload, [SWIFT] + w + swift_flags))
            configs.append(("swift", "threads", workers, workload, [SWIFT] + w + ["--engine", "threads"] + swift_flags))
            if workload == "hash-files":  # the thread loop, Python's Pool (chunksize 8), nothing else
                configs.append(("swift", "taskgroup", workers, workload,
                                [SWIFT] + w + ["--engine", "taskgroup"] + swift_flags))
                configs.append(("python", "pool", workers, workload, PYTHON + w + ["--engine", "pool"] + python_flags))
                continue
            if workload in ("cpu-bound", "imbalanced"):
                configs.append(("swift", "taskgroup", workers, workload,
                                [SWIFT] + w + ["--engine", "taskgroup"] + swift_flags))
            if workload == "startup" or (workload == "tiny-map-c1" and workers == 2):
                # startup and an idle worker's memory for a --static-swift-stdlib build too
                configs.append(("swift-static", "process", workers, workload, [SWIFT_STATIC] + w + swift_flags))
            configs.append(("python", "pool", workers, workload, PYTHON + w + ["--engine", "pool"] + python_flags))
            if not quick:
                configs.append(("python", "executor", workers, workload, PYTHON + w + ["--engine", "executor"] + python_flags))
    return configs


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--reps", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="skip ProcessPoolExecutor")
    parser.add_argument("--no-build", action="store_true")
    parser.add_argument("--json", help="also write every run as JSON lines to this file")
    parser.add_argument("--workloads", help="only these workloads (comma-separated), e.g. hash-files,tiny-map")
    parser.add_argument("--corpus-files", type=int, default=3000,
                        help="hash-files: files in the generated corpus (default 3000, about 1.5 GB)")
    parser.add_argument("--corpus", help="hash-files: generate the corpus in this folder and keep it (reused when "
                                         "it holds the same corpus); default: a temporary folder, removed at the end")
    parser.add_argument("--nodes", action="store_true",
                        help="multi-node mode: the same workloads over TCP across two Slurm nodes, against local "
                             "socket pairs on one node (needs a running Slurm: scripts/slurm/start)")
    parser.add_argument("--journal", action="store_true",
                        help="journal mode: tiny-map, cpu-bound and large-args with the journal off and on "
                             "(interleaved), the journal's bytes per item, and the time to resume a finished map")
    parser.add_argument("--timeline", action="store_true",
                        help="timeline mode: tiny-map and tiny-map-c1 with the timeline off and on (interleaved), "
                             "the trace's and the picture's sizes, and the time to write them at close")
    parser.add_argument("--scaling", action="store_true",
                        help="scaling mode: tiny-map per item and the pool's start and close at --scaling-workers "
                             "workers, the static build against Python's Pool, interleaved")
    parser.add_argument("--scaling-workers", default="2,16,64,200",
                        help="scaling mode: the pool sizes (comma-separated; default 2,16,64,200)")
    parser.add_argument("--scaling-binary", default=SWIFT_STATIC,
                        help="scaling mode: the mp-bench to measure (default the static build; e.g. a build of a "
                             "changed library, with --no-build)")
    args = parser.parse_args()
    if args.scaling:
        return scaling_mode(args)
    if args.nodes:
        return nodes_mode(args)
    if args.journal:
        return journal_mode(args)
    if args.timeline:
        return timeline_mode(args)

    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "mp-bench"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
        subprocess.run(["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "mp-bench",
                        "--scratch-path", ".build-static"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
        subprocess.run(["cc", "-O2", "-o", PINGPONG, os.path.join(ROOT, "Benchmarks/pingpong.c")], check=True)

    cpus = len(os.sched_getaffinity(0))
    workers_list = sorted({1, 2, cpus})
    workloads = args.workloads.split(",") if args.workloads else list(WORKLOADS)
    unknown = [w for w in workloads if w not in WORKLOADS]
    if unknown:
        raise SystemExit(f"unknown workloads: {', '.join(unknown)} (known: {', '.join(WORKLOADS)})")

    corpus = None
    temporary_corpus = None
    if "hash-files" in workloads:
        corpus = args.corpus or tempfile.mkdtemp(prefix="mp-bench-corpus-")
        temporary_corpus = None if args.corpus else corpus
        os.makedirs(corpus, exist_ok=True)
        files = corpus_size_that_fits(corpus, args.corpus_files)
        total = make_corpus(corpus, files)
        print(f"hash-files corpus: {files} files, {total / 1e9:.2f} GB in {corpus}", file=sys.stderr)
        WORKLOADS["hash-files"] = (["--corpus", corpus], ["--corpus", corpus], "gb_per_s", True)
    try:
        measure_all(args, cpus, workers_list, workloads, corpus)
    finally:
        if temporary_corpus:
            shutil.rmtree(temporary_corpus, ignore_errors=True)


def measure_all(args, cpus, workers_list, workloads, corpus):
    configs = configurations(workers_list, args.quick, workloads)

    # The checksums of both languages must agree for the same flags.
    checks = [("tiny-map", ["--items", "1000"]), ("cpu-bound", ["--iters", "1000"]),
              ("imbalanced", ["--base", "10"]), ("large-args", ["--items", "4", "--size", "1000"]),
              ("mapreduce-pi", ["--samples", "1000"]), ("latency", ["--items", "100"])]
    if corpus:
        checks.append(("hash-files", ["--corpus", corpus]))  # the whole corpus: the untimed warm-up pass too
    for workload, flags in checks:
        if workload not in workloads:
            continue
        a = run([SWIFT, "--workload", workload, "--workers", "2"] + flags)["checksum"]
        b = run(PYTHON + ["--workload", workload, "--workers", "2"] + flags)["checksum"]
        if a != b:
            raise SystemExit(f"checksum mismatch for {workload}: swift {a}, python {b}")
    print(f"checksums agree; {len(configs)} configurations x {args.reps} repetitions, interleaved", file=sys.stderr)

    results = {}
    log = open(args.json, "w") if args.json else None
    for rep in range(args.reps):
        if corpus:
            warm_corpus(corpus)  # untimed: the page cache holds the corpus for every run below
        for lang, engine, workers, workload, command in configs:
            result = run(command)
            results.setdefault((lang, engine, workers, workload), []).append(result)
            if log:
                log.write(json.dumps(result) + "\n")
        floor = run([PINGPONG, "20000"])
        results.setdefault(("c", "pingpong", 1, "latency"), []).append(floor)
        print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr)
    if corpus:
        sums = {r["checksum"] for key, runs in results.items() if key[3] == "hash-files" for r in runs}
        if len(sums) != 1:
            raise SystemExit(f"hash-files checksums differ between runs: {sums}")

    def median(key, field):
        return median_of(results, key, field)

    print(f"\nMedians of {args.reps} interleaved runs; machine: {cpus} CPUs, {os.uname().machine}, "
          f"{subprocess.run(['uname', '-r'], capture_output=True, text=True).stdout.strip()}\n")
    print(f"| workload | workers | figure | swift processes | swift threads | swift task group | python Pool "
          f"| python executor |")
    print(f"|---|---|---|---|---|---|---|---|")
    for workload, (_, _, figure, _) in WORKLOADS.items():
        if workload not in workloads:
            continue
        for workers in workers_list:
            if workload == "hash-files" and workers < 2:
                continue
            cells = []
            for lang, engine in [("swift", "process"), ("swift", "threads"), ("swift", "taskgroup"), ("python", "pool"),
                                 ("python", "executor")]:
                value = median((lang, engine, workers, workload), figure)
                if workload == "startup" and (lang, engine) == ("swift", "process") and value is not None:
                    static = median(("swift-static", "process", workers, workload), figure)
                    cells.append(f"{value:.3g} ({static:.3g} static)" if static else f"{value:.3g}")
                else:
                    cells.append("" if value is None else f"{value:.3g}")
            print(f"| {workload} | {workers} | {figure} | " + " | ".join(cells) + " |")
    rss_swift = median(("swift", "process", 2, "tiny-map-c1"), "worker_rss_kib")
    rss_static = median(("swift-static", "process", 2, "tiny-map-c1"), "worker_rss_kib")
    rss_python = median(("python", "pool", 2, "tiny-map-c1"), "worker_rss_kib")
    floor = median(("c", "pingpong", 1, "latency"), "us_per_roundtrip")

    def ratio(workload, figure, workers=2, invert=False):
        s = median(("swift", "process", workers, workload), figure)
        p = median(("python", "pool", workers, workload), figure)
        if s is None or p is None:
            return None
        return p / s if invert else s / p

    print("\nTargets (2 workers):\n")
    rows = [
        ("tiny-map items/s vs Python Pool", ratio("tiny-map", "items_per_s"), ">= 20x"),
        ("tiny-map-c1 us/item, Python / Swift", ratio("tiny-map-c1", "us_per_item", invert=True), ">= 10x"),
        ("latency us/round trip, Python / Swift", ratio("latency", "us_per_roundtrip", invert=True), ">= 4x"),
        ("latency vs socket-pair floor (Swift / floor)",
         (median(("swift", "process", 2, "latency"), "us_per_roundtrip") or 0) / floor if floor else None, "<= 1.5x"),
        ("cpu-bound efficiency vs sequential", median(("swift", "process", 2, "cpu-bound"), "efficiency_vs_seq"), ">= 0.95"),
        ("cpu-bound process / task group", (median(("swift", "process", 2, "cpu-bound"), "efficiency_vs_seq") or 0)
         / (median(("swift", "taskgroup", 2, "cpu-bound"), "efficiency_vs_seq") or 1), ">= 0.98"),
        ("imbalanced efficiency vs sequential", median(("swift", "process", 2, "imbalanced"), "efficiency_vs_seq"), ">= 0.93"),
        ("imbalanced process / task group", (median(("swift", "process", 2, "imbalanced"), "efficiency_vs_seq") or 0)
         / (median(("swift", "taskgroup", 2, "imbalanced"), "efficiency_vs_seq") or 1), ">= 0.97"),
        ("startup ms, Python / Swift", ratio("startup", "ms_per_startup", invert=True), ">= 1x"),
        ("large-args MB/s vs Python", ratio("large-args", "mb_per_s"), ">= 4x"),
        ("mapreduce-pi samples/s vs Python", ratio("mapreduce-pi", "samples_per_s"), "(no target)"),
        ("hash-files GB/s, processes / thread loop", (median(("swift", "process", 2, "hash-files"), "gb_per_s") or 0)
         / (median(("swift", "taskgroup", 2, "hash-files"), "gb_per_s") or 1)
         if median(("swift", "taskgroup", 2, "hash-files"), "gb_per_s") else None, ">= 0.95"),
        ("hash-files GB/s vs Python Pool", ratio("hash-files", "gb_per_s"), ">= 1.2x"),
        ("idle worker RSS KiB, Swift / Python", rss_swift / rss_python if rss_swift and rss_python else None, "<= 1x"),
        ("idle worker RSS KiB, Swift static / Python", rss_static / rss_python if rss_static and rss_python else None,
         "<= 1x"),
    ]
    print("| target | measured | wanted |")
    print("|---|---|---|")
    for name, value, wanted in rows:
        if value is None or value == 0:
            continue  # its workload was not run (--workloads)
        print(f"| {name} | {value:.3g} | {wanted} |")
    print("\nThreads engine against processes (2 workers; above 1: threads better):\n")
    print("| workload | figure | threads / processes |")
    print("|---|---|---|")
    for workload, (_, _, figure, higher) in WORKLOADS.items():
        p = median(("swift", "process", 2, workload), figure)
        t = median(("swift", "threads", 2, workload), figure)
        if p and t:
            print(f"| {workload} | {figure} | {(t / p if higher else p / t):.3g} |")
    print_parent_share(results, workloads)
    if "latency" in workloads or "tiny-map-c1" in workloads:
        print(f"\nsocket-pair ping-pong floor: {floor:.1f} us per round trip; idle worker RSS: Swift {rss_swift} KiB "
              f"({rss_static} KiB static), Python {rss_python} KiB")


def print_parent_share(results, workloads):
    """The parent's CPU time (user + system, whole process) over all CPU time of the pool's
    life, 2 workers, medians; with the parent's and the workers' seconds. Threads: the
    process's CPU time less the worker threads'."""
    print("\nThe parent's share of the CPU time, 2 workers (medians; parent s = user + system of the whole "
          "parent process over the pool's life, workers s = the workers'):\n")
    print("| workload | swift processes: share (parent s / workers s) | swift threads: share | python Pool: share "
          "(parent s / workers s) |")
    print("|---|---|---|---|")
    for workload in WORKLOADS:
        if workload not in workloads or workload == "startup":
            continue
        cells = []
        for lang, engine in [("swift", "process"), ("swift", "threads"), ("python", "pool")]:
            runs = results.get((lang, engine, 2, workload), [])
            shares = [r[CPU_SHARE] for r in runs if CPU_SHARE in r]
            if not shares:
                cells.append("")
                continue
            parent = statistics.median(r["parent_user_s"] + r["parent_sys_s"] for r in runs)
            workers = statistics.median(r["workers_user_s"] + r["workers_sys_s"] for r in runs)
            cells.append(f"{statistics.median(shares):.1%}" + ("" if engine == "threads" else
                                                               f" ({parent:.3g} / {workers:.3g})"))
        print(f"| {workload} | " + " | ".join(cells) + " |")


def scaling_trials(workers):
    """Pools started and closed per startup run: 20 for small pools, fewer for big ones
    (a 200-worker pool takes about a second to start and close on 2 CPUs), at least 3."""
    return max(3, min(20, 400 // workers))


def scaling_mode(args):
    """The cost of the pool as it grows: tiny-map per item (the pool started and warmed
    outside the timed region) and the time to start a pool (until its first apply has
    answered) and to close it, at each of --scaling-workers, mp-bench's static build
    (process engine) against Python's Pool (fork), interleaved, medians. On a machine with
    fewer CPUs than workers the pools are oversubscribed: read the trend (the figures at
    2 workers against those at N), not the absolute values."""
    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "mp-bench",
                        "--scratch-path", ".build-static"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    swift = args.scaling_binary
    sizes = [int(w) for w in args.scaling_workers.split(",")]
    swift_items, python_items = WORKLOADS["tiny-map"][0], WORKLOADS["tiny-map"][1]
    check = ["--workload", "tiny-map", "--workers", "2", "--items", "1000"]
    if run([swift] + check)["checksum"] != run(PYTHON + check)["checksum"]:
        raise SystemExit("checksum mismatch for tiny-map")
    configs = []
    for workers in sizes:
        w = ["--workers", str(workers)]
        trials = ["--trials", str(scaling_trials(workers))]
        configs += [
            ("swift", "tiny-map", workers, [swift, "--workload", "tiny-map"] + w + swift_items),
            ("python", "tiny-map", workers, PYTHON + ["--workload", "tiny-map", "--engine", "pool"] + w + python_items),
            ("swift", "startup", workers, [swift, "--workload", "startup"] + w + trials),
            ("python", "startup", workers, PYTHON + ["--workload", "startup", "--engine", "pool"] + w + trials),
        ]
    print(f"scaling: {len(configs)} configurations x {args.reps} repetitions, interleaved", file=sys.stderr)
    results = {}
    log = open(args.json, "w") if args.json else None
    for rep in range(args.reps):
        for lang, workload, workers, command in configs:
            result = run(command)
            results.setdefault((lang, workload, workers), []).append(result)
            if log:
                log.write(json.dumps(result) + "\n")
        print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr)

    def median(key, field):
        return median_of(results, key, field)

    def parent_us_per_item(key):
        runs = results.get(key, [])
        if not runs or "parent_user_s" not in runs[0]:
            return None
        return statistics.median((r["parent_user_s"] + r["parent_sys_s"]) / r["items"] * 1e6 for r in runs)

    def cell(value, digits=3):
        return "" if value is None else f"{value:.{digits}g}"

    cpus = len(os.sched_getaffinity(0))
    first = sizes[0]
    print(f"\nThe pool as it grows: medians of {args.reps} interleaved runs; machine: {cpus} CPUs, "
          f"{os.uname().machine}, {subprocess.run(['uname', '-r'], capture_output=True, text=True).stdout.strip()}; "
          f"swift: {os.path.relpath(swift, ROOT)} (processes); python: multiprocessing.Pool (fork)\n")
    print(f"tiny-map (swift {swift_items[1]} items, python {python_items[1]}; x{first}: the cost per item against "
          f"{first} workers'; parent CPU: the parent's user + system time over the pool's life, per item):\n")
    print(f"| workers | swift us/item | swift x{first} | swift parent CPU us/item | python us/item | python x{first} "
          f"| python parent CPU us/item | items/s, swift / python |")
    print("|---|---|---|---|---|---|---|---|")
    for workers in sizes:
        s = median(("swift", "tiny-map", workers), "us_per_item")
        p = median(("python", "tiny-map", workers), "us_per_item")
        s0 = median(("swift", "tiny-map", first), "us_per_item")
        p0 = median(("python", "tiny-map", first), "us_per_item")
        print(f"| {workers} | {cell(s)} | {cell(s / s0 if s and s0 else None)} "
              f"| {cell(parent_us_per_item(('swift', 'tiny-map', workers)))} | {cell(p)} "
              f"| {cell(p / p0 if p and p0 else None)} | {cell(parent_us_per_item(('python', 'tiny-map', workers)))} "
              f"| {cell(p / s if s and p else None)} |")
    print(f"\nPool start (created until its first apply has answered: every worker has shaken hands) and close "
          f"(until every worker is reaped), ms; per run, the median of {scaling_trials(max(sizes))} to "
          f"{scaling_trials(min(sizes))} pools (fewer for bigger pools):\n")
    print("| workers | swift start | swift start per worker | python start | python start per worker "
          "| start, python / swift | swift close | python close |")
    print("|---|---|---|---|---|---|---|---|")
    for workers in sizes:
        s = median(("swift", "startup", workers), "start_ms")
        p = median(("python", "startup", workers), "start_ms")
        print(f"| {workers} | {cell(s)} | {cell(s / workers if s else None)} | {cell(p)} "
              f"| {cell(p / workers if p else None)} | {cell(p / s if s and p else None)} "
              f"| {cell(median(('swift', 'startup', workers), 'close_ms'))} "
              f"| {cell(median(('python', 'startup', workers), 'close_ms'))} |")


# workload -> (flags, the figure compared)
NODE_WORKLOADS = {
    "tiny-map": (["--items", "10000000"], "us_per_item"),
    "tiny-map-c1": (["--items", "20000"], "us_per_item"),
    "latency": (["--items", "3000"], "us_per_roundtrip"),
    "cpu-bound": ([], "efficiency_vs_seq"),
}


def journal_mode(args):
    """Journal off against on, 2 workers, medians of interleaved runs (the cost of durable maps)."""
    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "mp-bench"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    path = os.path.join(ROOT, ".build/bench-journal")
    cases = {"tiny-map": (["--items", "1000000"], "us_per_item", False),
             "cpu-bound": ([], "efficiency_vs_seq", True),
             "large-args": (["--items", "256"], "mb_per_s", True)}
    results = {}
    sizes = {}
    for rep in range(args.reps):
        for workload, (flags, _, _) in cases.items():
            base = [SWIFT, "--workload", workload, "--workers", "2"] + flags
            results.setdefault((workload, "off"), []).append(run(base))
            results.setdefault((workload, "on"), []).append(run(base + ["--journal", path]))
            sizes[workload] = os.path.getsize(path)
        # Resume: the journal of a finished 1,000,000-item tiny-map, run again.
        resume = [SWIFT, "--workload", "tiny-map", "--workers", "2", "--items", "1000000", "--journal", path]
        run(resume)
        results.setdefault(("resume", "on"), []).append(run(resume + ["--journal-keep"]))
        print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr)
    print(f"\nJournal off vs on, 2 workers, medians of {args.reps} interleaved runs "
          f"({len(os.sched_getaffinity(0))} CPUs, shared machine: noisy)")
    for workload, (flags, field, higher) in cases.items():
        off = median_of(results, (workload, "off"), field)
        on = median_of(results, (workload, "on"), field)
        ratio = on / off if higher else off / on
        print(f"{workload:12} {field:18} off {off:.4g}  on {on:.4g}  on/off {ratio:.3f}")
    items = 1000000
    print(f"tiny-map journal: {sizes['tiny-map']} bytes for {items} items "
          f"({sizes['tiny-map'] / items:.1f} bytes per item, warm-up calls included)")
    print(f"resume of a finished 1,000,000-item tiny-map: {median_of(results, ('resume', 'on'), 'seconds') * 1e3:.1f} ms "
          f"(the map call, from the journal)")


def timeline_mode(args):
    """Timeline off against on, 2 workers, medians of interleaved runs: the per-chunk cost of
    recording (inside the timed region) and, apart, the files' sizes and the pool's close time
    (when they are written)."""
    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--product", "mp-bench"], cwd=ROOT, check=True,
                       stdout=subprocess.DEVNULL)
    path = os.path.join(ROOT, ".build/bench-timeline.json")
    picture = path[:-len(".json")] + ".html"
    cases = {"tiny-map": ["--items", "20000000"], "tiny-map-c1": ["--items", "100000"]}
    results = {}
    sizes = {}
    for rep in range(args.reps):
        for workload, flags in cases.items():
            base = [SWIFT, "--workload", workload, "--workers", "2"] + flags
            results.setdefault((workload, "off"), []).append(run(base))
            results.setdefault((workload, "on"), []).append(run(base + ["--timeline", path]))
            sizes[workload] = (os.path.getsize(path), os.path.getsize(picture),
                               sum(1 for line in open(path) if '"ph":"X"' in line))
        print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr)
    print(f"\nTimeline off vs on, 2 workers, medians of {args.reps} interleaved runs "
          f"({len(os.sched_getaffinity(0))} CPUs, shared machine: noisy)")
    for workload, flags in cases.items():
        off = median_of(results, (workload, "off"), "us_per_item")
        on = median_of(results, (workload, "on"), "us_per_item")
        close_off = median_of(results, (workload, "off"), "close_seconds")
        close_on = median_of(results, (workload, "on"), "close_seconds")
        trace, html, events = sizes[workload]
        print(f"{workload:12} {' '.join(flags):16} us/item off {off:.4g}  on {on:.4g}  on/off {on / off:.3f}; "
              f"close off {close_off * 1e3:.1f} ms, on {close_on * 1e3:.1f} ms; "
              f"trace {trace} bytes ({events} events), picture {html} bytes")


def nodes_mode(args):
    """Each configuration is a real sbatch job on the local Slurm. "socket pairs": one node,
    the program with 2 local workers. "tcp": two nodes, the program once in the batch
    script, one worker host per node with MP_WORKERS=1 (2 workers in all, over TCP). The
    emulated nodes share this machine's CPUs, so compare overhead and latency, not speed-up."""
    import tempfile
    if subprocess.run(["scontrol", "ping"], capture_output=True).returncode != 0:
        raise SystemExit("no Slurm is reachable: start one with scripts/slurm/start (root, Debian)")
    if not args.no_build:
        subprocess.run(["swift", "build", "-c", "release", "--static-swift-stdlib", "--product", "mp-bench",
                        "--scratch-path", ".build-static"], cwd=ROOT, check=True, stdout=subprocess.DEVNULL,
                       stderr=subprocess.DEVNULL)
    placements = {
        "socket pairs": (["--nodes=1", "--ntasks=1", "--cpus-per-task=2"], "", ["--workers", "2"]),
        "tcp": (["--nodes=2", "--ntasks-per-node=1", "--cpus-per-task=2"], "export MP_WORKERS=1\n", ["--nodes"]),
    }
    results = {}
    for rep in range(args.reps):
        for workload, (flags, _) in NODE_WORKLOADS.items():
            for placement, (options, prelude, mode) in placements.items():
                with tempfile.TemporaryDirectory() as folder:
                    script = os.path.join(folder, "job.sh")
                    output = os.path.join(folder, "job.out")
                    command = " ".join([SWIFT_STATIC, "--workload", workload] + mode + flags)
                    with open(script, "w") as f:
                        f.write(f"#!/bin/bash\n{prelude}{command}\n")
                    done = subprocess.run(["sbatch", "--wait", "--parsable", f"--output={output}",
                                           "--mem-per-cpu=512M", "--time=00:05:00"] + options + [script],
                                          capture_output=True, text=True, timeout=600)
                    text = open(output).read() if os.path.exists(output) else ""
                    lines = [line for line in text.splitlines() if line.startswith("{")]
                    if done.returncode != 0 or not lines:
                        raise SystemExit(f"job for {workload} ({placement}) failed:\n{done.stderr}{text}")
                    result = json.loads(lines[-1])
                    results.setdefault((workload, placement), []).append(result)
        print(f"repetition {rep + 1}/{args.reps} done", file=sys.stderr)

    def median(key, field):
        return median_of(results, key, field)

    print(f"\nMedians of {args.reps} interleaved sbatch jobs; 2 workers in each: 2 on one node (local socket "
          f"pairs), or 1 on each of two emulated nodes (TCP). The nodes share this machine's {len(os.sched_getaffinity(0))} CPUs.\n")
    print("| workload | figure | one node, socket pairs | two nodes, TCP | TCP / socket pairs |")
    print("|---|---|---|---|---|")
    for workload, (_, figure) in NODE_WORKLOADS.items():
        local = median((workload, "socket pairs"), figure)
        tcp = median((workload, "tcp"), figure)
        checks = {r["checksum"] for key in [(workload, "socket pairs"), (workload, "tcp")] for r in results[key]}
        if len(checks) != 1:
            raise SystemExit(f"checksums differ for {workload}: {checks}")
        print(f"| {workload} | {figure} | {local:.3g} | {tcp:.3g} | {tcp / local:.3g} |")


if __name__ == "__main__":
    main()
