"""Run directories: `results_dir/<experiment>/<run_name>/` as DESIGN.md lays them out.

    config.json    the resolved config (written once; guards against reuse by another config)
    metrics.jsonl  one JSON object per iteration, flushed as written
    metrics.csv    the same records, for spreadsheets
    summary.json   final and best figures, versions, devices, wall time
    checkpoints/   orbax
    plots/         learning curves (PNG)
    videos/        rollouts of the policy (final.mp4 at the end of training)
    events.out.tfevents.*  TensorBoard scalars: every number of every record, by iteration

Opening a directory made by a different config is refused before anything is written;
the same config (up to `RESUMABLE_FIELDS`) reopens it for resuming.
"""

from __future__ import annotations

import csv
import hashlib
import json
import math
import os
import shutil
from collections.abc import Sequence
from typing import Any

from matplotlib.figure import Figure
from tensorboardX import SummaryWriter

from common.config import ConfigError, completed, fingerprint
from common.errors import UserError

# Fields that may change between a run and its resumption.
RESUMABLE_FIELDS = ("num_iterations", "max_env_steps", "results_dir", "run_name", "compile_cache_dir", "eval_every",
                    "eval_every_env_steps", "checkpoints_keep_every", "cpu_devices", "video_seconds", "tensorboard")


def run_name(config: dict[str, Any]) -> str:
    """The config's `run_name`, or a name made from a hash of the fields a resume may not change."""
    return config.get("run_name") or f"cfg-{fingerprint(config, RESUMABLE_FIELDS)}"


def atomic_write_json(path: str, obj: Any) -> None:
    """Writes `obj` as JSON to `path` through a temporary file: a reader never sees half of it."""
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        json.dump(obj, f, indent=2, sort_keys=True, default=str)
        f.write("\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def file_sha256(path: str) -> str:
    """The SHA-256 of a file's bytes, hex."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def keep_input(run_path: str, field: str, source: str, name: str) -> dict[str, str]:
    """Copies the input file `source` (config field `field`) into the run as `name`, or,
    where the run already holds one (a resumed run), checks that `source` is the same
    file; returns {"source", "copy", "sha256"} for the run's records."""
    copy = os.path.join(run_path, name)
    digest = file_sha256(source)
    if os.path.exists(copy):
        kept = file_sha256(copy)
        if kept != digest:
            raise UserError(f"{field}: {source} (sha256 {digest[:12]}) is not the file this run started with "
                            f"({copy}, sha256 {kept[:12]}); pass that file, or start a new run_name")
    else:
        tmp = f"{copy}.tmp{os.getpid()}"
        shutil.copyfile(source, tmp)
        os.replace(tmp, copy)
    return {"source": source, "copy": copy, "sha256": digest}


def read_config(run_path: str) -> dict[str, Any]:
    """A run directory's config.json; a `ConfigError` (its text completes a sentence about
    the run) if there is none or it does not parse."""
    path = os.path.join(run_path, "config.json")
    if not os.path.isfile(path):
        raise ConfigError("no config.json in it (not a run directory)")
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, json.JSONDecodeError) as e:
        raise ConfigError(f"its config.json is unreadable ({e})") from None


def read_records(run_path: str) -> list[dict[str, Any]]:
    """A run's metrics.jsonl records, up to a line cut short by a kill (everything after
    it is redone on resume anyway); none if it has no records yet."""
    path = os.path.join(run_path, "metrics.jsonl")
    if not os.path.exists(path):
        return []
    records = []
    with open(path) as f:
        for line in f:
            line = line.strip()
            if not line:
                continue
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                break
    return records


def _finite_or_none(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


class RunDir:
    """One run's results directory.

    With `writer=False` (every process of a multi-process run but the first) it reads the
    run's records and keeps later ones in memory, writing nothing. A resumed run's
    config.json is compared with `config` after taking the fields it lacks from
    `defaults` (the values that keep a run from before a field existed as it ran).
    """

    def __init__(self, results_dir: str, experiment: str, run_name: str, config: dict[str, Any],
                 tensorboard: bool = False, writer: bool = True, defaults: dict[str, Any] | None = None):
        self.path = os.path.join(results_dir, experiment, run_name)
        self.config = config
        self.writer = writer
        self._tensorboard = tensorboard and writer
        self._events: SummaryWriter | None = None
        config_path = os.path.join(self.path, "config.json")
        self.resumed = os.path.exists(config_path)
        if self.resumed:
            try:
                with open(config_path) as f:
                    existing = json.load(f)
            except (OSError, json.JSONDecodeError) as e:
                raise ConfigError(f"run_name: {config_path} is unreadable ({e}); choose another run_name") from None
            # A field added since the run was made reads the value that kept its behaviour.
            existing = completed(existing, defaults or {})
            differ = sorted(
                k for k in set(existing) | set(config)
                if k not in RESUMABLE_FIELDS and existing.get(k) != config.get(k)
            )
            if differ:
                raise ConfigError(
                    f"run_name: {self.path} holds a run made with a different config "
                    f"(fields {differ} differ); choose another --config.run_name"
                )
        if writer:
            for sub in ("checkpoints", "plots", "videos"):
                os.makedirs(os.path.join(self.path, sub), exist_ok=True)
            atomic_write_json(config_path, config)
        self._records = self._read_records()
        self._index_columns()

    def sub(self, name: str) -> str:
        return os.path.join(self.path, name)

    @property
    def records(self) -> list[dict[str, Any]]:
        return list(self._records)

    def _read_records(self) -> list[dict[str, Any]]:
        return read_records(self.path)

    def truncate_after(self, iteration: int) -> None:
        """Drops records past `iteration` (logged after the checkpoint a resume starts from)."""
        self._records = [r for r in self._records if r.get("iteration", -1) <= iteration]
        self._index_columns()
        if not self.writer:
            return
        self._rewrite()
        if self._tensorboard:
            self.close()
            # TensorBoard drops what earlier event files hold from the purge step on, so
            # a resumed run's curves show the redone iterations once.
            # The suffix keeps a resume within the same second from overwriting the first file.
            self._events = SummaryWriter(self.path, purge_step=iteration + 1 if iteration >= 0 else None,
                                         filename_suffix=f".from{iteration + 1}")

    def close(self) -> None:
        """Flushes and closes the TensorBoard writer (records themselves are always on disk)."""
        if self._events is not None:
            self._events.close()
            self._events = None

    def _rewrite(self) -> None:
        tmp = self.sub("metrics.jsonl.tmp")
        with open(tmp, "w") as f:
            for r in self._records:
                f.write(json.dumps(r, sort_keys=True) + "\n")
        os.replace(tmp, self.sub("metrics.jsonl"))
        self._write_csv()

    def _index_columns(self) -> None:
        # Every key of every record, in order of first appearance: the CSV's columns.
        # Kept as an ordered set beside the records, since rebuilding it on each `log`
        # costs O(records x keys) and made a 2,000-iteration run's logging quadratic
        # (1.3 s per iteration by iteration 1,100, more than the iteration itself).
        self._column_set: dict[str, None] = {}
        for r in self._records:
            self._column_set.update(dict.fromkeys(r))

    def _columns(self) -> list[str]:
        return list(self._column_set)

    def _write_csv(self) -> None:
        cols = self._columns()
        tmp = self.sub("metrics.csv.tmp")
        with open(tmp, "w", newline="") as f:
            w = csv.DictWriter(f, fieldnames=cols)
            w.writeheader()
            for r in self._records:
                w.writerow(r)
        os.replace(tmp, self.sub("metrics.csv"))

    def log(self, record: dict[str, Any]) -> None:
        """Appends one record to metrics.jsonl (flushed) and metrics.csv."""
        record = {k: _finite_or_none(v) for k, v in record.items()}
        new_columns = any(k not in self._column_set for k in record)
        self._records.append(record)
        self._column_set.update(dict.fromkeys(record))
        if not self.writer:
            return
        with open(self.sub("metrics.jsonl"), "a") as f:
            f.write(json.dumps(record, sort_keys=True) + "\n")
            f.flush()
            os.fsync(f.fileno())
        if self._tensorboard:
            if self._events is None:
                self._events = SummaryWriter(self.path)
            step = int(record.get("iteration", len(self._records) - 1))
            for k, v in record.items():
                if isinstance(v, (int, float)) and not isinstance(v, bool) and k != "iteration":
                    self._events.add_scalar(k, v, step)
            self._events.flush()
        if new_columns or not os.path.exists(self.sub("metrics.csv")):
            self._write_csv()
        else:
            with open(self.sub("metrics.csv"), "a", newline="") as f:
                csv.DictWriter(f, fieldnames=self._columns()).writerow(record)

    def write_summary(self, summary: dict[str, Any]) -> None:
        if self.writer:
            atomic_write_json(self.sub("summary.json"), {k: _finite_or_none(v) for k, v in summary.items()})

    def plot(self, x: str, ys: Sequence[str], filename: str, title: str = "",
             reference: tuple[str, Sequence[tuple[float, float]]] | None = None, **marks: Any) -> str | None:
        """Plots columns `ys` against `x` from the records; returns the PNG path.

        `reference` is a labelled curve drawn beside them (a published baseline); `marks`
        are `plot_curves`' `hlines` and `vlines`.
        """
        if not self.writer:
            return None
        series = {y: [(r[x], r[y]) for r in self._records if r.get(x) is not None and r.get(y) is not None] for y in ys}
        series = {y: pts for y, pts in series.items() if pts}
        if not series:
            return None
        out = self.sub(os.path.join("plots", filename))
        plot_curves(series, out, x, title=title or os.path.basename(self.path), reference=reference, **marks)
        return out


Band = tuple[Sequence[float], Sequence[float], Sequence[float], Sequence[float]]


def plot_curves(series: dict[str, Sequence[tuple[float, float]]], path: str, xlabel: str, title: str = "",
                reference: tuple[str, Sequence[tuple[float, float]]] | None = None, *,
                bands: dict[str, Band] | None = None, hlines: Sequence[tuple[str, float]] = (),
                vlines: Sequence[tuple[str, float]] = ()) -> None:
    """Writes a PNG of labelled (x, y) curves, with `reference` drawn dashed in black,
    `bands` (label: xs, low, middle, high) as a line over a shaded range, and labelled
    horizontal and vertical marks (a target return, where a baseline reaches it)."""
    # The object API draws without pyplot's global figure state or a GUI backend.
    fig = Figure(figsize=(7, 4), dpi=120)
    ax = fig.subplots()
    for label, pts in series.items():
        xs, vs = zip(*pts)
        ax.plot(xs, vs, marker="o" if len(pts) < 30 else None, label=label)
    for label, (xs, low, middle, high) in (bands or {}).items():
        (line,) = ax.plot(xs, middle, label=label)
        ax.fill_between(xs, low, high, color=line.get_color(), alpha=0.2)
    if reference is not None:
        label, pts = reference
        xs, vs = zip(*pts)
        ax.plot(xs, vs, "k--", marker="s", label=label)
    styles = (":", "-.", "--")
    for i, (label, y) in enumerate(hlines):
        ax.axhline(y, color="tab:gray", linestyle=styles[i % 3], linewidth=1, label=label)
    for i, (label, x) in enumerate(vlines):
        ax.axvline(x, color="tab:red", linestyle=styles[i % 3], linewidth=1, label=label)
    ax.set_xlabel(xlabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(path)


def plot_bars(panels: dict[str, dict[str, float | None]], path: str, title: str = "",
              targets: dict[str, float] | None = None) -> None:
    """Writes a PNG with one bar panel per figure (`{panel: {bar label: value}}`; None
    draws no bar) and a dashed line at a panel's value in `targets`."""
    fig = Figure(figsize=(3.2 * len(panels), 4), dpi=120)
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    for ax, (name, bars) in zip(axes, panels.items()):
        labels = list(bars)
        ax.bar(range(len(labels)), [0.0 if v is None else v for v in bars.values()], color="tab:blue")
        ax.set_xticks(range(len(labels)), labels, rotation=60, ha="right", fontsize=7)
        if targets and name in targets:
            ax.axhline(targets[name], color="k", linestyle="--", linewidth=1)
        ax.set_title(name, fontsize=9)
        ax.grid(alpha=0.3, axis="y")
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    tmp = f"{path}.tmp.png"
    fig.savefig(tmp)
    os.replace(tmp, path)
