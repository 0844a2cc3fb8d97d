"""Run benchmarks, print a table and write ``benchmarks/results/NAME.json``.

    python -m benchmarks.run_all                 # every benchmark, full size
    python -m benchmarks.run_all --quick unfolding

Each module ``benchmarks/NAME.py`` exposes ``run(quick: bool) -> dict``; the JSON adds
machine info (CPU, cores, GPU), device, date and git commit.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

from numl_core.runs import atomic_write_json, environment_info

HERE = Path(__file__).resolve().parent
RESULTS = HERE / "results"
BENCHMARKS = ("unfolding", "energy", "generator", "uncertainty", "xsec", "responsiveness")


def machine_info() -> dict[str, Any]:
    """CPU model, cores, GPU and software versions."""
    cpu = platform.processor()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    return {"cpu": cpu, **environment_info()}


def git_commit() -> str | None:
    try:
        return subprocess.check_output(["git", "rev-parse", "HEAD"], cwd=HERE, text=True).strip()
    except (OSError, subprocess.CalledProcessError):
        return None


def flatten(d: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dict -> {'a.b': value} for printing."""
    out: dict[str, Any] = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict):
            out.update(flatten(v, key + "."))
        elif not isinstance(v, list):
            out[key] = v
    return out


def print_table(name: str, result: dict[str, Any]) -> None:
    rows = flatten(result)
    width = max((len(k) for k in rows), default=10)
    print(f"\n== {name} ==")
    for k, v in rows.items():
        text = f"{v:.4g}" if isinstance(v, float) else str(v)
        print(f"  {k:<{width}}  {text}")


def run_one(name: str, quick: bool) -> dict[str, Any]:
    module = importlib.import_module(f"benchmarks.{name}")
    t0 = time.perf_counter()
    result = module.run(quick=quick)
    record = {
        "benchmark": name,
        "quick": quick,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine_info(),
        "wall_s": time.perf_counter() - t0,
        **result,
    }
    suffix = "-quick" if quick else ""
    atomic_write_json(RESULTS / f"{name}{suffix}.json", record)
    print_table(name, result)
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "names", nargs="*", help=f"benchmarks to run (default: all of {', '.join(BENCHMARKS)})"
    )
    parser.add_argument("--quick", action="store_true", help="small sizes for a smoke run")
    args = parser.parse_args(argv)
    unknown = [n for n in args.names if n not in BENCHMARKS]
    if unknown:
        parser.error(f"unknown benchmark(s) {unknown}; known: {', '.join(BENCHMARKS)}")
    for name in args.names or BENCHMARKS:
        run_one(name, args.quick)
    return 0


if __name__ == "__main__":
    sys.exit(main())
