"""Compare ES runs at equal env steps: a table of eval returns at budgets, and one plot.

    python -m experiments.curves --runs=results/screen/es/base-s0,results/screen/es/obsars-s0 \
        --budgets=3e6,5e6 --plot=curves.png
    python -m experiments.curves --runs=results/screen/es/cpu35m-s0,... --budgets=1e7,3.5e7 \
        --plot=docs/es_cpu35m.png --band=5e5    # each variant's median over seeds, min-max band
    python -m experiments.curves --runs=results/screen/es/scale-p64-lr0.001-s0,... \
        --iterations=50,100 --reach=1000 --x=iteration --plot=scale.png   # population scaling

A run's figure at a budget is its last evaluation at or before that many env steps (the
rule ARS's logs are read with), so a run that stopped more than 10% short of a budget has
none there.
`--iterations` adds figures at iterations, read by the same rule, and `--reach=R` the
first evaluation at or above R (its env steps, iteration and wall seconds), the measure
of a population's speed.
Runs named `<variant>-s<seed>` are also grouped by variant: the median over seeds.
Prints one JSON line per run and per variant, then a Markdown table.
"""

from __future__ import annotations

import json
import math
import os
import re
import statistics
from collections.abc import Sequence

from absl import flags

from common import cli, results
from common.errors import UserError
from humanoid_es.hooks import ARS_MEDIAN, ARS_SOLVED_STEPS, SOLVED

_RUNS = flags.DEFINE_list("runs", [], "Run directories (results_dir/es/<run_name>).")
_BUDGETS = flags.DEFINE_list("budgets", ["3e6"], "Env-step budgets.")
_PLOT = flags.DEFINE_string("plot", "", "Write the eval curves of every run here (PNG), with ARS's median.")
_X = flags.DEFINE_enum("x", "env_steps", ["env_steps", "iteration"], "The plot's x axis; budgets stay env steps.")
_MARKS = flags.DEFINE_bool("marks", True, "Against env steps, mark 6,000 and where ARS's seeds reach it.")
_ITERATIONS = flags.DEFINE_list("iterations", [], "Also the eval return at these iterations.")
_REACH = flags.DEFINE_float("reach", 0.0, "If > 0, also where each run first evaluates at or above this return.")
_BAND = flags.DEFINE_float("band", 0.0, "If > 0, plot each variant's median over seeds with its min-max band, "
                           "read every this many env steps, in place of each run's curve.")


def _evals(run: str) -> list[dict]:
    path = os.path.join(run, "metrics.jsonl")
    if not os.path.isfile(path):
        raise UserError(f"--runs: no metrics.jsonl in {run!r}")
    with open(path) as f:
        records = [json.loads(line) for line in f if line.strip()]
    return [r for r in records if r.get("eval_return") is not None]


def at_budget(evals: Sequence[dict], budget: float, x: str = "env_steps") -> float | None:
    """The last eval return at or before `budget` env steps (or another record field `x`);
    None if the run stopped short."""
    if not evals or evals[-1][x] < budget * 0.9:
        return None
    before = [r for r in evals if r[x] <= budget]
    return before[-1]["eval_return"] if before else None


def first_reaching(evals: Sequence[dict], level: float) -> dict | None:
    """The env steps, iteration and wall seconds of the first evaluation at or above
    `level`; None if no evaluation reached it."""
    for r in evals:
        if r["eval_return"] >= level:
            return {k: r.get(k) for k in ("env_steps", "iteration", "wall_seconds")}
    return None


def _variant(run: str) -> str:
    return re.sub(r"-s\d+$", "", os.path.basename(os.path.normpath(run)))


def main(argv: Sequence[str]) -> None:
    del argv
    if not _RUNS.value:
        raise UserError("--runs: name at least one run directory")
    try:
        budgets = [float(b) for b in _BUDGETS.value]
    except ValueError:
        raise UserError(f"--budgets: must be numbers of env steps, got {_BUDGETS.value}") from None
    try:
        iterations = [int(i) for i in _ITERATIONS.value]
    except ValueError:
        raise UserError(f"--iterations: must be whole numbers, got {_ITERATIONS.value}") from None
    columns = [(f"eval@{b:g}", b, "env_steps", f"eval @ {b / 1e6:g}M") for b in budgets]
    columns += [(f"eval@it{i}", i, "iteration", f"eval @ it {i}") for i in iterations]
    reach = f"reach@{_REACH.value:g}" if _REACH.value > 0 else None
    table, by_variant, curves, runs_by_variant = [], {}, {}, {}
    for run in _RUNS.value:
        evals = _evals(run)
        runs_by_variant.setdefault(_variant(run), []).append(evals)
        curves[os.path.basename(os.path.normpath(run))] = [(e[_X.value], e["eval_return"]) for e in evals]
        row = {"run": run, **{key: at_budget(evals, at, x) for key, at, x, _ in columns},
               "env_steps": evals[-1]["env_steps"] if evals else 0,
               "wall_seconds": evals[-1].get("wall_seconds") if evals else None}
        if reach:
            row[reach] = first_reaching(evals, _REACH.value)
        print(json.dumps(row), flush=True)
        table.append(row)
        by_variant.setdefault(_variant(run), []).append(row)
    for name, rows in by_variant.items():
        med = {}
        for key, *_ in columns:
            vals = [r[key] for r in rows if r[key] is not None]
            med[key.replace("eval@", "median@")] = statistics.median(vals) if vals else None
        if reach:
            # The median seed's figure, counting a seed that never reached as never.
            hits = [r[reach] for r in rows]
            med["reached"] = sum(h is not None for h in hits)
            for k in ("env_steps", "iteration"):
                ordered = sorted((h[k] if h else math.inf) for h in hits)
                middle = statistics.median(ordered)
                med[f"median_reach_{k}"] = None if math.isinf(middle) else middle
        print(json.dumps({"variant": name, "seeds": len(rows), **med}), flush=True)
    heads = [head for *_, head in columns] + ([f"first >= {_REACH.value:g} (env steps, it)"] if reach else [])
    print("| run | " + " | ".join(heads) + " | env steps | wall s |")
    print("|---|" + "---|" * (len(heads) + 2))
    for r in table:
        cells = [("" if r[key] is None else f"{r[key]:.0f}") for key, *_ in columns]
        if reach:
            cells.append("" if r[reach] is None else f"{r[reach]['env_steps'] / 1e6:.2f}M, {r[reach]['iteration']}")
        wall = "" if r["wall_seconds"] is None else f"{r['wall_seconds']:.0f}"
        print(f"| {os.path.basename(r['run'])} | " + " | ".join(cells) + f" | {r['env_steps'] / 1e6:.2f}M | {wall} |")
    if _PLOT.value:
        bands = {}
        if _BAND.value > 0:
            bands = {f"{name} (median of {len(runs)}, min-max)": band(runs, _BAND.value, _X.value)
                     for name, runs in runs_by_variant.items()}
            curves = {}
        by_steps = _X.value == "env_steps"
        marks = by_steps and _MARKS.value
        results.plot_curves({k: v for k, v in curves.items() if v}, _PLOT.value, _X.value, "eval return",
                            reference=("ARS median (Humanoid-v1)", ARS_MEDIAN) if by_steps else None, bands=bands,
                            hlines=(("solved (6,000)", SOLVED),) if marks else (),
                            vlines=ARS_SOLVED_STEPS if marks else ())


def band(runs: Sequence[Sequence[dict]], every: float, x: str = "env_steps") -> results.Band:
    """Median, min and max over runs of the eval return at every `every` env steps (or
    iterations, with `x`), each read by `at_budget`: from the first budget every run has
    a figure at (a branched run starts late) to the last one every run reaches."""
    xs, low, middle, high = [], [], [], []
    end = min((evals[-1][x] for evals in runs if evals), default=0.0) / 0.9
    budget = every
    while runs and all(runs) and budget <= end:
        values = [at_budget(evals, budget, x) for evals in runs]
        if all(v is not None for v in values):
            xs.append(budget)
            low.append(min(values))
            middle.append(statistics.median(values))
            high.append(max(values))
        budget += every
    if not xs:
        raise UserError("--band: the runs have no evaluation in common; lower --band or run longer")
    return xs, low, middle, high


if __name__ == "__main__":
    cli.run(main)
