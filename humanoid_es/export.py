"""The ES reservoir policy as an ONNX graph, its recurrent state an explicit input and output.

    inputs:  obs [batch, 376] (Humanoid-v4's observation, raw), h [batch, reservoir size]
    outputs: action [batch, 17] (actuator controls), h_next [batch, reservoir size]

Start an episode with h = 0 and feed h_next back as h on every step. The normaliser
(`policy.obs_norm`), the observation slice (`obs_features`), the leaky reservoir update
and the action map are those of `humanoid_es.policy.Reservoir`, with the run's
statistics and weights as constants.
"""

from __future__ import annotations

from typing import Any

import mujoco
import numpy as np

from common import normalizer, onnx_export
from humanoid_es import policy


def graph(reservoir: policy.Reservoir, stats: normalizer.RunningStats) -> tuple[onnx_export.Graph, dict, dict]:
    """The graph and its `{name: size}` inputs and outputs."""
    c = reservoir.config
    g = onnx_export.Graph()
    n_res, n_obs = reservoir.w_in.shape[0], int(stats.mean.shape[0])
    n_act = reservoir.b_out.shape[0]
    if c.obs_norm == "ars":
        x = onnx_export.normalize(g, "obs", stats, clip=None, zero_below=policy.ARS_ZERO_STD)
    else:
        x = onnx_export.normalize(g, "obs", stats, clip=c.obs_clip, std_floor=c.obs_std_floor)
    if c.obs_features:
        x = g.op("Slice", x, g.const_int("start", [0]), g.const_int("end", [c.obs_features]), g.const_int("axis", [1]))
    a = lambda v: np.asarray(v, np.float32)
    pre = g.op("Add", g.dense(x, a(reservoir.w_in), a(reservoir.bias), "w_in"), g.dense("h", a(reservoir.w_rec), None, "w_rec"))
    h_next = g.op("Add", g.op("Mul", "h", g.const("keep", np.float32(1.0 - c.leak_rate))),
                  g.op("Mul", g.op("Tanh", pre), g.const("leak", np.float32(c.leak_rate))), output="h_next")
    features = g.op("Concat", h_next, x, axis=1) if c.readout_obs else h_next
    out = g.dense(features, a(reservoir.w_out), a(reservoir.b_out), "w_out")
    scale, offset = a(reservoir.action_scale), a(reservoir.action_offset)
    if c.action_map == "clip":
        low = offset - scale
        g.op("Max", g.op("Min", g.op("Add", out, g.const("offset", offset)), g.const("high", low + 2.0 * scale)),
             g.const("low", low), output="action")
    else:
        g.op("Add", g.op("Mul", g.op("Tanh", out), g.const("scale", scale)), g.const("offset", offset), output="action")
    return g, {"obs": n_obs, "h": n_res}, {"action": n_act, "h_next": n_res}


def metadata(config: dict[str, Any], mj_model: mujoco.MjModel, frame_skip: int) -> dict[str, Any]:
    """What a controller needs beside the graph, from the run's resolved config and its model."""
    names = lambda kind, n: [mujoco.mj_id2name(mj_model, kind, i) for i in range(n)]
    return {
        "policy": "ES reservoir (echo-state) policy, deterministic; feed h_next back as h, h = 0 at episode start",
        "inputs": {"obs": "Humanoid-v4 observation (376 values: qpos[2:], qvel, cinert, cvel, qfrc_actuator, "
                          "cfrc_ext), raw", "h": "reservoir state"},
        "outputs": {"action": "actuator controls (MuJoCo ctrl, in ctrlrange)", "h_next": "reservoir state"},
        "actuator_names": names(mujoco.mjtObj.mjOBJ_ACTUATOR, mj_model.nu),
        "ctrl_range": mj_model.actuator_ctrlrange.tolist(),
        "control_dt": float(mj_model.opt.timestep) * frame_skip,
        "physics_dt": float(mj_model.opt.timestep),
        "reservoir_size": int(config["policy"]["size"]),
        "obs_norm": config["policy"]["obs_norm"],
        "action_map": config["policy"]["action_map"],
        "physics": config["physics"],
    }
