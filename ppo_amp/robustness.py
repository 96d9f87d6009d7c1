"""The robustness suite: the deterministic walker under the stresses of the robot's plan.

Each scenario fixes how an episode's physics, sensors, pushes and latency are drawn
(`Scenario`, arrays, so every scenario runs in one compiled program: the stresses are
data, not code). Episodes start standing at a held command, as in
`ppo_amp.evaluate`, whose per-step figures they share; the suite adds per-joint torque,
mechanical power, cost of transport and the net distance walked.

    nominal      the MJCF's physics, no noise, pushes or latency
    friction     floor friction uniform in [0.4, 1.25] per episode
    push         a 10 N push to the base's left or right, 0.1 s long, every 2-4 s
    mass         every link's mass (and inertia) x uniform [0.85, 1.15], independently
    walk_50m     nominal, long enough for 50 m at the commanded speed (+20%); success
                 is no fall and 50 m covered
    icy          friction 0.3
    payload      torso (base body) mass x 1.3
    weak_motors  effort limits x 0.8 (the policy's action scale keeps the nominal limits,
                 as a firmware that does not know would)
    noise_x3     the training config's observation noise, three times as wide
    worst_all    icy, payload, weak motors and noise x3 at once
    latency_3    actions reach the motors 3 policy steps late

Success is an episode without a fall (walk_50m: and the distance reached).
"""

from __future__ import annotations

import dataclasses
import math

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jaxtyping import Array, Float, Int, PRNGKeyArray

from common import normalizer
from common.envs.base import Env, State
from common.envs.biped import randomize
from common.envs.biped.walk import BipedWalk
from ppo_amp import evaluate
from ppo_amp.networks import Actor

GRAVITY = 9.81
WALK_DISTANCE = 50.0
# The walk's episode is this much longer than the distance takes at the commanded speed.
WALK_SLACK = 1.2
# The suite env's static settings: pushes of the `push` scenario, and room for 3 steps of
# latency in the action ring (the others scale these to zero).
PUSH_FORCE = 10.0
PUSH_INTERVAL_S = (2.0, 4.0)
PUSH_DURATION_S = 0.1
MAX_LATENCY = 3


@dataclasses.dataclass(frozen=True)
class Spec:
    """A scenario as written; `friction` None is the MJCF's own floor friction."""

    name: str
    friction: tuple[float, float] | None = None
    mass_scale: tuple[float, float] = (1.0, 1.0)
    torso_mass_scale: float = 1.0
    effort_scale: float = 1.0
    noise_scale: float = 0.0
    push: bool = False
    latency_steps: int = 0
    walk_distance: float | None = None


SCENARIOS: tuple[Spec, ...] = (
    Spec("nominal"),
    Spec("friction", friction=(0.4, 1.25)),
    Spec("push", push=True),
    Spec("mass", mass_scale=(0.85, 1.15)),
    Spec("walk_50m", walk_distance=WALK_DISTANCE),
    Spec("icy", friction=(0.3, 0.3)),
    Spec("payload", torso_mass_scale=1.3),
    Spec("weak_motors", effort_scale=0.8),
    Spec("noise_x3", noise_scale=3.0),
    Spec("worst_all", friction=(0.3, 0.3), torso_mass_scale=1.3, effort_scale=0.8, noise_scale=3.0),
    Spec("latency_3", latency_steps=3),
)
WORST_CASES = ("icy", "payload", "weak_motors", "noise_x3", "worst_all")


class Scenario(eqx.Module):
    """A `Spec` as arrays (stackable, so scenarios are a vmapped axis)."""

    friction: Float[Array, "2"]
    mass_scale: Float[Array, "2"]
    torso_mass_scale: Float[Array, ""]
    effort_scale: Float[Array, ""]
    noise_scale: Float[Array, ""]
    push_scale: Float[Array, ""]
    latency: Int[Array, ""]

    @staticmethod
    def of(spec: Spec, nominal_friction: float) -> Scenario:
        f = (nominal_friction, nominal_friction) if spec.friction is None else spec.friction
        return Scenario(
            friction=jnp.asarray(f, jnp.float32), mass_scale=jnp.asarray(spec.mass_scale, jnp.float32),
            torso_mass_scale=jnp.asarray(spec.torso_mass_scale, jnp.float32),
            effort_scale=jnp.asarray(spec.effort_scale, jnp.float32),
            noise_scale=jnp.asarray(spec.noise_scale, jnp.float32),
            push_scale=jnp.asarray(1.0 if spec.push else 0.0, jnp.float32),
            latency=jnp.asarray(spec.latency_steps, jnp.int32))

    def draw(self, key: PRNGKeyArray, nbody: int, nv: int,
             base_body: int) -> tuple[randomize.Randomization, randomize.Stress]:
        """One episode's physics and stresses under this scenario."""
        k_f, k_m = jax.random.split(key)
        friction = jax.random.uniform(k_f, (), minval=self.friction[0], maxval=self.friction[1])
        mass = jax.random.uniform(k_m, (nbody,), minval=self.mass_scale[0], maxval=self.mass_scale[1])
        physics = randomize.Randomization(friction=friction, mass_scale=mass.at[base_body].multiply(self.torso_mass_scale),
                                          damping_scale=jnp.ones((nv,)), latency=self.latency)
        return physics, randomize.Stress(effort_scale=self.effort_scale, noise_scale=self.noise_scale,
                                         push_scale=self.push_scale)


def stack(specs: tuple[Spec, ...], nominal_friction: float) -> Scenario:
    """The scenarios of `specs` stacked on a leading axis."""
    return jax.tree.map(lambda *xs: jnp.stack(xs), *(Scenario.of(s, nominal_friction) for s in specs))


class StressedWalk(Env):
    """The walk whose every reset draws its episode from `scenario` (steps unchanged)."""

    walk: BipedWalk
    scenario: Scenario

    @property
    def observation_size(self) -> int:
        return self.walk.observation_size

    @property
    def action_size(self) -> int:
        return self.walk.action_size

    @property
    def config(self):
        return self.walk.config

    @property
    def dt(self) -> float:
        return self.walk.dt

    def reset(self, key: PRNGKeyArray) -> State:
        k_reset, k_draw = jax.random.split(key)
        m = self.walk.model
        physics, stress = self.scenario.draw(k_draw, m.nbody, m.nv, self.walk.base_body)
        return self.walk.reset(k_reset, randomization=physics, stress=stress)

    def step(self, state: State, action: Float[Array, " act"]) -> State:
        return self.walk.step(state, action)


def env_overrides(control_dt: float) -> dict[str, object]:
    """The `biped_walk` settings of the suite's env, on top of the run's own: randomisation
    on (every draw then comes from the scenario), lateral 10 N pushes every 2-4 s."""
    steps = lambda s: max(1, round(s / control_dt))
    return dict(randomize=True, push_direction="lateral", push_force_range=(PUSH_FORCE, PUSH_FORCE),
                push_interval_steps=(steps(PUSH_INTERVAL_S[0]), steps(PUSH_INTERVAL_S[1])),
                push_duration_steps=steps(PUSH_DURATION_S), latency_steps=(0, MAX_LATENCY))


def episode_sums(walk: BipedWalk, scenarios: Scenario, actor: Actor, obs_stats: normalizer.RunningStats,
                 keys: PRNGKeyArray, *, steps: int, obs_clip: float) -> dict[str, Array]:
    """`evaluate.episode_sums` for each scenario (the leading axis of `scenarios` and of
    `keys`, which is `[scenarios, episodes]`), with the suite's own per-step sums."""
    body_mass = walk.model.body_mass

    def extra(s: State, nxt: State, alive: Array) -> dict[str, Array]:
        f = lambda x: jnp.where(alive.reshape(alive.shape + (1,) * (x.ndim - 1)), x, 0.0)
        torque = nxt.data.actuator_force
        return {
            "joint_torque": f(jnp.abs(torque)),
            "power": f(jnp.sum(jnp.abs(torque * nxt.data.qvel[:, 6:]), axis=-1)),
            "mass": f(jnp.sum(body_mass * nxt.info["randomization"].mass_scale, axis=-1)),
            # Summed over the steps lived: the net planar displacement of the base.
            "displacement": f(nxt.data.qpos[:, :2] - s.data.qpos[:, :2]),
        }

    def one(scenario, k):
        return evaluate.episode_sums(StressedWalk(walk, scenario), actor, obs_stats, k, steps=steps,
                                     obs_clip=obs_clip, extra=extra)

    return jax.vmap(one)(scenarios, keys)


def summarize(sums: dict[str, Array], specs: tuple[Spec, ...], control_dt: float) -> list[dict[str, object]]:
    """One line of figures per scenario from `episode_sums`' `[scenarios, episodes]` sums:
    success rate, falls, net distance (mean and least), path length, heading drift, tracking MAE, speed, mean |torque|
    per joint (N m), mean mechanical power (W) and cost of transport P / (m g v)."""
    sums = jax.device_get(sums)
    lines = []
    for i, spec in enumerate(specs):
        s = {k: np.asarray(v[i], np.float64) for k, v in sums.items()}
        lived = max(s["alive_steps"].sum(), 1.0)
        distance = np.linalg.norm(s["displacement"], axis=-1)
        fell = s["fell"] > 0
        reached = distance >= spec.walk_distance if spec.walk_distance else np.ones_like(fell)
        figures = {k: float(v) for k, v in evaluate.summarize({k: jnp.asarray(v) for k, v in s.items()}).items()}
        power, speed, mass = s["power"].sum() / lived, figures["mean_speed"], s["mass"].sum() / lived
        lines.append({
            "scenario": spec.name, "episodes": int(fell.size), "falls": int(fell.sum()),
            "success_rate": float(np.mean(~fell & reached)),
            "distance_m": float(distance.mean()), "distance_min_m": float(distance.min()),
            "path_m": float(s["distance"].mean()), "heading_drift": figures["heading_drift"],
            "seconds": float(s["alive_steps"].max() * control_dt),
            "tracking_mae": figures["tracking_mae"], "mean_speed": speed,
            "mean_abs_torque": [round(float(v), 4) for v in s["joint_torque"].sum(axis=0) / lived],
            "mean_power_w": float(power),
            "cost_of_transport": float(power / (mass * GRAVITY * speed)) if speed > 1e-3 else None,
        })
    return lines


def walk_steps(command: tuple[float, float, float], control_dt: float) -> int:
    """Policy steps of the `walk_50m` episode: the distance at the commanded planar speed, +20%."""
    speed = math.hypot(command[0], command[1])
    if speed <= 0:
        raise ValueError("the 50 m walk needs a nonzero planar command")
    return math.ceil(WALK_DISTANCE / speed * WALK_SLACK / control_dt)
