"""PPO+AMP evaluation figures on a scripted walk whose every figure is known by hand.

A stand-in env (no physics, nothing to compile but a tiny scan) moves a base along a
script: the body-frame velocity alternates between V_ODD and V_EVEN (a sway whose
0.04 s average, the window of 2 steps, is exactly (0.7, 0.7)), the heading turns at a
scripted yaw rate, the joints hold a fixed torque and speed. `episode_sums` runs it
through the real `common.rollout`, so warm-up, window, fall freezing and the figures
of `summarize` are checked against arithmetic done in the comments.
"""

import math
from types import SimpleNamespace

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jaxtyping import Array

from common import normalizer, quaternion
from common.envs.base import State
from ppo_amp import evaluate

DT = 0.02
COMMAND = (0.7, 0.4, 0.0)
V_ODD, V_EVEN = (0.6, 0.8), (0.8, 0.6)  # both 1 m/s: the base travels DT metres a step
TORQUE, JOINT_SPEED = (2.0, -4.0), (1.5, 0.5)  # mean |torque| 3 N m, power 3 + 2 = 5 W
STEPS, WARMUP, WINDOW = 8, 3, 2
# Per member: start heading (rad), yaw rate on odd and even steps (rad/s), step whose
# result is a fall (99: never). Member 2 turns back and forth: its mean yaw rate is 0.
HEADING = (0.3, -1.0, 2.0)
YAW_ODD, YAW_EVEN = (0.25, 0.5, 0.5), (0.25, 0.5, -0.5)
FALL_STEP = (99, 5, 99)


class Data(eqx.Module):
    qpos: Array
    qvel: Array
    actuator_force: Array


class ScriptedWalk:
    """Follows the script above; `reset` takes a member index where the env takes a key."""

    config = SimpleNamespace(fixed_command=COMMAND)
    dt = DT

    def _state(self, member, t, heading, xy):
        odd = t % 2 == 1
        v_body = jnp.where(odd, jnp.array(V_ODD), jnp.array(V_EVEN))
        yaw_rate = jnp.where(odd, jnp.array(YAW_ODD), jnp.array(YAW_EVEN))[member]
        c, s = jnp.cos(heading), jnp.sin(heading)
        v_world = jnp.array([c * v_body[0] - s * v_body[1], s * v_body[0] + c * v_body[1]])
        quat = quaternion.about_axis(2, heading)
        qpos = jnp.concatenate([xy, jnp.ones(1), quat, jnp.zeros(2)])
        qvel = jnp.concatenate([v_world, jnp.zeros(3), yaw_rate[None], jnp.array(JOINT_SPEED)])
        terminated = t >= jnp.array(FALL_STEP)[member]
        return State(
            data=Data(qpos=qpos, qvel=qvel, actuator_force=jnp.array(TORQUE)),
            obs=jnp.zeros(1), reward=jnp.where(t > 0, 1.0, 0.0), done=terminated,
            metrics={"diverged": jnp.zeros(())},
            info={"member": member, "t": t, "heading": heading, "terminated": terminated},
        )

    def reset(self, member):
        return self._state(member, jnp.zeros((), jnp.int32), jnp.array(HEADING)[member], jnp.zeros(2))

    def step(self, state, action):
        # The yaw rate and velocity reported with step t are the ones that moved the base
        # during it, so the heading and position integrate them exactly.
        member, t = state.info["member"], state.info["t"] + 1
        probe = self._state(member, t, state.info["heading"], state.data.qpos[:2])
        heading = state.info["heading"] + probe.data.qvel[5] * DT
        xy = state.data.qpos[:2] + probe.data.qvel[:2] * DT
        return self._state(member, t, heading, xy)


ACTOR = SimpleNamespace(deterministic=lambda obs: jnp.zeros(2))


def _sums(steps, warmup):
    return jax.device_get(evaluate.episode_sums(
        ScriptedWalk(), ACTOR, normalizer.init(1), jnp.arange(3), steps=steps, obs_clip=5.0,
        warmup_steps=warmup, window_steps=WINDOW))


@pytest.fixture(scope="module")
def sums():
    return _sums(STEPS, WARMUP)


# |v - command| per step: odd steps (0.6, 0.8) - (0.7, 0.4), even steps (0.8, 0.6) - (0.7, 0.4).
INSTANT_ODD, INSTANT_EVEN = math.hypot(-0.1, 0.4), math.hypot(0.1, 0.2)


def test_episode_sums_of_the_scripted_walk(sums):
    # Members 0 and 2 live all 8 steps; member 1 falls on step 5 and is frozen after it
    # (its env keeps reporting `terminated`, which must count once).
    np.testing.assert_array_equal(sums["alive_steps"], [8, 5, 8])
    np.testing.assert_array_equal(sums["fell"], [0, 1, 0])
    # Steps taken with 3 or more steps lived (the 4th onwards): 5 of 8, 2 of member 1's 5.
    np.testing.assert_array_equal(sums["counted_steps"], [5, 2, 5])
    # The 2-step window averages to (0.7, 0.7), 0.3 from the command on every counted step.
    np.testing.assert_allclose(sums["tracking"], [1.5, 0.6, 1.5], rtol=1e-5)
    np.testing.assert_allclose(sums["tracking_instant"], [4 * INSTANT_ODD + 4 * INSTANT_EVEN,
                                                          3 * INSTANT_ODD + 2 * INSTANT_EVEN,
                                                          4 * INSTANT_ODD + 4 * INSTANT_EVEN], rtol=1e-5)
    # Forward velocity in the body frame, whatever the heading: 0.6 odd, 0.8 even.
    np.testing.assert_allclose(sums["speed"], [5.6, 3 * 0.6 + 2 * 0.8, 5.6], rtol=1e-5)
    np.testing.assert_allclose(sums["yaw_rate"], [8 * 0.25, 5 * 0.5, 0.0], atol=1e-6)
    np.testing.assert_allclose(sums["torque"], [24.0, 15.0, 24.0], rtol=1e-6)
    np.testing.assert_allclose(sums["energy"], [8 * 5 * DT, 5 * 5 * DT, 8 * 5 * DT], rtol=1e-5)
    np.testing.assert_allclose(sums["distance"], [8 * DT, 5 * DT, 8 * DT], rtol=1e-5)
    np.testing.assert_allclose(sums["return"], [8.0, 5.0, 8.0])


def test_summarize_the_scripted_walk(sums):
    figures = {k: float(v) for k, v in evaluate.summarize({k: jnp.asarray(v) for k, v in sums.items()}).items()}
    assert figures["episodes"] == 3 and figures["falls"] == 1
    assert figures["tracking_mae"] == pytest.approx(0.3, rel=1e-5)
    assert figures["tracking_mae_instant"] == pytest.approx((11 * INSTANT_ODD + 10 * INSTANT_EVEN) / 21, rel=1e-5)
    assert figures["mean_speed"] == pytest.approx((5.6 + 3.4 + 5.6) / 21, rel=1e-5)
    # Per episode |mean yaw rate|: 0.25, 0.5 and 0 (member 2's turns cancel), averaged.
    assert figures["heading_drift"] == pytest.approx(0.25, rel=1e-5)
    assert figures["mean_abs_torque"] == pytest.approx(3.0, rel=1e-6)
    # 5 W at 1 m/s.
    assert figures["energy_per_meter"] == pytest.approx(5.0, rel=1e-5)
    assert figures["eval_return"] == pytest.approx(7.0) and figures["eval_length"] == pytest.approx(7.0)


def test_a_warmup_longer_than_the_episode_counts_only_its_last_step():
    # As evaluations shorter than the 50-step warm-up run: 3 steps, warm-up cut to 2.
    sums = _sums(3, 50)
    np.testing.assert_array_equal(sums["counted_steps"], [1, 1, 1])
    np.testing.assert_allclose(sums["tracking"], [0.3, 0.3, 0.3], rtol=1e-5)


def _batch(v_body, heading):
    """A batch of one with the base at `heading` moving at `v_body` (planar, body frame)."""
    c, s = math.cos(heading), math.sin(heading)
    v_world = [c * v_body[0] - s * v_body[1], s * v_body[0] + c * v_body[1]]
    qpos = jnp.concatenate([jnp.zeros(3), quaternion.about_axis(2, jnp.asarray(heading)), jnp.zeros(2)])[None]
    qvel = jnp.array([[*v_world, 0.0, 0.0, 0.0, 0.0, *JOINT_SPEED]])
    return SimpleNamespace(data=SimpleNamespace(qpos=qpos, qvel=qvel, actuator_force=jnp.array([TORQUE])),
                           info={"terminated": jnp.array([False])})


def test_step_figures_window_fills_from_zero_and_counts_from_the_warmup():
    # Driven by hand: 3-step window, warm-up 2, the base at 1 rad heading.
    kw = dict(command=jnp.array(COMMAND), dt=DT, warmup=2)
    ring, alive = jnp.zeros((1, 3, 2)), jnp.array([True])
    seen = []
    for lived, v in enumerate([(0.9, 0.0), (0.3, 0.0), (0.9, 0.4)]):
        state = _batch(v, 1.0)
        ring, add = evaluate.step_figures(ring, state, state, alive, jnp.array([lived]), **kw)
        seen.append((float(add["counted_steps"][0]), float(add["tracking"][0]), float(add["speed"][0])))
    np.testing.assert_allclose(ring[0], [[0.9, 0.0], [0.3, 0.0], [0.9, 0.4]], atol=1e-6)
    # Only the third step is past the warm-up; its window average (0.7, 0.4/3) is
    # 0.4 - 0.4/3 = 0.8/3 from the command.
    np.testing.assert_allclose(seen, [(0, 0, 0.9), (0, 0, 0.3), (1, 0.8 / 3, 0.9)], atol=1e-6)
    # A dead member's ring stays and it adds nothing.
    frozen, add = evaluate.step_figures(ring, state, _batch((5.0, 5.0), 0.0), jnp.array([False]),
                                        jnp.array([3]), **kw)
    np.testing.assert_array_equal(frozen, ring)
    assert all(float(v[0]) == 0.0 for v in add.values())
