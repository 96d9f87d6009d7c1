"""ARS (Mania et al. 2018, V2) on Gymnasium's own Humanoid-v4 in MuJoCo C: the per-env-step
reference the ES pipeline is held to, measured on today's simulator rather than read from
2018's Humanoid-v1 logs.

    python -m experiments.ars_reference --budget=5e6 --seed=0 [--workers=2]

The settings are ARS's published Humanoid ones: a zero-initialised linear policy on
observations normalised by statistics of every training state so far (frozen within an
iteration; features with std < 1e-7 read 0), 230 directions all used, noise 0.0075, step
0.02 divided by the std of the iteration's returns, the survival bonus 5 removed in
training, actions left to MuJoCo to clamp (the control cost sees them unclamped, as in
Gymnasium). Every `--eval_every` iterations the mean policy is evaluated on
`--eval_episodes` episodes with the true reward. Records go to
`results_dir/es/<run_name>/metrics.jsonl` (`env_steps` counts training steps, as ARS's
logs do), so `experiments.curves` compares them with ES runs.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Sequence

import numpy as np
from absl import flags
from jaxtyping import Float

from common import cli, gymnasium_episodes

_BUDGET = flags.DEFINE_float("budget", 5e6, "Training env steps.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of directions and episodes.")
_WORKERS = flags.DEFINE_integer("workers", 2, "Processes rolling out directions.")
_DIRECTIONS = flags.DEFINE_integer("directions", 230, "Directions per iteration (all used).")
_NOISE = flags.DEFINE_float("noise", 0.0075, "Std of the parameter noise.")
_STEP = flags.DEFINE_float("step", 0.02, "Step size.")
_SHIFT = flags.DEFINE_float("shift", 5.0, "Per-step reward removed in training (the survival bonus).")
_EVAL_EVERY = flags.DEFINE_integer("eval_every", 5, "Iterations between evaluations.")
_EVAL_EPISODES = flags.DEFINE_integer("eval_episodes", 20, "Episodes per evaluation.")
_RESULTS = flags.DEFINE_string("results_dir", "results/screen", "Runs go to results_dir/es/<run_name>/.")
_RUN_NAME = flags.DEFINE_string("run_name", None, "Default: ars-v4-s<seed>.")

_ENV = None


def _env():
    global _ENV  # one env per worker process, built on first use
    if _ENV is None:
        _ENV = gymnasium_episodes.make()
    return _ENV


def episode(weights: np.ndarray, mean: np.ndarray, inv_std: np.ndarray, seed: int, shift: float):
    """One episode of a = W (s - mean) / std; returns (return, steps, sum s, sum s^2)."""
    s1, s2 = np.zeros_like(mean), np.zeros_like(mean)

    def act(obs):
        s1[:] += obs
        s2[:] += obs * obs
        return weights @ ((obs - mean) * inv_std)

    total, steps = gymnasium_episodes.episode(_env(), act, seed, shift)
    return total, steps, s1, s2


def ars_step(weights: Float[np.ndarray, "act obs"], deltas: Float[np.ndarray, "n act obs"],
             plus: Float[np.ndarray, " n"], minus: Float[np.ndarray, " n"],
             step: float) -> Float[np.ndarray, "act obs"]:
    """ARS V2's update W + step / (n sigma_r) sum_i (r+_i - r-_i) delta_i, every direction used.

    sigma_r is the std of all 2n returns of the iteration (ARS's scale-free step).
    """
    sigma_r = np.concatenate([plus, minus]).std()
    return weights + step / (len(plus) * sigma_r) * np.einsum("i,ijk->jk", plus - minus, deltas)


def state_normalizer(count: int, s1: Float[np.ndarray, " obs"],
                     s2: Float[np.ndarray, " obs"]) -> tuple[Float[np.ndarray, " obs"], Float[np.ndarray, " obs"]]:
    """(mean, 1 / std) of `count` states from their sum `s1` and sum of squares `s2`.

    Features with std < 1e-7 get 1 / std = 0, so a constant feature reads 0 (ARS's rule);
    the variance is floored at 0 because s2 / n - mean^2 can round below it.
    """
    mean = s1 / count
    std = np.sqrt(np.maximum(s2 / count - mean * mean, 0.0))
    return mean, np.where(std < 1e-7, 0.0, 1.0 / np.maximum(std, 1e-7))


def _pair(args):
    weights, delta, noise, mean, inv_std, seed, shift = args
    plus = episode(weights + noise * delta, mean, inv_std, seed, shift)
    minus = episode(weights - noise * delta, mean, inv_std, seed + 1, shift)
    return plus, minus


def _eval(args):
    weights, mean, inv_std, seed = args
    ret, steps, _, _ = episode(weights, mean, inv_std, seed, 0.0)
    return ret, steps


def main(argv: Sequence[str]) -> None:
    del argv
    run = os.path.join(_RESULTS.value, "es", _RUN_NAME.value or f"ars-v4-s{_SEED.value}")
    os.makedirs(run, exist_ok=True)
    with open(os.path.join(run, "config.json"), "w") as f:
        json.dump({k: flags.FLAGS[k].value for k in ("budget", "seed", "directions", "noise", "step", "shift",
                                                       "eval_every", "eval_episodes")}
                  | {"method": "ARS V2 on gymnasium Humanoid-v4 (MuJoCo C)"}, f, indent=2)
    rng = np.random.default_rng(_SEED.value)
    env = _env()
    n_obs, n_act = env.observation_space.shape[0], env.action_space.shape[0]
    weights = np.zeros((n_act, n_obs))
    count, s1, s2 = 0, np.zeros(n_obs), np.zeros(n_obs)
    mean, inv_std = np.zeros(n_obs), np.ones(n_obs)
    env_steps, iteration, start = 0, 0, time.perf_counter()
    with open(os.path.join(run, "metrics.jsonl"), "w") as log, \
            multiprocessing.get_context("fork").Pool(_WORKERS.value) as pool:
        while True:
            if iteration % _EVAL_EVERY.value == 0 or env_steps >= _BUDGET.value:
                seeds = rng.integers(2**31, size=_EVAL_EPISODES.value)
                evals = pool.map(_eval, [(weights, mean, inv_std, int(s)) for s in seeds])
                record = {"iteration": iteration, "env_steps": env_steps, "wall_seconds": time.perf_counter() - start,
                          "eval_return": float(np.mean([r for r, _ in evals])),
                          "eval_length": float(np.mean([n for _, n in evals]))}
                log.write(json.dumps(record) + "\n")
                log.flush()
                print(json.dumps(record), flush=True)
            if env_steps >= _BUDGET.value:
                break
            deltas = rng.standard_normal((_DIRECTIONS.value, n_act, n_obs))
            seeds = rng.integers(2**31 - 2, size=_DIRECTIONS.value)
            results = pool.map(_pair, [(weights, d, _NOISE.value, mean, inv_std, int(s), _SHIFT.value)
                                       for d, s in zip(deltas, seeds)])
            plus = np.array([p[0] for p, _ in results])
            minus = np.array([m[0] for _, m in results])
            weights = ars_step(weights, deltas, plus, minus, _STEP.value)
            for p, m in results:
                for _, steps, a, b in (p, m):
                    env_steps += steps
                    count += steps
                    s1 += a
                    s2 += b
            mean, inv_std = state_normalizer(count, s1, s2)
            iteration += 1


if __name__ == "__main__":
    cli.run(main)
