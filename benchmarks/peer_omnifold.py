"""Run the ``omnifold`` package's MultiFold on events exported by ``benchmarks/unfolding.py``.

Runs inside the peer's own virtualenv (TensorFlow 2.15 / Keras 2 and ``omnifold`` 0.1.36), so it imports
nothing from numl; TensorFlow and omnifold are imported only in :func:`main`.

    python peer_omnifold.py events.npz pushed.npz --iterations 5 --epochs 10 --workdir /tmp/x

Input arrays (npz): ``reco_mc`` (N, Dr) and ``gen_mc`` (N, Dt) float32 features, ``pass_reco`` and
``pass_gen`` (N,) bool, ``mc_weight`` (N,), ``reco_data`` (Nd, Dr), ``pass_reco_data`` (Nd,) bool and
``data_weight`` (Nd,). Output (npz): ``push`` (N,) float64, the last iteration's step-2 weight factors
(they multiply ``mc_weight``), ``seconds`` (wall time of ``MultiFold.Unfold``), ``tensorflow`` and
``omnifold`` (package versions).
"""

from __future__ import annotations

import argparse
import logging
import time
from importlib import metadata
from pathlib import Path

import numpy as np

logger = logging.getLogger("peer_omnifold")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options; the training settings mirror numl's ``OmniFoldSettings``."""
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("inputs", type=Path, help="npz with the exported events")
    parser.add_argument("output", type=Path, help="npz to write the push weights and the wall time to")
    parser.add_argument("--iterations", type=int, default=5, help="OmniFold iterations")
    parser.add_argument("--epochs", type=int, default=20, help="most epochs per classifier fit")
    parser.add_argument("--batch-size", type=int, default=10_000, help="events per mini-batch")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--patience", type=int, default=3, help="early-stopping patience in epochs")
    parser.add_argument("--hidden", type=int, nargs="+", default=[100, 100], help="hidden-layer widths")
    parser.add_argument("--activation", default="relu", help="hidden-layer activation (numl uses relu)")
    parser.add_argument(
        "--seed", type=int, default=0, help="seeds python's, numpy's and TensorFlow's generators"
    )
    parser.add_argument(
        "--workdir", type=Path, default=Path("."), help="folder for MultiFold's weights and log"
    )
    args = parser.parse_args(argv)
    for name in ("iterations", "epochs", "batch_size", "patience"):
        if getattr(args, name) < 1:
            parser.error(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="peer_omnifold: %(message)s")
    import tensorflow as tf
    from omnifold import MLP, DataLoader, MultiFold

    tf.keras.utils.set_random_seed(args.seed)  # seeds python, numpy (MultiFold's shuffles) and TensorFlow
    events = np.load(args.inputs)
    mc = DataLoader(
        reco=events["reco_mc"],
        pass_reco=events["pass_reco"],
        gen=events["gen_mc"],
        pass_gen=events["pass_gen"],
        weight=events["mc_weight"].astype(np.float32),
        normalize=False,
    )
    data = DataLoader(
        reco=events["reco_data"],
        pass_reco=events["pass_reco_data"],
        weight=events["data_weight"].astype(np.float32),
        normalize=False,
    )
    model_reco = MLP(events["reco_mc"].shape[1], layer_sizes=args.hidden, activation=args.activation)
    model_gen = MLP(events["gen_mc"].shape[1], layer_sizes=args.hidden, activation=args.activation)
    args.workdir.mkdir(parents=True, exist_ok=True)
    unfolding = MultiFold(
        "benchmark",
        model_reco,
        model_gen,
        data,
        mc,
        weights_folder=str(args.workdir / "weights"),
        log_folder=str(args.workdir),
        niter=args.iterations,
        batch_size=args.batch_size,
        epochs=args.epochs,
        lr=args.lr,
        early_stop=args.patience,
    )
    logger.info("%d MC and %d data events, %d iterations", len(mc.reco), len(data.reco), args.iterations)
    t0 = time.perf_counter()
    unfolding.Unfold()
    seconds = time.perf_counter() - t0
    logger.info("MultiFold.Unfold took %.1f s", seconds)
    np.savez(
        args.output,
        push=np.asarray(unfolding.weights_push, np.float64),
        seconds=np.float64(seconds),
        tensorflow=np.str_(tf.__version__),
        omnifold=np.str_(metadata.version("omnifold")),
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
