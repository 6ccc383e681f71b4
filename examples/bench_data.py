"""The data pipeline on a folder of JPEG images: memory of ``nas train`` and
``nas search`` as the folder grows, and images per second against torchvision.

The benchmark writes its own folders of 224x224 RGB JPEG images in ten class
folders (smooth colour gradients and waves plus noise, so that they compress
as photographs do; image ``i`` is the same on every run), one with
``--images`` and one with ``--small`` images, into a temporary folder or
into ``--root`` (where an earlier run's folders are reused).

What it measures:

1. **Memory.** ``nas train`` (``--train-net`` at ``--train-input``, one
   epoch) and ``nas search`` (``--space``, ``--trials`` trials of one epoch,
   a latency budget every network meets) run as subprocesses of this
   script, on the small and the large folder. While each runs, its whole
   process tree (the command and its data-loader workers) is sampled from
   ``/proc`` (or with psutil where installed): the peak of the summed
   resident memory (RSS: pages that forked workers share with the main
   process count once per process, so it overstates) and the peak of the
   summed proportional set size (PSS: shared pages divided among the
   processes that map them, so the sum is the memory the tree really
   holds), and the main process's own high-water mark (``VmHWM``). The
   goal: the large folder's peak within 10% of the small one's, and under
   2 GB. Much of the peak is PyTorch itself (its libraries and allocator),
   which does not depend on the data.

2. **Throughput.** Images per second that reach a training step (a float,
   normalised batch on the device, here the CPU) from a random resized crop
   and flip of each image, at each ``--sizes``: ``nas.data.loader``'s
   ``Loader.epoch()`` on the large folder, against torchvision's
   ``ImageFolder`` and ``DataLoader`` with ``RandomResizedCrop``,
   ``RandomHorizontalFlip``, ``ToTensor`` and ``Normalize``, with the same
   batch size and number of workers. After ``--warmup`` batches (worker
   start-up), ``--batches`` batches are timed; the two pipelines alternate
   for ``--rounds`` rounds (A B B A ...) so that a noisy machine slows both
   alike, and the ratio of their medians is reported (ours / torchvision;
   the goal is 0.95 or more).

Run it from the repository root::

    .venv/bin/python examples/bench_data.py                      # 10,000 and 2,500 images, ~20 min on 2 cores
    .venv/bin/python examples/bench_data.py --root /tmp/jpegs    # keep the folders for the next run
    .venv/bin/python examples/bench_data.py --skip-memory --sizes 224 --rounds 3
    .venv/bin/python examples/bench_data.py --json               # one JSON object on stdout

Progress goes to stderr, so ``--json`` output can be piped as it is.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torchvision import datasets, transforms

from nas.data import default_workers, load_data, loader

CLASSES = 10
SIDE = 224
QUALITY = 90
GIB = 1024**3
GOAL_SPREAD = 0.10
GOAL_PEAK = 2 * GIB
GOAL_RATIO = 0.95
REPO = Path(__file__).resolve().parent.parent


def log(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


# -- the image folders ------------------------------------------------------------


def draw(index: int) -> np.ndarray:
    """Image ``index``: per channel a linear gradient and a wave, plus noise
    (``SIDE x SIDE x 3`` ``uint8``); its class tints the mean colour, so that
    a network can learn something."""
    rng = np.random.default_rng(index)
    yy, xx = np.mgrid[0:SIDE, 0:SIDE].astype(np.float32) / SIDE
    label = index % CLASSES
    image = np.empty((SIDE, SIDE, 3), np.float32)
    for c in range(3):
        slope_x, slope_y = rng.uniform(-120, 120, 2)
        level = 60 + 140 * ((label * (c + 1) * 37) % 100) / 100
        fx, fy = rng.uniform(1, 6, 2)
        phase, amplitude = rng.uniform(0, 2 * np.pi), rng.uniform(10, 40)
        wave = amplitude * np.sin(2 * np.pi * (fx * xx + fy * yy) + phase)
        image[..., c] = level + slope_x * (xx - 0.5) + slope_y * (yy - 0.5) + wave
    image += rng.normal(0, 6, image.shape).astype(np.float32)
    return np.clip(image, 0, 255).astype(np.uint8)


def _write(job: tuple[str, int]) -> int:
    from PIL import Image

    folder, index = job
    path = Path(folder) / f"class{index % CLASSES}" / f"{index:05d}.jpg"
    Image.fromarray(draw(index)).save(path, "JPEG", quality=QUALITY)
    return path.stat().st_size


def generate(root: Path, count: int, processes: int) -> dict[str, Any]:
    """The folder ``root/jpeg-COUNT`` of ``count`` images in class folders,
    written in parallel, or found whole from an earlier run."""
    folder = root / f"jpeg-{count}"
    done = folder / ".complete"
    if done.is_file():
        sizes = [p.stat().st_size for p in folder.glob("class*/*.jpg")]
        if len(sizes) == count:
            return {"folder": str(folder), "images": count, "mean_kib": statistics.fmean(sizes) / 1024, "seconds": 0.0}
    for c in range(CLASSES):
        (folder / f"class{c}").mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    with multiprocessing.get_context("fork").Pool(processes) as pool:
        sizes = pool.map(_write, [(str(folder), i) for i in range(count)], chunksize=64)
    done.write_text(f"{count}\n")
    seconds = time.perf_counter() - started
    return {"folder": str(folder), "images": count, "mean_kib": statistics.fmean(sizes) / 1024, "seconds": seconds}


# -- memory of a process tree ------------------------------------------------------


def _children(pid: int) -> list[int]:
    """Every descendant of ``pid``, from the parent ids in ``/proc/*/stat``."""
    parents: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            parents[int(entry)] = int(stat.rsplit(")", 1)[1].split()[1])
    tree, frontier = [], [pid]
    while frontier:
        found = [p for p, parent in parents.items() if parent in frontier]
        tree += found
        frontier = found
    return tree


def _field_kib(path: str, name: str) -> int:
    """A ``kB`` field of a ``/proc`` file (0 if the process is gone)."""
    try:
        for line in Path(path).read_text().splitlines():
            if line.startswith(name + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


class TreeMemory:
    """Peaks of a process tree's memory, sampled: summed RSS, summed PSS, and
    the root's ``VmHWM`` (with psutil where installed, else from ``/proc``)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.rss = self.pss = self.hwm = 0
        self.processes = 1
        try:
            import psutil  # optional: /proc gives the same figures on Linux

            self.psutil: Any = psutil
            self.method = "psutil: RSS and PSS of every process of the tree"
        except ImportError:
            self.psutil = None
            self.method = "/proc: VmRSS (status) and Pss (smaps_rollup) of every process of the tree"

    def sample(self) -> None:
        pids = [self.pid, *_children(self.pid)]
        rss = pss = 0
        for pid in pids:
            if self.psutil is not None:
                try:
                    info = self.psutil.Process(pid).memory_full_info()
                    rss, pss = rss + info.rss, pss + info.pss
                except (self.psutil.NoSuchProcess, self.psutil.AccessDenied):
                    continue
            else:
                rss += 1024 * _field_kib(f"/proc/{pid}/status", "VmRSS")
                pss += 1024 * _field_kib(f"/proc/{pid}/smaps_rollup", "Pss")
        self.rss, self.pss = max(self.rss, rss), max(self.pss, pss)
        self.hwm = max(self.hwm, 1024 * _field_kib(f"/proc/{self.pid}/status", "VmHWM"))
        self.processes = max(self.processes, len(pids))


def peak_memory(command: list[str], log_file: Path, timeout_s: float, interval_s: float = 0.2) -> dict[str, Any]:
    """Run ``command`` (in its own session, so that a timeout ends all of it)
    and sample its tree's memory until it exits."""
    with open(log_file, "w") as out:
        started = time.perf_counter()
        process = subprocess.Popen(command, cwd=REPO, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        memory = TreeMemory(process.pid)
        while process.poll() is None:
            memory.sample()
            if time.perf_counter() - started > timeout_s:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
                break
            time.sleep(interval_s)
        seconds = time.perf_counter() - started
    tail = log_file.read_text(errors="replace").strip().splitlines()[-3:]
    return {
        "rc": process.returncode,
        "seconds": seconds,
        "peak_rss": memory.rss,
        "peak_pss": memory.pss,
        "main_hwm": memory.hwm,
        "processes": memory.processes,
        "method": memory.method,
        "tail": tail,
    }


def commands(folder: str, work: Path, args: argparse.Namespace) -> dict[str, list[str]]:
    """The ``nas train`` and ``nas search`` command lines for one folder."""
    python = [sys.executable, "-m", "nas.cli"]
    workers = ["--data-workers", str(args.workers)]
    return {
        "train": [
            *python,
            "train",
            args.train_net,
            "--input",
            args.train_input,
            "--data",
            folder,
            "--epochs",
            "1",
            "--format",
            "yaml,weights",
            "-o",
            str(work / "trained"),
            "--force",
            *workers,
        ],
        "search": [
            *python,
            "search",
            "--space",
            args.space,
            "--data",
            folder,
            "--trials",
            str(args.trials),
            "--epochs",
            "1",
            "--latency-budget-ms",
            "1000",
            "--trial-timeout",
            str(args.timeout),
            "--storage",
            f"sqlite:///{work / 'search.db'}",
            "--runs",
            str(work / "runs"),
            *workers,
        ],
    }


def memory_part(folders: dict[int, str], work: Path, args: argparse.Namespace) -> list[dict[str, Any]]:
    rows = []
    for name in ("train", "search"):
        for count, folder in sorted(folders.items()):
            place = work / f"{name}-{count}"
            place.mkdir(parents=True, exist_ok=True)
            log(f"memory: nas {name} on {count:,} images ...")
            row = peak_memory(commands(folder, place, args)[name], place / "log.txt", args.timeout + 300)
            row.update(command=name, images=count)
            log(f"  rc {row['rc']}, {row['seconds']:.0f} s, peak PSS {row['peak_pss'] / GIB:.2f} GiB")
            rows.append(row)
    return rows


def memory_verdicts(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per command: the large folder's peaks over the small one's, and the goals."""
    verdicts = []
    for name in dict.fromkeys(r["command"] for r in rows):
        mine = sorted((r for r in rows if r["command"] == name), key=lambda r: r["images"])
        small, large = mine[0], mine[-1]
        ratio = {key: large[key] / max(1, small[key]) for key in ("peak_rss", "peak_pss")}
        verdicts.append(
            {
                "command": name,
                "images": (small["images"], large["images"]),
                "ratio_rss": ratio["peak_rss"],
                "ratio_pss": ratio["peak_pss"],
                "within_10pct": abs(ratio["peak_pss"] - 1) <= GOAL_SPREAD,
                "under_2gb": max(small["peak_pss"], large["peak_pss"]) < GOAL_PEAK,
                "all_ran": all(r["rc"] == 0 for r in mine),
            }
        )
    return verdicts


# -- throughput ----------------------------------------------------------------------


Batches = Iterator[tuple[torch.Tensor, torch.Tensor]]


def ours(folder: str, size: int, args: argparse.Namespace, round_: int) -> Batches:
    data = load_data(folder)
    feed = loader(
        data, "train", (3, size, size), batch_size=args.batch, augment="resized-crop-flip", workers=args.workers
    )
    return feed.epoch(round_, seed=0)


def baseline(folder: str, size: int, args: argparse.Namespace, round_: int) -> Batches:
    data = load_data(folder)  # the same per-channel statistics as ours normalises with
    transform = transforms.Compose(
        [
            transforms.RandomResizedCrop(size),
            transforms.RandomHorizontalFlip(),
            transforms.ToTensor(),
            transforms.Normalize(data.mean, data.std),
        ]
    )
    images = datasets.ImageFolder(folder, transform=transform)
    feed = torch.utils.data.DataLoader(
        images,
        batch_size=args.batch,
        shuffle=True,
        num_workers=args.workers,
        generator=torch.Generator().manual_seed(round_),
    )
    return iter(feed)


def images_per_second(batches: Batches, args: argparse.Namespace) -> float:
    """Images per second over ``args.batches`` batches after ``args.warmup``."""
    for _ in range(args.warmup):
        next(batches)
    started = time.perf_counter()
    count = 0
    for _ in range(args.batches):
        x, _ = next(batches)
        assert x.dtype == torch.float32
        count += len(x)
    seconds = time.perf_counter() - started
    del batches  # shuts the workers down before the other pipeline starts
    return count / seconds


def throughput_part(folder: str, args: argparse.Namespace) -> list[dict[str, Any]]:
    pipelines = {"ours": ours, "torchvision": baseline}
    rows = []
    for size in args.sizes:
        rates: dict[str, list[float]] = {name: [] for name in pipelines}
        for round_ in range(args.rounds):
            order = list(pipelines) if round_ % 2 == 0 else list(pipelines)[::-1]
            for name in order:
                rate = images_per_second(pipelines[name](folder, size, args, round_), args)
                rates[name].append(rate)
                log(f"throughput {size}x{size}, round {round_ + 1}: {name} {rate:.0f} images/s")
        medians = {name: statistics.median(r) for name, r in rates.items()}
        rows.append(
            {
                "size": size,
                "ours": medians["ours"],
                "torchvision": medians["torchvision"],
                "ratio": medians["ours"] / medians["torchvision"],
                "ours_rounds": rates["ours"],
                "torchvision_rounds": rates["torchvision"],
            }
        )
    return rows


# -- report ---------------------------------------------------------------------------


def print_tables(result: dict[str, Any]) -> None:
    for g in result["folders"]:
        print(f"folder {g['folder']}: {g['images']:,} JPEGs of {SIDE}x{SIDE}, mean {g['mean_kib']:.1f} KiB", end="")
        print(f", written in {g['seconds']:.0f} s" if g["seconds"] else ", reused")
    if result["memory"]:
        print(f"\nMemory (peaks of the whole process tree, sampled every 0.2 s; {result['memory'][0]['method']})")
        head = f"{'command':<8} {'images':>7} {'rc':>3} {'s':>5} {'procs':>5}"
        print(f"{head} {'RSS sum':>9} {'PSS sum':>9} {'main HWM':>9}")
        for r in result["memory"]:
            print(
                f"{r['command']:<8} {r['images']:>7,} {r['rc']:>3} {r['seconds']:>5.0f} {r['processes']:>5} "
                f"{r['peak_rss'] / GIB:>7.2f} G {r['peak_pss'] / GIB:>7.2f} G {r['main_hwm'] / GIB:>7.2f} G"
            )
        print(f"\n{'command':<8} {'images':>14} {'RSS ratio':>9} {'PSS ratio':>9} {'within 10%':>10} {'< 2 GB':>7}")
        for v in result["memory_verdicts"]:
            small, large = v["images"]
            print(
                f"{v['command']:<8} {f'{large:,} / {small:,}':>14} {v['ratio_rss']:>9.3f} {v['ratio_pss']:>9.3f} "
                f"{'yes' if v['within_10pct'] else 'NO':>10} {'yes' if v['under_2gb'] else 'NO':>7}"
                + ("" if v["all_ran"] else "   (a command failed: see its log)")
            )
    if result["throughput"]:
        s = result["settings"]
        print(
            f"\nThroughput (images/s delivered as float normalised batches; batch {s['batch']}, "
            f"{s['workers']} workers, {s['batches']} batches after {s['warmup']}, median of {s['rounds']} rounds)"
        )
        print(f"{'size':>9} {'ours':>8} {'torchvision':>11} {'ratio':>6} {'>= 0.95':>7}")
        for r in result["throughput"]:
            print(
                f"{r['size']:>4}x{r['size']:<4} {r['ours']:>8.0f} {r['torchvision']:>11.0f} {r['ratio']:>6.3f} "
                f"{'yes' if r['ratio'] >= GOAL_RATIO else 'NO':>7}"
            )


def main() -> None:
    summary = __doc__.split("\n\n")[0]
    parser = argparse.ArgumentParser(description=summary, formatter_class=argparse.RawTextHelpFormatter)
    parser.add_argument("--root", type=Path, help="folder for the JPEG folders (kept and reused; default: temporary)")
    parser.add_argument("--images", type=int, default=10_000, help="images of the large folder")
    parser.add_argument("--small", type=int, default=2_500, help="images of the small folder")
    parser.add_argument("--workers", type=int, default=default_workers(), help="data-loader workers, everywhere")
    parser.add_argument("--train-net", default="lenet5", help="the network 'nas train' trains")
    parser.add_argument("--train-input", default="3x64x64", help="its input shape")
    parser.add_argument("--space", default="early", help="the space 'nas search' searches")
    parser.add_argument("--trials", type=int, default=2, help="trials of the search")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds of training per trial")
    parser.add_argument("--sizes", type=int, nargs="+", default=[224, 128], help="network input sides to feed")
    parser.add_argument("--batch", type=int, default=64, help="batch size of the throughput part")
    parser.add_argument("--batches", type=int, default=40, help="batches timed per round")
    parser.add_argument("--warmup", type=int, default=4, help="batches before the timing (worker start-up)")
    parser.add_argument("--rounds", type=int, default=5, help="rounds of each pipeline, alternating")
    parser.add_argument("--skip-memory", action="store_true", help="only the throughput part")
    parser.add_argument("--skip-throughput", action="store_true", help="only the memory part")
    parser.add_argument("--json", action="store_true", help="print one JSON object instead of tables")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="bench-data-") as temporary:
        root = args.root or Path(temporary)
        root.mkdir(parents=True, exist_ok=True)
        counts = [args.images] if args.skip_memory else sorted({args.small, args.images})
        folders = []
        for count in counts:
            log(f"images: {count:,} in {root} ...")
            folders.append(generate(root, count, max(1, os.cpu_count() or 1)))
        by_count = {g["images"]: g["folder"] for g in folders}
        memory = [] if args.skip_memory else memory_part(by_count, Path(temporary) / "work", args)
        throughput = [] if args.skip_throughput else throughput_part(by_count[args.images], args)
    result = {
        "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "folders": folders,
        "memory": memory,
        "memory_verdicts": memory_verdicts(memory) if memory else [],
        "throughput": throughput,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_tables(result)


if __name__ == "__main__":
    main()
