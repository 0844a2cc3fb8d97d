"""The ``numl`` command line.

``numl WORKFLOW run --config FILE.json`` runs any registered workflow with a progress
bar; ``numl runs list|show`` browses run directories; ``numl data generate`` writes a
built-in sample; ``numl app`` serves the dashboard.
"""

from __future__ import annotations

import importlib
import json
import logging
import os
import time
from pathlib import Path
from typing import Any

import click

from numl_core import workflows
from numl_core.config import ConfigError
from numl_core.data.schema import DataError
from numl_core.resume import check_resumable, run_config
from numl_core.runs import RunDir, RunStore

log = logging.getLogger("numl")

#: Errors whose message names what is wrong (a field, a file and row, a diverging loss term): the command
#: line shows the message alone.
NAMED_ERRORS = (ConfigError, DataError, FloatingPointError)


class _NumlGroup(click.Group):
    """Built-in commands plus one group per registered workflow, loaded on demand."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return [*super().list_commands(ctx), *workflows.available()]

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        command = super().get_command(ctx, name)
        if command is None and name in workflows.available():
            command = _workflow_group(workflows.get(name))
        return command


@click.group(cls=_NumlGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", is_flag=True, help="Log debug messages.")
def main(verbose: bool) -> None:
    """numl: machine learning for neutrino-physics analysis."""
    logging.basicConfig(
        level=logging.DEBUG if verbose else logging.WARNING, format="%(levelname)s %(name)s: %(message)s"
    )


@main.command()
@click.option("--port", default=5006, show_default=True, help="Port to serve on.")
@click.option(
    "--address", default="127.0.0.1", show_default=True, help="Interface to bind (localhost only by default)."
)
@click.option("--prefix", default="", help="URL prefix, e.g. when served behind jupyter-server-proxy.")
@click.option(
    "--runs", "runs_root", type=click.Path(file_okay=False), default=None, help="Run directory root."
)
@click.option(
    "--data", "data_root", type=click.Path(file_okay=False), default=None, help="Data directory root."
)
@click.option("--show", is_flag=True, help="Open a browser tab.")
@click.option(
    "--allow-origin",
    "allow_origins",
    multiple=True,
    metavar="HOST[:PORT]",
    help="Also accept the websocket from this origin, e.g. a JupyterHub's host (repeatable; also "
    "$NUML_ALLOW_ORIGINS, comma-separated).",
)
def app(
    port: int,
    address: str,
    prefix: str,
    runs_root: str | None,
    data_root: str | None,
    show: bool,
    allow_origins: tuple[str, ...],
) -> None:
    """Serve the dashboard (``panel serve app/main.py``)."""
    # the dashboard is a separate package that depends on numl_core, never the reverse
    try:
        server = importlib.import_module("app.server")
    except ModuleNotFoundError:
        raise click.ClickException("the dashboard package 'app' is not installed next to numl_core") from None
    from_env = [o.strip() for o in os.environ.get("NUML_ALLOW_ORIGINS", "").split(",") if o.strip()]
    origins = [*allow_origins, *from_env]
    raise SystemExit(server.serve(port, address, prefix, show, runs_root, data_root, origins))


# -- runs ------------------------------------------------------------------------------
@main.group()
def runs() -> None:
    """List and inspect run directories."""


@runs.command("list")
@click.option(
    "--root",
    type=click.Path(file_okay=False),
    default=None,
    help="Run root (default $NUML_RUNS or ./numl-runs).",
)
@click.option("--workflow", default=None, help="Only runs of this workflow.")
def runs_list(root: str | None, workflow: str | None) -> None:
    """One line per run: id, workflow, state."""
    infos = RunStore(root).list(workflow)
    if not infos:
        click.echo("no runs")
    for info in infos:
        click.echo(f"{info.get('id')}  {info.get('workflow', '?'):<12} {info.get('state', '?')}")


@runs.command("show")
@click.argument("run_id")
@click.option("--root", type=click.Path(file_okay=False), default=None)
def runs_show(run_id: str, root: str | None) -> None:
    """Config, state and result summary of one run."""
    try:
        run = RunStore(root).get(run_id)
    except (FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(json.dumps({"run": run.read_info(), "config": run.read_config_dict()}, indent=2, default=str))
    if (run.path / "results").exists():
        for key, value in run.load_result().items():
            click.echo(f"result {key}: {_describe(value)}")


def _describe(value: Any) -> str:
    shape = getattr(value, "shape", None)
    return f"{type(value).__name__} {shape}" if shape is not None else repr(value)[:200]


# -- data ------------------------------------------------------------------------------
@main.group()
def data() -> None:
    """Built-in samples."""


@data.command("generate")
@click.argument("sample")
@click.option("--n", "n_events", type=click.IntRange(min=1), default=100_000, show_default=True)
@click.option("--seed", type=int, default=0, show_default=True)
@click.option(
    "--out", type=click.Path(dir_okay=False), required=True, help="Output .parquet, .csv or .root file."
)
def data_generate(sample: str, n_events: int, seed: int, out: str) -> None:
    """Generate SAMPLE with N events and write it to OUT."""
    from numl_core.data.generators import SAMPLES
    from numl_core.data.io import write_table

    if sample not in SAMPLES:
        raise click.ClickException(f"unknown sample {sample!r}; known: {', '.join(SAMPLES)}")
    t0 = time.perf_counter()
    df = SAMPLES[sample](n_events, seed)
    try:
        write_table(df, out)
    except DataError as exc:
        raise click.ClickException(str(exc)) from None
    click.echo(f"wrote {len(df)} events of {sample} to {out} in {time.perf_counter() - t0:.1f} s")


# -- workflows -------------------------------------------------------------------------
def parse_set(items: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """``FIELD=VALUE`` overrides; VALUE is JSON when it parses (numbers, booleans, lists), else text.

    >>> parse_set(["epochs=5", "sample=file", "targets=[1, 2]"])
    {'epochs': 5, 'sample': 'file', 'targets': [1, 2]}
    """
    out: dict[str, Any] = {}
    for item in items:
        key, sep, text = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"--set {item!r}: expected FIELD=VALUE")
        try:
            out[key.strip()] = json.loads(text)
        except json.JSONDecodeError:
            out[key.strip()] = text
    return out


def resume_config(run: RunDir, wf: workflows.Workflow, config_path: str | None) -> Any:
    """The run's own config; a ``--config`` given with ``--resume`` must agree with it (device aside)."""
    cfg = run_config(run, wf)
    if config_path:
        given = wf.config_cls.from_json(Path(config_path))
        differ = [k for k, v in given.to_dict().items() if k != "device" and cfg.to_dict().get(k) != v]
        if differ:
            raise ConfigError(
                f"{config_path}: differs from run {run.id!r}'s config in {differ}; a resume continues the "
                "run with its own config (start a new run to change it)"
            )
    return cfg


def prepare_config(
    wf: workflows.Workflow,
    config_path: str | None,
    overrides: dict[str, Any],
    run: RunDir | None,
) -> Any:
    """The validated config of a new run or of a resumed one, with the command-line ``overrides``; its
    device is checked here, before any run folder is made."""
    if run is not None:
        cfg = resume_config(run, wf, config_path)
    else:
        cfg = wf.config_cls.from_json(Path(config_path)) if config_path else wf.config_cls()
    unknown = [k for k in overrides if k not in wf.config_cls.field_names()]
    if unknown:
        raise ConfigError(f"{wf.config_cls.__name__} has no field(s) {unknown} to override")
    if overrides:
        cfg = cfg.copy(**overrides)
    if "device" in wf.config_cls.field_names():
        from numl_core.device import resolve_device

        try:
            resolve_device(cfg.device)
        except ValueError as exc:
            raise ConfigError(f"{wf.config_cls.__name__}.device: {exc}") from None
    return cfg


def run_workflow(
    wf: workflows.Workflow,
    action: str,
    config_path: str | None,
    device: str | None,
    seed: int | None,
    out: str | None,
    resume: str | None,
    sets: tuple[str, ...] = (),
) -> Any:
    """Run one workflow action in the job runner, with a tqdm bar; return its result."""
    store = RunStore(out)
    try:
        overrides = {k: v for k, v in (("device", device), ("seed", seed)) if v is not None}
        overrides.update(parse_set(sets))
        run = store.get(resume) if resume else None
        if run is not None:
            check_resumable(run, wf, action)
        cfg = prepare_config(wf, config_path, overrides, run)
    except (ConfigError, FileNotFoundError, ValueError) as exc:
        raise click.ClickException(str(exc)) from None
    if run is None:
        run = store.create(wf.name, cfg)
        run.update_info({"action": action})
    fn = wf.run if action == "run" else wf.actions[action]
    job = _follow(fn, cfg, run, f"{wf.name} {action}")
    click.echo(f"run {run.id}: {job.state} ({run.path})")
    if job.state == "failed":
        if isinstance(job.error, NAMED_ERRORS):  # the message says what is wrong; run.json keeps the trace
            raise click.ClickException(f"{type(job.error).__name__}: {job.error}")
        click.echo(job.traceback, err=True)
        raise SystemExit(1)
    if job.state == "cancelled":
        raise SystemExit(130)
    return job.result


def _follow(fn: Any, cfg: Any, run: RunDir, label: str) -> Any:
    """Run ``fn(cfg)`` on ``run`` in a job runner with a tqdm bar and the log; Ctrl-C cancels it."""
    from tqdm import tqdm

    from numl_core.jobs import JobRunner
    from numl_core.runs import RunLocked

    runner = JobRunner(max_workers=1, torch_threads=None)
    bar = tqdm(total=100, desc=label, unit="%", bar_format="{l_bar}{bar}| {elapsed}<{remaining}")
    try:
        job = runner.submit(fn, cfg, run, label=label)
    except RunLocked as exc:
        bar.close()
        runner.shutdown()
        raise click.ClickException(str(exc)) from None
    cursor = 0
    try:
        while job.wait(0.25) not in ("done", "failed", "cancelled"):
            bar.n = round(job.progress.fraction * 100)
            bar.set_postfix_str(job.progress.message[:60])
            lines, cursor = job.progress.read_log(cursor)
            for line in lines:
                bar.write(line)
    except KeyboardInterrupt:
        job.cancel()
        job.wait()
    bar.n = round(job.progress.fraction * 100)
    bar.close()
    runner.shutdown()
    return job


def _workflow_group(wf: workflows.Workflow) -> click.Group:
    group = click.Group(name=wf.name, help=f"{wf.title}: {wf.description}")
    for action in ("run", *wf.actions):

        @click.command(name=action, help=f"{action.capitalize()} the {wf.title.lower()} workflow.")
        @click.option(
            "--config",
            "config_path",
            type=click.Path(dir_okay=False),
            default=None,
            help="JSON config (default: built-in defaults).",
        )
        @click.option("--device", default=None, help="auto, cpu, cuda or mps (overrides the config).")
        @click.option("--seed", type=int, default=None, help="Random seed (overrides the config).")
        @click.option("--out", type=click.Path(file_okay=False), default=None, help="Run directory root.")
        @click.option("--resume", default=None, help="Resume this run id from its last checkpoint.")
        @click.option(
            "--set",
            "sets",
            multiple=True,
            metavar="FIELD=VALUE",
            help="Override one config field (repeatable); VALUE is JSON (5, true, [1, 2]) or text.",
        )
        def command(
            config_path: str | None,
            device: str | None,
            seed: int | None,
            out: str | None,
            resume: str | None,
            sets: tuple[str, ...],
            _action: str = action,
            **fields: str | None,
        ) -> None:
            extra = tuple(
                f"{name}={json.dumps(value)}" for name, value in fields.items() if value is not None
            )
            run_workflow(wf, _action, config_path, device, seed, out, resume, (*sets, *extra))

        for flag, name in wf.cli_options.get(action, {}).items():
            doc = wf.config_cls.param[name].doc or ""
            command = click.option(flag, name, default=None, help=f"{doc} (sets {name})")(command)
        group.add_command(command)

    @click.command(name="config", help="Print the default config as JSON (edit it and pass --config).")
    def config_cmd() -> None:
        click.echo(wf.config_cls().to_json())

    group.add_command(config_cmd)
    return group


if __name__ == "__main__":
    main()
