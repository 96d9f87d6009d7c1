"""Independent starts, the longest-lived one continued: a run that a lunging seed cannot trap.

By ~4M env steps a humanoid ES run has settled either into a lunge that falls after
100-180 steps (its return stalls near 1,000 however long it trains) or into a gait whose
episodes keep lengthening to the 1,000-step walk; under es_cpu one seed of seven so far
started as the walker did (BENCHMARKS.md, "Independent starts"). With `starts = K > 1` a run is K
independent runs (seeds seed x K + k) to `start_env_steps` each, one after another; the
start whose last evaluation's episodes lasted longest (its return breaks ties) continues
to `max_env_steps` less every other start's env steps, so the run counts all of them.

Each start is an ordinary run directory, `<run_name>.start<k>` (no video until it is
continued): the same command resumes whichever stopped, and the chosen start's directory
holds the checkpoints, the final video and what `experiments.export` reads.
`<run_name>/` holds `starts.json` (each start's figures at the choice, and the choice)
and `metrics.jsonl`: the starts' records one after another, then the continuation's,
each placed at the env steps the whole run had spent when it was logged; `plots/` draws it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Sequence
from typing import Any

import ml_collections
from absl import logging

from common import checkpoint, config as config_lib, host_loop, launch, processes, results
from common.config import ConfigError

Record = dict[str, Any]
CHOICE_FIELDS = ("eval_length", "eval_return", "eval_full_episodes", "eval_x_velocity_mean")


def start_config(config: ml_collections.ConfigDict, name: str, k: int, max_env_steps: int,
                 video_seconds: float = 0.0) -> ml_collections.ConfigDict:
    """Start `k`'s own config (the run named `name`): one run of its own seed, stopping at
    `max_env_steps`."""
    c = ml_collections.ConfigDict(config_lib.to_dict(config))
    c.run_name = f"{name}.start{k}"
    c.seed = config.seed * config.starts + k
    c.starts = 1
    c.max_env_steps = max_env_steps
    c.video_seconds = video_seconds
    return c


def until_choice(records: Sequence[Record], start_env_steps: int) -> list[Record]:
    """A start's records up to the one whose iteration crossed `start_env_steps`, which
    the loop evaluates; all of them where it has not crossed yet."""
    for i, r in enumerate(records):
        if r.get("env_steps", 0) >= start_env_steps:
            return list(records[: i + 1])
    return list(records)


def finished(run_path: str, start_env_steps: int) -> bool:
    """Whether the start in `run_path` has crossed `start_env_steps` and saved that iteration."""
    if not os.path.isfile(os.path.join(run_path, "metrics.jsonl")):
        return False
    records = until_choice(results.read_records(run_path), start_env_steps)
    last = records[-1] if records else {}
    return (last.get("env_steps", 0) >= start_env_steps and "eval_return" in last
            and max(checkpoint.saved_steps(run_path), default=-1) >= last["iteration"])


def choose(figures: Sequence[Record]) -> int:
    """The start to continue: the longest evaluation episodes, then the higher return. A
    lunge earns its return fast and falls; a gait's episodes lengthen before it pays."""
    return max(range(len(figures)), key=lambda k: (figures[k]["eval_length"], figures[k]["eval_return"]))


def combine(starts: Sequence[Sequence[Record]], chosen: int, continuation: Sequence[Record]) -> list[Record]:
    """The run's curve: each start's records (up to its choice) after the previous starts'
    env steps and wall time, then the chosen start's later records after every other
    start's; each keeps its own figures as `start_env_steps` and `start_wall_seconds`."""
    clocks = ("env_steps", "wall_seconds")

    def placed(r: Record, k: int, offset: dict[str, float]) -> Record:
        return {**r, "start": k, **{f"start_{c}": r.get(c, 0) for c in clocks},
                **{c: offset[c] + r.get(c, 0) for c in clocks}}

    out, spent = [], dict.fromkeys(clocks, 0)
    for k, records in enumerate(starts):
        out += [placed(r, k, spent) for r in records]
        spent = {c: spent[c] + records[-1].get(c, 0) for c in clocks}
    others = {c: spent[c] - starts[chosen][-1].get(c, 0) for c in clocks}
    return out + [placed(r, chosen, others) for r in continuation]


def train(config: ml_collections.ConfigDict, pipeline: host_loop.Pipeline) -> dict[str, Any]:
    """The ES training command's run: `run`'s starts where `config.starts` > 1, else one run."""
    return run(config, pipeline) if config.starts > 1 else host_loop.run(config, pipeline)


def run(config: ml_collections.ConfigDict, pipeline: host_loop.Pipeline) -> dict[str, Any]:
    """Runs (or resumes) every start, then the chosen one's continuation; returns its summary,
    or the summary of the start a signal stopped."""
    pipeline.validate(config, 1)
    name = results.run_name(config_lib.to_dict(config))
    base = os.path.join(config.results_dir, pipeline.experiment)
    own = os.path.join(base, name)
    if os.path.exists(os.path.join(own, "config.json")):
        raise ConfigError(f"config.run_name: {own} holds a run of one start; name this run of "
                          f"{config.starts} starts otherwise")
    # As `host_loop.run` does, once for every start: the device split, then the processes.
    launch.request_cpu_devices(config.cpu_devices)
    processes.initialize()
    main = processes.is_main()
    paths = [os.path.join(base, f"{name}.start{k}") for k in range(config.starts)]
    for k, path in enumerate(paths):
        if finished(path, config.start_env_steps):
            continue
        logging.info("start %d of %d (seed %d) to %d env steps", k + 1, config.starts,
                     config.seed * config.starts + k, config.start_env_steps)
        summary = host_loop.run(start_config(config, name, k, config.start_env_steps), pipeline)
        if summary["stopped_by_signal"]:
            return summary
    starts = [until_choice(results.read_records(p), config.start_env_steps) for p in paths]
    figures = [{"start": k, "seed": config.seed * config.starts + k, "run_dir": paths[k],
                "env_steps": records[-1]["env_steps"], **{f: records[-1].get(f) for f in CHOICE_FIELDS}}
               for k, records in enumerate(starts)]
    chosen = choose(figures)
    others = sum(f["env_steps"] for f in figures) - figures[chosen]["env_steps"]
    logging.info("continuing start %d (%.0f-step evaluation episodes; the starts': %s)", chosen,
                 figures[chosen]["eval_length"], ", ".join(f"{f['eval_length']:.0f}" for f in figures))
    if main:
        _write(own, figures, chosen, combine(starts, chosen, []))
    continued = start_config(config, name, chosen, config.max_env_steps - others, config.video_seconds)
    summary = host_loop.run(continued, pipeline)
    summary = {**summary, "env_steps": others + summary["env_steps"], "chosen_start": chosen,
               "chosen_run_dir": paths[chosen]}
    if main:
        curve = combine(starts, chosen, results.read_records(paths[chosen])[len(starts[chosen]):])
        _write(own, figures, chosen, curve)
        summary["wall_seconds"] = curve[-1]["wall_seconds"]
        results.atomic_write_json(os.path.join(own, "summary.json"), summary)
    return summary


def _write(path: str, figures: Sequence[Record], chosen: int, records: Sequence[Record]) -> None:
    os.makedirs(os.path.join(path, "plots"), exist_ok=True)
    results.atomic_write_json(os.path.join(path, "starts.json"), {"chosen": chosen, "starts": list(figures)})
    tmp = os.path.join(path, "metrics.jsonl.tmp")
    with open(tmp, "w") as f:
        f.writelines(json.dumps(r, sort_keys=True) + "\n" for r in records)
    os.replace(tmp, os.path.join(path, "metrics.jsonl"))
    series: dict[str, list[tuple[float, float]]] = {}
    for r in records:
        if r.get("eval_return") is None:
            continue
        continued = r["start_env_steps"] > figures[r["start"]]["env_steps"]
        label = f"start {r['start']}" + (", continued" if continued else "")
        series.setdefault(label, []).append((r["env_steps"], r["eval_return"]))
    results.plot_curves(series, os.path.join(path, "plots", "learning_curve.png"), "env_steps (all starts)",
                        title=f"{os.path.basename(path)}: eval return of each start")
