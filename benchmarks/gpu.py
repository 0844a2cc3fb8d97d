"""GPU benchmark: the accelerator figures of every workflow in one run, sized for a short GPU lease.

    python -m benchmarks.gpu                      # every section, writes benchmarks/results/gpu.json
    python -m benchmarks.gpu energy xsec --out /tmp/gpu

Each section runs in its own process under a wall-clock budget (``BUDGET_S``), so a section that fails or
runs long costs only itself; its result (or the error) lands in the report. Sections:

* ``unfolding``: the full-size OmniFold run (600k vs 600k events, 15 iterations x 5 trials) and the
  batched-ensemble vs per-member-loop ratio on the GPU;
* ``energy``: inference and training throughput of the default transformer, and the resolution table
  of a larger training run than the CPU benchmark affords;
* ``generator``: seconds per million samples of the S/M/L flows (next to the reference's GPU figures),
  a longer importance-sampler training with its RESS and unweighting efficiency, and the fair race
  against VEGAS on the flow's coordinates with both cross sections evaluated on the GPU;
* ``uncertainty``: the 50-D mixture case (training time and p-value metrics) with more toys;
* ``xsec``: the carbon fits and transfer learning with pretraining and fine-tuning times.

``--quick`` runs every section at smoke-test size on whatever device is present (CPU included), which is
how the module is tested without a GPU.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

from benchmarks.run_all import RESULTS, git_commit, machine_info, print_table
from numl_core.device import resolve_device
from numl_core.runs import atomic_write_json

logger = logging.getLogger(__name__)

BUDGET_S = {"unfolding": 100, "energy": 140, "generator": 120, "uncertainty": 130, "xsec": 60}
"""Wall-clock seconds each section may take (data generation and warm-up included), from calls measured on
an H200: small networks are bound by kernel launches there (the energy transformer trains at 2.5e4
events/s with batches of 512 and 1.2e5 with 4096; a 6 x (4 x 64) cross-section ensemble takes 91 s per
1000 epochs, twice the 2-core CPU's time)."""


def _synchronize(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _unfolding(device: str, quick: bool) -> dict[str, Any]:
    from benchmarks import unfolding as bench

    sizes = bench.QUICK if quick else bench.FULL
    sample = bench.make_sample(sizes.n_events)
    out = bench.bench_omnifold_full(sample, sizes, device=device)
    timing = bench.time_batched_vs_loop(
        bench.ensemble_inputs(sample, sizes), bench.ensemble_settings(sizes, device)
    )
    seconds = out[f"omnifold_full_{'cpu' if device == 'cpu' else 'gpu'}_s"]
    projection = bench.full_ensemble_projection(out["omnifold_full"], seconds)
    return {**out, **projection, "batched_vs_loop_speedup": timing["speedup"], "batched_vs_loop": timing}


def _energy(device: str, quick: bool) -> dict[str, Any]:
    from benchmarks import energy as bench

    n_infer, n_train, epochs = (5_000, 4_000, 2) if quick else (500_000, 300_000, 12)
    out: dict[str, Any] = {"inference_events_per_s": bench.inference_throughput(n_infer, device)}
    # large batches keep the GPU busy; the learning rate grows with the square root of the batch size
    larger = {} if quick else {"batch_size": 4096, "learning_rate": 3e-3}
    out.update(bench.resolution(n_train, epochs, device=device, **larger))
    return out


def _generator(device: str, quick: bool) -> dict[str, Any]:
    from benchmarks import generator as bench
    from numl_core.data.generators import exclusive_1p1h as ex

    sizes = bench._sizes(quick)
    out: dict[str, Any] = {"seconds_per_million": bench._seconds_per_million(sizes["n_timing"] * 10, device)}
    out["reference_seconds_per_million"] = bench.REFERENCE_SECONDS_PER_MILLION["gpu"]
    # the CPU benchmark's coupling flow, wider, in batches four times as large
    flow_sizes = sizes["flow"] | ({} if quick else {"hidden": 128, "batch_size": 2048})
    flow, rounds, seconds = bench._train(flow_sizes, "1p3/2", 0, device=device)
    model, flux = ex.carbon_model("1p3/2"), ex.Flux.flat(*bench.ENU)
    scores = bench._scores(flow, model, flux, sizes, 0)
    report = scores["report"]
    # the fair race on this device: flow and cross section here, VEGAS's integrand here in batches
    race = bench.fair_race(flow, scores, model, flux, sizes, 0, device=device)
    return {
        **out,
        **bench._public(scores),
        **bench.race_keys({"one_shell": race}),
        "card": torch.cuda.get_device_name() if device.startswith("cuda") else "cpu",
        "unweighted_per_s": report.unweighted_per_s,
        "flow_training_seconds": seconds,
        "flow_config": flow_sizes,
        "flow_training_rounds": bench._rounds_table(rounds),
    }


def _uncertainty(device: str, quick: bool) -> dict[str, Any]:
    from benchmarks import uncertainty as bench

    # the CPU benchmark's sizes: 112 s on an H200, flow training 43 s of it
    return bench.mixture_case(quick, device=device)


def _xsec(device: str, quick: bool) -> dict[str, Any]:
    from benchmarks import xsec as bench
    from numl_core.jobs import Progress
    from numl_core.xsec.config import XsecConfig
    from numl_core.xsec.workflow import fit_nucleus

    epochs = 20 if quick else 200
    out: dict[str, Any] = {"epochs": epochs}
    # the benchmark's carbon ensemble and the published 10 x 300 batch-norm network (50 members), timed per
    # 1000 epochs: the full runs (3000 and 40,000 epochs) scale linearly
    configs = {
        "benchmark": bench.config(quick, split="points", mc_dropout=0.0, epochs=epochs, device=device),
        "reference": XsecConfig.preset(
            "reference", epochs=epochs, mc_dropout=0.0, device=device, members=5 if quick else 50
        ),
    }
    for name, config in configs.items():
        boot = fit_nucleus(config, Progress())[0].summary["boot"]
        out[name] = {
            "members": config.members,
            "network": f"{config.depth}x{config.width}",
            "seconds_per_1000_epochs": boot["seconds"] * 1000 / epochs,
            "chi2_per_point_heldout_points": boot["chi2_test"],
            "chi2_per_point_train": boot["chi2_train"],
        }
    return out


SECTIONS: dict[str, Callable[[str, bool], dict[str, Any]]] = {
    "unfolding": _unfolding,
    "energy": _energy,
    "generator": _generator,
    "uncertainty": _uncertainty,
    "xsec": _xsec,
}


def run_section(name: str, device: str, quick: bool, out: Path) -> None:
    """Run one section in this process and write ``out`` (JSON)."""
    t0 = time.perf_counter()
    result = SECTIONS[name](device, quick)
    _synchronize(device)
    atomic_write_json(out, {**result, "wall_s": time.perf_counter() - t0})


def run_sections(names: list[str], device: str, quick: bool, scale: float = 1.0) -> dict[str, Any]:
    """Each section in a child process under ``BUDGET_S * scale`` seconds; failures are recorded."""
    report: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        for name in names:
            path = Path(tmp) / f"{name}.json"
            cmd = [
                sys.executable,
                "-m",
                "benchmarks.gpu",
                "--section",
                name,
                "--device",
                device,
                "--to",
                str(path),
            ]
            if quick:
                cmd.append("--quick")
            t0 = time.perf_counter()
            try:
                proc = subprocess.run(cmd, timeout=BUDGET_S[name] * scale, capture_output=True, text=True)
                ok = proc.returncode == 0 and path.exists()
                report[name] = (
                    json.loads(path.read_text())
                    if ok
                    else {"error": f"exit status {proc.returncode}", "stderr_tail": proc.stderr[-3000:]}
                )
            except subprocess.TimeoutExpired:
                report[name] = {"error": f"over its budget of {BUDGET_S[name] * scale:.0f} s"}
            logger.info(
                "%s: %.0f s%s",
                name,
                time.perf_counter() - t0,
                "" if "error" not in report[name] else " (failed)",
            )
    return report


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("names", nargs="*", help=f"sections (default: all of {', '.join(SECTIONS)})")
    parser.add_argument("--device", default="auto", help="torch device (default: cuda when present)")
    parser.add_argument("--quick", action="store_true", help="smoke-test sizes")
    parser.add_argument("--out", type=Path, default=RESULTS, help="folder for gpu.json (or gpu-quick.json)")
    parser.add_argument("--section", choices=list(SECTIONS), help=argparse.SUPPRESS)
    parser.add_argument("--to", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    device = str(resolve_device(args.device))
    if args.section:
        run_section(args.section, device, args.quick, args.to)
        return 0
    unknown = [n for n in args.names if n not in SECTIONS]
    if unknown:
        parser.error(f"unknown section(s) {unknown}; known: {', '.join(SECTIONS)}")
    t0 = time.perf_counter()
    # quick sizes may run on a CPU, where the GPU budgets are too tight
    sections = run_sections(args.names or list(SECTIONS), device, args.quick, 4.0 if args.quick else 1.0)
    record = {
        "benchmark": "gpu",
        "quick": args.quick,
        "date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
        "commit": git_commit(),
        "machine": machine_info(),
        "device": device,
        "device_name": torch.cuda.get_device_name() if device.startswith("cuda") else None,
        "wall_s": time.perf_counter() - t0,
        **sections,
    }
    atomic_write_json(args.out / f"gpu{'-quick' if args.quick else ''}.json", record)
    print_table("gpu", sections)
    return 0


if __name__ == "__main__":
    sys.exit(main())
