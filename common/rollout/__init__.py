"""Fixed-shape rollouts of any registered env, in the three forms the pipelines use.

* Episodes (`episodes.rollout`): one episode per member of a batch, finished members
  frozen, optional early exit; with a `measure`, per-step figures summed per episode.
  ES evaluates its noise-free policy with it and PPO+AMP its deterministic walker.
* Population (`population.evaluate_population`): a population's episodes in chunks or
  as a work queue, sharded by candidate over the mesh; candidates come from an index
  (perturbative ES) or a `[population, params]` array (evosax strategies).
* Training (`training.auto_reset`): every env steps a fixed number of times and finished
  episodes restart (PPO+AMP's on-policy rollout).
* Trajectory (`trajectory.record`): the same auto-reset play of one policy, recording
  positions, observations, carries and actions per step (videos, the export check).

Every shape (batch, horizon, chunk) is static.
"""

from common.rollout.episodes import ActFn, EpisodeBatch, InitCarryFn, MeasureFn, Outcome, rollout, select
from common.rollout.population import CandidateFn, evaluate_population, rollout_queue
from common.rollout.training import Running, Step, auto_reset
from common.rollout.trajectory import Trajectory, record

__all__ = [
    "ActFn", "CandidateFn", "EpisodeBatch", "InitCarryFn", "MeasureFn", "Outcome", "Running", "Step", "Trajectory",
    "auto_reset", "evaluate_population", "record", "rollout", "rollout_queue", "select",
]
