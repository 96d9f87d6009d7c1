"""Learned actuators: record bench logs, and fit an actuator net to logs.

    python -m experiments.actuator collect --output=actuator_logs [--config=configs/actuator.py]
    python -m experiments.actuator train --logs=actuator_logs --output=results/actuator/net

`collect` runs the simulated bench rig (ppo_amp/actuator_rig.py) for every joint kind of
the biped and writes `train.npz` and `heldout.npz` in the log format of
common/actuator/log.py (`--format=csv` for .csv files). Real logs in that format replace
them: `--logs` is a folder holding `train.*` and `heldout.*`.

`train` fits the net of `config.net.hidden` (and, for comparison, one of
`config.net.large_hidden`) to torque, stopping early on held-out blocks of the training
logs, then refines it on what the replay measures (open-loop rollouts through training
windows, judged on those blocks' windows). It reports on the held-out logs: torque RMSE,
and the position RMSE of an open-loop replay (ppo_amp/actuator_fit.py) with the joint
integrated `config.net.replay_substeps` times per tick (1: as the biped's MJX step) and 10
times, before and after the refinement, beside the same replays of the rig's own firmware
law (`servo_law`, for logs that `collect` wrote: it leaves `rig.json` beside them, whose
settings `train` then uses for the joint mechanics). It writes `actuator_net.npz` (the file `task.actuator_net`
takes), `actuator_net_large.npz`, `report.json` and plots of logged against predicted
traces, and prints one JSON line. Bad input ends with one line on stderr and exit status 2.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import os
import time
from collections.abc import Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from absl import flags, logging
from ml_collections import config_flags

from common import cli, results
from common.actuator import log as log_lib
from common.actuator import net as net_lib
from common.errors import UserError
from ppo_amp import actuator_fit, actuator_rig

_CONFIG = config_flags.DEFINE_config_file("config", "configs/actuator.py", "Actuator config file.", lock_config=True)
_OUTPUT = flags.DEFINE_string("output", None, "collect: folder for the logs; train: folder for the net and report.")
_LOGS = flags.DEFINE_string("logs", None, "train: folder with train.npz|csv and heldout.npz|csv.")
_FORMAT = flags.DEFINE_enum("format", "npz", ["npz", "csv"], "collect: file type of the logs.")

_COMMANDS = ("collect", "train")
# Written by `collect` beside the logs: the rig's settings.
RIG_FILE = "rig.json"


def _servo(config) -> actuator_rig.ServoModel:
    fields = dict(config.rig)
    fields["latency_ticks"] = tuple(fields["latency_ticks"])
    try:
        servo = actuator_rig.ServoModel(**fields)
    except TypeError as e:
        raise UserError(f"config.rig: {e}") from None
    servo.validate()
    return servo


def _collect(config) -> None:
    if not _OUTPUT.value:
        raise UserError("collect needs --output=<folder>")
    servo = _servo(config)
    c = config.collect
    start = time.perf_counter()
    train, heldout = actuator_rig.record(servo, actuator_rig.joint_specs(), np.random.default_rng(config.seed),
                                         train_seconds=c.train_seconds, heldout_seconds=c.heldout_seconds,
                                         segment_seconds=c.segment_seconds, gait_speeds=tuple(c.gait_speeds))
    os.makedirs(_OUTPUT.value, exist_ok=True)
    rig = dataclasses.asdict(servo) | {"seed": config.seed, "collect": config.collect.to_dict()}
    results.atomic_write_json(os.path.join(_OUTPUT.value, RIG_FILE), rig)
    for name, log in (("train", train), ("heldout", heldout)):
        path = os.path.join(_OUTPUT.value, f"{name}.{_FORMAT.value}")
        log_lib.save(path, log)
        print(json.dumps({"wrote": path, "joints": len(log), "samples": sum(len(t) for t in log.values()),
                          "seconds": round(time.perf_counter() - start, 1)}), flush=True)


def _find(folder: str, name: str) -> str:
    found = sorted(glob.glob(os.path.join(folder, f"{name}.npz")) + glob.glob(os.path.join(folder, f"{name}.csv")))
    if len(found) != 1:
        raise UserError(f"--logs: {folder!r} must hold exactly one {name}.npz or {name}.csv, found {found or 'none'}")
    return found[0]


def _inference_us(net: net_lib.ActuatorNet, batch: int = 4096 * 12, repeats: int = 20) -> float:
    """Microseconds per call on `batch` joints (one env step's substep for 4096 envs)."""
    h = net.spec.history
    fn = eqx.filter_jit(lambda net, *args: net(*args))
    args = (jnp.zeros((batch, h)), jnp.zeros((batch, h)), jnp.zeros((batch,), jnp.int32))
    fn(net, *args).block_until_ready()
    start = time.perf_counter()
    for _ in range(repeats):
        fn(net, *args).block_until_ready()
    return (time.perf_counter() - start) / repeats * 1e6


def _plots(out: str, net, heldout: actuator_fit.Samples, replay: actuator_fit.Replay, rate: float) -> list[str]:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    kinds = net.spec.kinds
    paths = []
    predicted = actuator_fit.predict(net, heldout)
    fig, axes = plt.subplots(len(kinds), 2, figsize=(12, 2.2 * len(kinds)), squeeze=False)
    n = int(2 * rate)
    for k, kind in enumerate(kinds):
        rows = np.nonzero(heldout.kind == k)[0][:n]
        t = np.arange(len(rows)) / rate
        axes[k, 0].plot(t, heldout.torque[rows], label="logged", lw=1)
        axes[k, 0].plot(t, predicted[rows], label="net", lw=1)
        axes[k, 0].set_ylabel(f"{kind}\ntorque (N m)")
        windows = np.nonzero(replay.kind == k)[0]
        if len(windows):
            w = windows[0]
            t = np.arange(replay.logged.shape[1]) / rate
            axes[k, 1].plot(t, replay.logged[w], label="logged", lw=1)
            axes[k, 1].plot(t, replay.replayed[w], label="net replay", lw=1)
            axes[k, 1].set_ylabel("position (rad)")
    axes[0, 0].legend(loc="upper right")
    axes[0, 1].legend(loc="upper right")
    axes[0, 0].set_title("held-out torque, first 2 s")
    axes[0, 1].set_title("open-loop replay, first 2 s window")
    for ax in axes[-1]:
        ax.set_xlabel("s")
    fig.tight_layout()
    path = os.path.join(out, "plots", "heldout_traces.png")
    os.makedirs(os.path.dirname(path), exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    paths.append(path)
    return paths


def _train(config) -> None:
    if not _LOGS.value or not _OUTPUT.value:
        raise UserError("train needs --logs=<folder with train.* and heldout.*> and --output=<folder>")
    c = config.net
    if not (isinstance(c.history, int) and c.history >= 1):
        raise UserError(f"config.net.history: must be a positive integer, got {c.history!r}")
    for field, ok in (("replay_substeps", isinstance(c.replay_substeps, int) and c.replay_substeps >= 1),
                      ("refine_steps", isinstance(c.refine_steps, int) and c.refine_steps >= 0),
                      ("refine_window_seconds", c.refine_window_seconds > 0),
                      ("refine_batch_size", isinstance(c.refine_batch_size, int) and c.refine_batch_size >= 1),
                      ("refine_torque_weight", c.refine_torque_weight >= 0)):
        if not ok:
            raise UserError(f"config.net.{field}: out of range, got {getattr(c, field)!r}")
    # Logs from `collect` name the rig that made them: its mechanics and firmware law are
    # the truth for these logs, whatever config.rig says now.
    rig_path = os.path.join(_LOGS.value, RIG_FILE)
    from_rig = os.path.isfile(rig_path)
    if from_rig:
        with open(rig_path) as f:
            rig = json.load(f)
        config.unlock()
        config.rig.update({k: rig[k] for k in config.rig.keys() if k in rig})
        config.lock()
    servo = _servo(config)
    rate = servo.firmware_hz
    train_log = log_lib.load(_find(_LOGS.value, "train"), rate_hz=rate)
    heldout_log = log_lib.load(_find(_LOGS.value, "heldout"), rate_hz=rate)
    kinds = tuple(dict.fromkeys(net_lib.kind_of(j) for j in train_log.joints))
    every = actuator_fit.samples([train_log], kinds, c.history)
    valid_mask = actuator_fit.is_validation(every.block, c.validation_fraction)
    train, valid = every.take(~valid_mask), every.take(valid_mask)
    heldout = actuator_fit.samples([heldout_log], kinds, c.history)
    specs = actuator_rig.joint_specs()
    inertia = {k: s.inertia for k, s in specs.items()}
    mechanics = {name: dict(zip(specs, values)) for name, values in actuator_rig.joint_mechanics(specs, servo).items()}
    report = {"logs": _LOGS.value, "train_samples": len(train), "validation_samples": len(valid),
              "heldout_samples": len(heldout), "kinds": list(kinds), "nets": {}}
    key = jax.random.PRNGKey(config.seed)
    for name, hidden in (("actuator_net", tuple(c.hidden)), ("actuator_net_large", tuple(c.large_hidden))):
        spec = actuator_fit.make_spec(train, kinds, c.history, rate, hidden, servo.rotor_inertia, **mechanics)
        start = time.perf_counter()
        net, history = actuator_fit.fit(key, train, valid, spec, learning_rate=c.learning_rate,
                                        batch_size=c.batch_size, max_epochs=c.max_epochs, patience=c.patience,
                                        log=lambda m, n=name: logging.info("%s: %s", n, m))
        fit_only = actuator_fit.replay(net, [heldout_log], inertia, seconds=c.replay_seconds,
                                       substeps=c.replay_substeps).rmse
        # Then what the replay measures: rollouts through the training windows, checked on
        # the validation blocks' windows (the held-out logs stay unseen).
        ticks = int(round(c.refine_window_seconds * rate))
        net, refine_history = net, [{"valid_rollout_rmse": float("nan")}]
        if c.refine_steps:
            net, refine_history = actuator_fit.refine(
                key, net, actuator_fit.windows([train_log], kinds, c.history, ticks, stride=max(1, ticks // 4),
                                               split=(c.validation_fraction, False)),
                actuator_fit.windows([train_log], kinds, c.history, ticks, stride=max(1, ticks // 2),
                                     split=(c.validation_fraction, True)),
                inertia, train, substeps=c.replay_substeps, learning_rate=c.refine_learning_rate,
                batch_size=c.refine_batch_size, steps=c.refine_steps, torque_weight=c.refine_torque_weight,
                log=lambda m, n=name: logging.info("%s: %s", n, m))
        seconds = time.perf_counter() - start
        replay = actuator_fit.replay(net, [heldout_log], inertia, seconds=c.replay_seconds,
                                     substeps=c.replay_substeps)
        figures = {"params": net.num_params, "epochs": len(history), "fit_seconds": round(seconds, 1),
                   "train_torque_rmse": actuator_fit.torque_rmse(net, train),
                   "heldout_torque_rmse": actuator_fit.torque_rmse(net, heldout),
                   "heldout_replay_position_rmse": replay.rmse,
                   "heldout_replay_position_rmse_before_refine": fit_only,
                   "heldout_replay_position_rmse_10_substeps": actuator_fit.replay(
                       net, [heldout_log], inertia, seconds=c.replay_seconds, substeps=10).rmse,
                   "replay_substeps": c.replay_substeps,
                   "validation_rollout_rmse": min(r["valid_rollout_rmse"] for r in refine_history),
                   "replay_windows": int(len(replay.kind)),
                   "inference_us_49152_joints": round(_inference_us(net), 1)}
        figures["replay_position_rmse_by_kind"] = {
            kind: float(np.sqrt(np.mean((replay.logged[replay.kind == k] - replay.replayed[replay.kind == k]) ** 2)))
            for k, kind in enumerate(kinds) if np.any(replay.kind == k)}
        net = net_lib.ActuatorNet(weights=net.weights, biases=net.biases, spec=net_lib.NetSpec(
            **{**spec.__dict__, "figures": tuple((k, float(v)) for k, v in figures.items() if np.isscalar(v))}))
        net_lib.save(net, os.path.join(_OUTPUT.value, f"{name}.npz"))
        report["nets"][name] = figures
        if name == "actuator_net":
            report["plots"] = _plots(_OUTPUT.value, net, heldout, replay, rate)
        if name == "actuator_net" and from_rig:
            # The rig's own firmware law on the same windows: what no net can beat by
            # modelling the servo alone (the rest is the rig's mechanics and noise).
            law = actuator_rig.ServoLaw(servo, specs, spec)
            report["servo_law"] = {
                "heldout_replay_position_rmse": actuator_fit.replay(
                    law, [heldout_log], inertia, seconds=c.replay_seconds, substeps=c.replay_substeps).rmse,
                "heldout_replay_position_rmse_10_substeps": actuator_fit.replay(
                    law, [heldout_log], inertia, seconds=c.replay_seconds, substeps=10).rmse}
    os.makedirs(_OUTPUT.value, exist_ok=True)
    results.atomic_write_json(os.path.join(_OUTPUT.value, "report.json"), report)
    print(json.dumps(report), flush=True)


def main(argv: Sequence[str]) -> None:
    if len(argv) != 2 or argv[1] not in _COMMANDS:
        got = " ".join(argv[1:]) or "no command"
        raise UserError(f"usage: python -m experiments.actuator {{{'|'.join(_COMMANDS)}}} [--flags]; got {got}")
    {"collect": _collect, "train": _train}[argv[1]](_CONFIG.value)


if __name__ == "__main__":
    cli.run(main)
