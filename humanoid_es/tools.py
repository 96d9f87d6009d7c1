"""ES's part in the tools: what `experiments.evaluate`, `export` and `sim2sim` do with an ES run.

`evaluate` rolls out the run's mean policy in MJX (`--episodes`, default 10) and reports
`eval_return`, `eval_length` and the rest of `Trainer.evaluate`'s means; `export` is the
reservoir with its recurrent state (`humanoid_es/export.py`); `sim2sim` plays the
exported model in Gymnasium's own Humanoid-v4 beside MJX's evaluation of the checkpoint
(`experiments/sim2sim.py` says which physics the reference runs under).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import numpy as np

from common import gymnasium_episodes, onnx_export, saved_run
from common.config import ConfigError, to_dict
from common.pipeline import Export, Options, Record
from humanoid_es import export as es_export

# The tools' flags an ES run takes beyond every run's.
TOOL_FLAGS = frozenset({"gymnasium", "reference", "profiles", "c_threads", "es", "gym_horizon"})
_EPISODES = 10


def evaluate(run: saved_run.SavedRun, options: Options) -> list[Record]:
    episodes = options["episodes"] or _EPISODES
    trainer, state = saved_run.restore(run)
    metrics = trainer.evaluate(state, jax.random.PRNGKey(options["seed"]), episodes=episodes)
    return [{"run": run.path, "physics": run.physics, "episodes": episodes,
             "iteration": int(state.iteration), **{k: float(v) for k, v in jax.device_get(metrics).items()}}]


def export(trainer: Any, state: Any, config: Any) -> Export:
    graph, inputs, outputs = es_export.graph(trainer.policy(state), state.obs_stats)
    meta = es_export.metadata(to_dict(config), trainer.env.config.load_mj_model(), trainer.env.config.frame_skip)
    return Export(graph, inputs, outputs, meta, carry=("h", "h_next"))


def sim2sim(run: saved_run.SavedRun, model: Callable[[], str], options: Options,
            reopen: Callable[[str | None], tuple[Any, Any]]) -> Record:
    if not options["gymnasium"]:
        raise ConfigError("--gymnasium: an ES run is checked in Gymnasium's Humanoid-v4; pass --gymnasium")
    path = model()
    policy = onnx_export.session(path, threads=1)
    size = int(onnx_export.read_metadata(path)["reservoir_size"])
    env = gymnasium_episodes.make()
    episodes, seed = options["episodes"], options["seed"]
    returns, lengths = [], []
    for i in range(episodes):
        h = np.zeros((1, size), np.float32)

        def act(obs):
            nonlocal h
            action, h = policy.run(["action", "h_next"], {"obs": obs[None].astype(np.float32), "h": h})
            return action[0].astype(np.float64)

        ret, steps = gymnasium_episodes.episode(env, act, seed=seed + i)
        returns.append(ret)
        lengths.append(steps)
    physics = "gym" if options["reference"] == "gym" else None
    trainer, state = reopen(physics)
    mjx = jax.device_get(trainer.evaluate(state, jax.random.PRNGKey(seed), episodes=episodes))
    gym_return, mjx_return = float(np.mean(returns)), float(mjx["eval_return"])
    return {"run": run.path, "onnx": path, "simulator": f"gymnasium {gymnasium_episodes.HUMANOID}",
            "episodes": episodes, "gymnasium_return": gym_return, "gymnasium_return_std": float(np.std(returns)),
            "gymnasium_length": float(np.mean(lengths)),
            "gymnasium_full_episodes": sum(steps >= env.spec.max_episode_steps for steps in lengths),
            "mjx_physics": physics or run.physics, "mjx_return": mjx_return, "mjx_length": float(mjx["eval_length"]),
            "mjx_full_episodes": int(mjx["eval_full_episodes"]),
            "ratio": gym_return / mjx_return if mjx_return else None, "iteration": int(state.iteration)}
