"""The biped's deterministic actor as an ONNX graph, and the facts its firmware needs.

    input:  obs [batch, 45] raw, in the order and scales of `metadata["obs_terms"]`
    output: action [batch, 12] = tanh(mean) in [-1, 1], in actuator order

The observation normaliser (clip `ppo.obs_clip`) is folded in. The firmware turns an
action into position-servo targets by `metadata["action_rule"]`; every number it needs
(joint names, default pose, per-joint action scale, servo gains, joint damping,
armature, friction loss, effort limits, command ranges, time steps) is read from the
run's resolved config and its MJCF, never written here.
"""

from __future__ import annotations

from typing import Any

import jax
import mujoco
import numpy as np

from common import normalizer, onnx_export
from common.envs.biped import config as biped_config
from ppo_amp.networks import Actor

ACTION_RULE = ("target = default_ctrl + action_scale * action, clipped to ctrl_range, where "
               "action_scale = config action_scale * effort_limit / kp; each target drives a position servo "
               "(force = kp * (target - q) - kv * qdot, clipped to +-effort_limit) held for the control step")


def graph(actor: Actor, stats: normalizer.RunningStats, obs_clip: float) -> tuple[onnx_export.Graph, dict, dict]:
    """The graph and its `{name: size}` input and output."""
    g = onnx_export.Graph()
    x = onnx_export.normalize(g, "obs", stats, clip=obs_clip)
    if actor.mean_net.activation is not jax.nn.elu:
        raise ValueError(f"export: the actor's activation must be ELU, got {actor.mean_net.activation}")
    layers = actor.mean_net.layers
    for i, layer in enumerate(layers):
        x = g.dense(x, np.asarray(layer.weight, np.float32), np.asarray(layer.bias, np.float32), f"layer{i}")
        if i < len(layers) - 1:
            x = g.op("Elu", x, alpha=1.0)
    g.op("Tanh", x, output="action")
    return g, {"obs": int(stats.mean.shape[0])}, {"action": int(layers[-1].weight.shape[0])}


def metadata(env_config: biped_config.BipedWalkConfig, mj_model: mujoco.MjModel) -> dict[str, Any]:
    """The robot-side facts of the run whose env config is `env_config` (the MJCF it loads)."""
    m = mj_model
    c = env_config
    joints = m.actuator_trnid[:, 0]
    dofs = m.jnt_dofadr[joints]
    key = mujoco.mj_name2id(m, mujoco.mjtObj.mjOBJ_KEY, c.keyframe)
    kp = m.actuator_gainprm[:, 0]
    effort = np.abs(m.actuator_forcerange).max(axis=1)
    name = lambda kind, i: mujoco.mj_id2name(m, kind, int(i))
    return {
        "policy": "PPO+AMP actor, deterministic: action = tanh(mean)",
        "inputs": {"obs": "raw observation, the terms of obs_terms in order, each times its scale"},
        "outputs": {"action": "normalised joint actions in [-1, 1], actuator order"},
        "joint_names": [name(mujoco.mjtObj.mjOBJ_JOINT, j) for j in joints],
        "actuator_names": [name(mujoco.mjtObj.mjOBJ_ACTUATOR, i) for i in range(m.nu)],
        "default_joint_pos": m.key_qpos[key][m.jnt_qposadr[joints]].tolist(),
        "default_ctrl": m.key_ctrl[key].tolist(),
        "action_scale": (c.action_scale * effort / kp).tolist(),
        "action_rule": ACTION_RULE,
        "kp": kp.tolist(),
        "kv": (-m.actuator_biasprm[:, 2]).tolist(),
        "joint_damping": m.dof_damping[dofs].tolist(),
        "armature": m.dof_armature[dofs].tolist(),
        "frictionloss": m.dof_frictionloss[dofs].tolist(),
        "effort_limit": effort.tolist(),
        "ctrl_range": m.actuator_ctrlrange.tolist(),
        "joint_range": m.jnt_range[joints].tolist(),
        "obs_terms": [{"name": t, "size": biped_config.OBS_TERM_SIZES[t], "scale": c.obs_scale(t)} for t in c.obs_terms],
        "command_ranges": {"vx": list(c.command_vx), "vy": list(c.command_vy), "yaw_rate": list(c.command_yaw)},
        # The command layer the policy trained under (gain 0: none); common/envs/biped/config.py.
        "heading_hold": {"gain": float(c.heading_hold), "max_yaw_rate": c.heading_hold_max_rate},
        "control_dt": float(m.opt.timestep) * c.frame_skip,
        "physics_dt": float(m.opt.timestep),
    }
