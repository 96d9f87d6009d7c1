"""Settings of the `"biped_walk"` task: robot names, observation layout, commands,
reward weights, termination and domain randomisation, all in one frozen dataclass.

Every field is a `common.envs.make("biped_walk", **overrides)` override. Ranges are
(low, high) pairs drawn uniformly.
"""

from __future__ import annotations

import dataclasses
import functools

import mujoco

from common import contact, robots
from common.envs.biped import rewards

# Observation terms the actor may read, in any order (`obs_terms`); sizes for 12 joints.
OBS_TERM_SIZES = {
    "base_ang_vel": 3,  # base angular velocity, base frame, x ang_vel_scale
    "projected_gravity": 3,  # unit gravity direction in the base frame
    "command": 3,  # (vx, vy, yaw rate) the policy is asked to track
    "joint_pos": 12,  # joint angles minus the default pose
    "joint_vel": 12,  # joint velocities x joint_vel_scale
    "last_action": 12,  # the policy's previous output
    "base_lin_vel": 3,  # base linear velocity, base frame, x lin_vel_scale (privileged by default)
}

# The config field each observation term is multiplied by (terms not named: 1).
OBS_TERM_SCALE_FIELDS = {"base_ang_vel": "ang_vel_scale", "joint_vel": "joint_vel_scale", "base_lin_vel": "lin_vel_scale"}

# The critic reads the actor's terms without noise, plus what a real robot cannot sense.
PRIVILEGED_TERMS = ("base_lin_vel", "foot_contact", "base_height", "push_force", "friction")
PRIVILEGED_SIZES = {"base_lin_vel": 3, "foot_contact": 2, "base_height": 1, "push_force": 3, "friction": 1}

# Reward terms, each logged as `reward/<name>`, and their default weights: the registry's
# (common/envs/biped/rewards.py, TERMS).
REWARD_TERMS = tuple(rewards.TERMS)
DEFAULT_REWARD_SCALES = tuple((name, term.weight) for name, term in rewards.TERMS.items())

# Domain-randomisation fields (`randomize=False` turns all of them off), which a
# training config keeps in its own section.
RANDOMIZE_FIELDS = (
    "randomize", "friction_range", "mass_scale_range", "damping_scale_range", "latency_steps", "push_force_range",
    "push_interval_steps", "push_duration_steps", "push_direction", "obs_noise_scale", "noise_ang_vel", "noise_gravity",
    "noise_joint_pos", "noise_joint_vel",
)

# Physics profiles of this robot: the MJCF's own integrator and solver settings are
# already chosen for it, so `fast` only replaces implicit collisions by foot-floor pairs.
PROFILES = {
    "fast": robots.PhysicsProfile(contacts="pairs"),
    "mjcf": robots.PhysicsProfile(contacts="all"),
}


@dataclasses.dataclass(frozen=True)
class BipedWalkConfig:
    """Every field can be overridden through `common.envs.make("biped_walk", ...)`."""

    xml_path: str = robots.BIPED_XML
    physics: str = "fast"
    impl: str = "jax"
    solver_iterations: int | None = None
    ls_iterations: int | None = None
    contact_geoms: tuple[str, ...] = ("left_foot", "right_foot")
    foot_sites: tuple[str, ...] = ("left_foot_site", "right_foot_site")
    floor_geom: str = "floor"
    base_body: str = "base"
    keyframe: str = "home"
    # "ideal": the MJCF's position servos. "learned": `actuator_net` (a file written by
    # `experiments.actuator train`, common/actuator/net.py) gives each joint's torque at
    # every physics step from its history of position error and velocity; the servos
    # become torque motors (gain 1, effort limits kept), and the joints take the net
    # file's mechanics (rotor inertia, Coulomb and viscous friction) in place of the
    # MJCF's armature, friction loss and damping (which stands in for a servo's D gain).
    actuator: str = "ideal"
    actuator_net: str | None = None
    # 200 Hz physics (the MJCF's 5 ms) under a 50 Hz policy.
    frame_skip: int = 4
    episode_length: int = 1000

    # Joint target = default + action_scale x effort limit / stiffness x action. Actions
    # are tanh-squashed to [-1, 1], so this bounds every target: at 0.3 the knee reaches
    # 0.21 rad past its default, while the bundled walking clips need 0.64 (hip pitch
    # 0.34 of 0.19, ankle 0.23 of 0.18). At 1.0 a full action is the effort limit.
    action_scale: float = 1.0
    obs_terms: tuple[str, ...] = (
        "base_ang_vel", "projected_gravity", "command", "joint_pos", "joint_vel", "last_action",
    )
    ang_vel_scale: float = 0.25
    joint_vel_scale: float = 0.05
    lin_vel_scale: float = 2.0

    # Command ranges at curriculum level 0 and at level 1; level l draws from the
    # ranges interpolated linearly between them.
    command_vx_start: tuple[float, float] = (0.0, 0.3)
    command_vx: tuple[float, float] = (-0.3, 0.8)
    command_vy_start: tuple[float, float] = (0.0, 0.0)
    command_vy: tuple[float, float] = (-0.3, 0.3)
    command_yaw_start: tuple[float, float] = (0.0, 0.0)
    command_yaw: tuple[float, float] = (-0.8, 0.8)
    # Policy steps between command draws.
    command_resample_steps: tuple[int, int] = (150, 350)
    # Fraction of draws that ask the robot to stand still.
    command_zero_prob: float = 0.1
    # Planar commands below this norm count as "stand still" (no air-time reward).
    command_deadband: float = 0.05
    # A fixed (vx, vy, yaw) command for every episode (evaluation), or None to draw.
    fixed_command: tuple[float, float, float] | None = None
    # Heading hold (1/s; 0 = off), the command layer a robot's operator interface adds: a
    # heading target integrates the drawn yaw rate, and the yaw rate the policy sees (and is
    # rewarded for tracking) is the drawn one + heading_hold x heading error, clipped to the
    # widest `command_yaw`. A policy that veers at a zero yaw command is steered back.
    heading_hold: float = 0.0

    reward_scales: tuple[tuple[str, float], ...] = DEFAULT_REWARD_SCALES
    tracking_sigma: float = 0.25
    base_height_target: float = 0.46
    soft_joint_limit: float = 0.9
    # Touch-down pays air time beyond this: the bundled walk swings a foot for ~0.2 s at
    # 0.5 m/s (4.6 steps/s), which a 0.25 s target would charge for.
    feet_air_time_target: float = 0.15
    max_contact_force: float = 120.0

    # Termination (after `grace_steps` policy steps from a reset).
    min_base_height: float = 0.3
    # The episode ends when the base z axis tilts further than this from vertical (rad).
    max_tilt: float = 1.0
    grace_steps: int = 10
    max_qvel: float = 100.0

    # Reset: joint angles drawn within +-reset_joint_noise of the default pose; random yaw.
    reset_joint_noise: float = 0.05
    reset_random_yaw: bool = True

    # Domain randomisation, drawn per episode; `randomize=False` gives nominal physics,
    # no latency, no pushes and no observation noise (evaluation).
    randomize: bool = True
    friction_range: tuple[float, float] = (0.4, 1.2)
    mass_scale_range: tuple[float, float] = (0.9, 1.1)
    damping_scale_range: tuple[float, float] = (0.7, 1.3)
    latency_steps: tuple[int, int] = (0, 3)
    push_force_range: tuple[float, float] = (5.0, 50.0)
    push_interval_steps: tuple[int, int] = (150, 400)
    push_duration_steps: int = 5
    # "any": a horizontal direction drawn uniformly; "lateral": to the base's left or right.
    push_direction: str = "any"
    # Observation noise: uniform +-level x obs_noise_scale, in the term's own units
    # (before its scale factor).
    obs_noise_scale: float = 1.0
    noise_ang_vel: float = 0.2
    noise_gravity: float = 0.05
    noise_joint_pos: float = 0.01
    noise_joint_vel: float = 1.5

    @property
    def heading_hold_max_rate(self) -> float:
        """The yaw rate (rad/s) the heading hold may ask for: the widest `command_yaw`."""
        return max(abs(v) for v in self.command_yaw)

    def obs_scale(self, term: str) -> float:
        """The factor observation term `term` is multiplied by."""
        field = OBS_TERM_SCALE_FIELDS.get(term)
        return 1.0 if field is None else float(getattr(self, field))

    def load_mj_model(self) -> mujoco.MjModel:
        """The MuJoCo C model this config simulates (profile and overrides applied)."""
        return robots.load_model(
            self.xml_path,
            self.physics,
            contact_geoms=self.contact_geoms,
            floor_geom=self.floor_geom,
            solver_iterations=self.solver_iterations,
            ls_iterations=self.ls_iterations,
            profiles=PROFILES,
            sensors=functools.partial(
                contact.add_force_sensors, geoms=self.contact_geoms, partner=self.floor_geom
            ),
        )

    @property
    def observation_size(self) -> int:
        return sum(OBS_TERM_SIZES[t] for t in self.obs_terms)

    @property
    def critic_observation_size(self) -> int:
        noiseless = sum(OBS_TERM_SIZES[t] for t in self.obs_terms)
        extra = [t for t in PRIVILEGED_TERMS if t not in self.obs_terms]
        return noiseless + sum(PRIVILEGED_SIZES[t] for t in extra)


def _pair(value, name: str, *, ints: bool = False, lo: float | None = None) -> None:
    ok = isinstance(value, tuple) and len(value) == 2 and value[0] <= value[1]
    if ok and ints:
        ok = all(isinstance(v, int) for v in value)
    if ok and lo is not None:
        ok = value[0] >= lo
    if not ok:
        kind = "integers" if ints else "numbers"
        bound = f", both >= {lo}" if lo is not None else ""
        raise ValueError(f"{name}: must be a (low, high) pair of {kind} with low <= high{bound}, got {value!r}")


def validate(c: BipedWalkConfig) -> None:
    """Raises ValueError naming the first field that breaks a rule (before any compile)."""
    unknown = [t for t in c.obs_terms if t not in OBS_TERM_SIZES]
    if unknown or len(set(c.obs_terms)) != len(c.obs_terms) or not c.obs_terms:
        raise ValueError(f"obs_terms: must be distinct names from {sorted(OBS_TERM_SIZES)}, got {c.obs_terms!r}")
    names = [n for n, _ in c.reward_scales]
    bad = sorted(set(names) - set(REWARD_TERMS))
    if bad or len(set(names)) != len(names):
        raise ValueError(f"reward_scales: unknown or repeated terms {bad or names}; known: {REWARD_TERMS}")
    for name in ("command_vx_start", "command_vx", "command_vy_start", "command_vy",
                 "command_yaw_start", "command_yaw", "friction_range"):
        _pair(getattr(c, name), name)
    _pair(c.mass_scale_range, "mass_scale_range", lo=0.01)
    _pair(c.damping_scale_range, "damping_scale_range", lo=0.0)
    _pair(c.friction_range, "friction_range", lo=0.0)
    _pair(c.push_force_range, "push_force_range", lo=0.0)
    _pair(c.latency_steps, "latency_steps", ints=True, lo=0)
    _pair(c.command_resample_steps, "command_resample_steps", ints=True, lo=1)
    _pair(c.push_interval_steps, "push_interval_steps", ints=True, lo=1)
    if c.fixed_command is not None and len(c.fixed_command) != 3:
        raise ValueError(f"fixed_command: must be (vx, vy, yaw rate) or None, got {c.fixed_command!r}")
    for name in ("frame_skip", "episode_length"):
        if not isinstance(getattr(c, name), int) or getattr(c, name) < 1:
            raise ValueError(f"{name}: must be a positive integer, got {getattr(c, name)!r}")
    for name in ("grace_steps", "push_duration_steps"):
        if not isinstance(getattr(c, name), int) or getattr(c, name) < 0:
            raise ValueError(f"{name}: must be an integer >= 0, got {getattr(c, name)!r}")
    if not (isinstance(c.heading_hold, (int, float)) and 0.0 <= c.heading_hold < float("inf")):
        raise ValueError(f"heading_hold: must be a finite number >= 0 (1/s; 0 = off), got {c.heading_hold!r}")
    for name in ("action_scale", "tracking_sigma", "max_tilt", "max_qvel", "max_contact_force"):
        if not getattr(c, name) > 0:
            raise ValueError(f"{name}: must be > 0, got {getattr(c, name)!r}")
    if c.actuator not in ("ideal", "learned"):
        raise ValueError(f"actuator: must be 'ideal' or 'learned', got {c.actuator!r}")
    if (c.actuator == "learned") != (c.actuator_net is not None):
        raise ValueError("actuator_net: a net file goes with actuator='learned' and only with it, "
                         f"got actuator={c.actuator!r}, actuator_net={c.actuator_net!r}")
    if c.push_direction not in ("any", "lateral"):
        raise ValueError(f"push_direction: must be 'any' or 'lateral', got {c.push_direction!r}")
    if not 0.0 <= c.command_zero_prob <= 1.0:
        raise ValueError(f"command_zero_prob: must be in [0, 1], got {c.command_zero_prob!r}")
    if not 0.0 < c.soft_joint_limit <= 1.0:
        raise ValueError(f"soft_joint_limit: must be in (0, 1], got {c.soft_joint_limit!r}")
