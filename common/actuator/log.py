"""Motor logs for fitting an actuator net: the file format (.npz and .csv) and its loader.

One row per sample of one joint (long format, the same columns in both file types; the
unit is part of each column's name, so a log in other units is refused, not misread):

    time_s          float   seconds, strictly increasing per joint, at one fixed rate
    joint           str     joint name (the biped's: common/robots.py BIPED_JOINTS)
    command_rad     float   the position target the firmware held at that tick
    position_rad    float   measured joint position
    velocity_rad_s  float   measured joint velocity
    torque_nm       float   optional: the motor's torque at the joint (current x torque
                            constant x gear ratio): what an actuator net is fitted to. The
                            joint's friction and rotor inertia are not in it; a simulator
                            keeps them (common/actuator/net.py).
    current_a       float   optional: measured motor current, kept as logged

A .csv has a header line with these names; an .npz holds one 1-D array per column
(`joint` as strings; object arrays are refused: `allow_pickle=False`). Every problem stops
with one `LogError` line naming the file and what is wrong.
"""

from __future__ import annotations

import csv
import dataclasses
import os

import numpy as np
from jaxtyping import Float

from common import npz
from common.errors import UserError

REQUIRED = ("time_s", "joint", "command_rad", "position_rad", "velocity_rad_s")
OPTIONAL = ("torque_nm", "current_a")
# Columns in units this format does not take, and the one it does.
WRONG_UNITS = {
    "time_ms": "time_s", "time_us": "time_s", "command_deg": "command_rad", "position_deg": "position_rad",
    "velocity_deg_s": "velocity_rad_s", "velocity_rpm": "velocity_rad_s", "torque_nmm": "torque_nm",
    "current_ma": "current_a",
}
MIN_SAMPLES = 20
# A tick may come this much early or late (fraction of the period) before it is a gap.
JITTER = 0.25
# Radians: a joint log whose positions pass this is in degrees (or wraps encoder counts).
MAX_ABS_POSITION = 2.0 * np.pi


class LogError(UserError):
    """A motor log that cannot be used as it is."""


@dataclasses.dataclass(frozen=True)
class JointTrace:
    """One joint's samples, T rows each, at the log's rate."""

    time: Float[np.ndarray, " T"]
    command: Float[np.ndarray, " T"]
    position: Float[np.ndarray, " T"]
    velocity: Float[np.ndarray, " T"]
    torque: Float[np.ndarray, " T"] | None
    current: Float[np.ndarray, " T"] | None

    def __len__(self) -> int:
        return len(self.time)


@dataclasses.dataclass(frozen=True)
class MotorLog:
    """A loaded log: where it came from, its sampling rate and each joint's trace."""

    source: str
    rate_hz: float
    joints: dict[str, JointTrace]


def _read_npz(path: str) -> dict[str, np.ndarray]:
    return npz.read(path, LogError)


def _read_csv(path: str) -> dict[str, np.ndarray]:
    try:
        with open(path, newline="") as f:
            rows = list(csv.reader(f))
    except (OSError, UnicodeDecodeError) as e:
        raise LogError(f"{path}: unreadable ({type(e).__name__}: {e})") from None
    if not rows:
        raise LogError(f"{path}: empty; expected a header line {','.join(REQUIRED)}")
    header = [h.strip() for h in rows[0]]
    body = rows[1:]
    for i, row in enumerate(body):
        if len(row) != len(header):
            raise LogError(f"{path}: line {i + 2} has {len(row)} fields, the header has {len(header)}")
    columns = {}
    for j, name in enumerate(header):
        values = [row[j].strip() for row in body]
        if name == "joint":
            columns[name] = np.array(values, dtype=str)
            continue
        try:
            columns[name] = np.array([float(v) for v in values])
        except ValueError:
            bad = next(i for i, v in enumerate(values) if not _is_number(v))
            raise LogError(f"{path}: line {bad + 2}, column {name!r}: {values[bad]!r} is not a number") from None
    return columns


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def load(path: str, *, rate_hz: float | None = None) -> MotorLog:
    """Reads and checks `path` (.npz or .csv); `rate_hz`, if given, is the rate it must have."""
    if not os.path.isfile(path):
        raise LogError(f"{path}: no such file")
    ext = os.path.splitext(path)[1].lower()
    if ext not in (".npz", ".csv"):
        raise LogError(f"{path}: unknown log type {ext!r}; expected .npz or .csv")
    return check(path, _read_npz(path) if ext == ".npz" else _read_csv(path), rate_hz=rate_hz)


def check(source: str, columns: dict[str, np.ndarray], *, rate_hz: float | None = None) -> MotorLog:
    """The log in `columns` (name -> 1-D array), checked; errors name `source`."""
    for name in columns:
        if name in WRONG_UNITS:
            raise LogError(f"{source}: column {name!r} is in units this format does not take; "
                           f"convert it to {WRONG_UNITS[name]!r}")
        if name not in REQUIRED + OPTIONAL:
            raise LogError(f"{source}: unknown column {name!r}; known: {list(REQUIRED + OPTIONAL)}")
    missing = [n for n in REQUIRED if n not in columns]
    if missing:
        raise LogError(f"{source}: missing column(s) {missing}")
    lengths = {n: np.shape(v) for n, v in columns.items()}
    if any(len(s) != 1 for s in lengths.values()) or len({s[0] for s in lengths.values()}) != 1:
        raise LogError(f"{source}: columns must be 1-D and of one length, got shapes {lengths}")
    names = np.asarray(columns["joint"])
    if names.dtype.kind not in "US":
        raise LogError(f"{source}: 'joint' must hold joint names (strings), got dtype {names.dtype}")
    numeric = {}
    for n, v in columns.items():
        if n == "joint":
            continue
        v = np.asarray(v)
        if v.dtype.kind not in "fiu":
            raise LogError(f"{source}: column {n!r} must be numeric, got dtype {v.dtype}")
        v = v.astype(np.float64)
        if not np.all(np.isfinite(v)):
            raise LogError(f"{source}: column {n!r} has non-finite values at row {int(np.argmin(np.isfinite(v)))}")
        numeric[n] = v
    joints = {}
    rates = {}
    for joint in dict.fromkeys(names.tolist()):
        rows = names == joint
        trace = JointTrace(**{f: numeric[c][rows] if c in numeric else None for f, c in (
            ("time", "time_s"), ("command", "command_rad"), ("position", "position_rad"),
            ("velocity", "velocity_rad_s"), ("torque", "torque_nm"), ("current", "current_a"))})
        rates[joint] = _check_trace(f"{source}: joint {joint!r}", trace)
        joints[joint] = trace
    if not joints:
        raise LogError(f"{source}: no samples")
    rate = float(np.median(list(rates.values())))
    off = {j: r for j, r in rates.items() if abs(r - rate) > 1e-3 * rate}
    if off:
        raise LogError(f"{source}: joints logged at different rates: {off} against {rate:g} Hz")
    if rate_hz is not None and abs(rate - rate_hz) > 1e-3 * rate_hz:
        raise LogError(f"{source}: logged at {rate:g} Hz, but the net's history is spaced for {rate_hz:g} Hz; "
                       "resample the log or set the rate it was logged at")
    return MotorLog(source=source, rate_hz=rate, joints=joints)


def _check_trace(where: str, t: JointTrace) -> float:
    """Checks one joint's samples and returns their rate (Hz)."""
    if len(t) < MIN_SAMPLES:
        raise LogError(f"{where}: {len(t)} samples, at least {MIN_SAMPLES} are needed")
    dt = np.diff(t.time)
    if np.any(dt <= 0):
        i = int(np.argmax(dt <= 0))
        raise LogError(f"{where}: time_s is not strictly increasing (t={t.time[i]:.6g} s then {t.time[i + 1]:.6g} s)")
    period = float(np.median(dt))
    far = np.abs(dt - period) > JITTER * period
    if np.any(far):
        i = int(np.argmax(far))
        kind = "a gap" if dt[i] > period else "an early tick"
        raise LogError(f"{where}: {kind} of {dt[i]:.6g} s at t={t.time[i]:.6g} s in a log sampled every "
                       f"{period:.6g} s; cut the log there or fill the gap")
    for name in ("command", "position"):
        worst = float(np.max(np.abs(getattr(t, name))))
        if worst > MAX_ABS_POSITION:
            raise LogError(f"{where}: {name}_rad reaches {worst:.4g}, more than 2 pi: degrees or raw encoder "
                           "counts? The format takes radians")
    _check_velocity_units(where, t, period)
    return 1.0 / period


def _check_velocity_units(where: str, t: JointTrace, period: float) -> None:
    """A logged velocity must agree in scale with the position's own rate of change; a
    log in deg/s or rpm is off by 57 or 9.5."""
    moved = np.gradient(t.position, period)
    if np.sqrt(np.mean(moved**2)) < 0.3:
        return  # too slow for the scales to be compared through encoder noise
    scale = float(np.dot(t.velocity, moved) / np.dot(moved, moved))
    if not 0.5 <= scale <= 2.0:
        raise LogError(f"{where}: velocity_rad_s is {scale:.3g} x the rate of change of position_rad; "
                       "velocity in other units (deg/s, rpm) or a sign flip?")


def save(path: str, log: dict[str, JointTrace]) -> None:
    """Writes `log` (joint name -> trace) as .npz or .csv, by the extension of `path`."""
    columns: dict[str, list] = {n: [] for n in REQUIRED + OPTIONAL}
    for joint, t in log.items():
        for name, value in (("time_s", t.time), ("joint", np.full(len(t), joint)), ("command_rad", t.command),
                            ("position_rad", t.position), ("velocity_rad_s", t.velocity), ("torque_nm", t.torque),
                            ("current_a", t.current)):
            columns[name].append(value)
    out = {n: np.concatenate(v) for n, v in columns.items() if v and all(x is not None for x in v)}
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    tmp = f"{path}.tmp{os.getpid()}"
    if path.lower().endswith(".npz"):
        with open(tmp, "wb") as f:
            np.savez_compressed(f, **out)
    elif path.lower().endswith(".csv"):
        names = list(out)
        with open(tmp, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(names)
            fmt = [(lambda v: v) if n == "joint" else (lambda v: repr(float(v))) for n in names]
            for row in zip(*(out[n] for n in names)):
                w.writerow([f(v) for f, v in zip(fmt, row)])
    else:
        raise LogError(f"{path}: unknown log type; expected .npz or .csv")
    os.replace(tmp, path)
