"""Bad input stops early with one line naming the field; results directories are never damaged."""

import json
import os
import time

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from common import config as config_lib
from common import results
from humanoid_es import config as es_config
from configs import es, es_cpu, es_test, ppo_amp_test


def _config(**overrides):
    c = es_test.get_config()
    c.unlock()
    for k, v in overrides.items():
        c[k] = v
    c.lock()
    return c


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"candidate_chunk": 24}, "candidate_chunk"),  # 64 candidates are not divisible by 24
        ({"pairs": 0}, "pairs"),
        ({"horizon": 200, "early_exit_block": 30}, "early_exit_block"),
        ({"physics": "exact"}, "physics"),
        ({"impl": "warp"}, "impl"),  # no GPU in the test session
        ({"impl": "cpp"}, "impl"),
        ({"solver_iterations": 0}, "solver_iterations"),
        ({"xml_path": "/no/such/humanoid.xml"}, "xml_path"),
        ({"run_name": "../escape"}, "run_name"),
        ({"rollout_queue": True, "early_exit_block": 0}, "rollout_queue"),
        ({"cpu_devices": -1}, "cpu_devices"),
        ({"strategy": "CMA"}, "strategy"),
        ({"max_env_steps": -5}, "max_env_steps"),
        ({"eval_every_env_steps": -1}, "eval_every_env_steps"),
        ({"schedule_env_steps": -1}, "schedule_env_steps"),
        ({"tilt_cost": -1.0}, "tilt_cost"),
        ({"fall_height": 0.0}, "fall_height"),
        ({"fall_height": 2.5}, "fall_height"),
        ({"fall_height": 0.8, "fall_height_rise_from": 10, "fall_height_rise_to": 5}, "fall_height_rise_to"),
        ({"fall_height_rise_to": 1000}, "fall_height_rise_to"),
        ({"fall_height": 0.8, "fall_height_rise_from": -1}, "fall_height_rise_from"),
        ({"train_reset_noise": -0.1}, "train_reset_noise"),
        ({"assist": -0.5}, "assist"),
        ({"assist": 1.5, "assist_env_steps": 1000}, "assist"),
        ({"assist": 0.5}, "assist_env_steps"),
        ({"assist_env_steps": 1000}, "assist_env_steps"),
        ({"assist": 0.5, "assist_env_steps": 1000, "assist_horizon": 0}, "assist_horizon"),
        ({"assist": 0.5, "assist_env_steps": 1000, "assist_horizon": 5000}, "assist_horizon"),
        ({"strategy": "ARS", "schedule_env_steps": 1000}, "schedule_env_steps"),
        ({"strategy": "SNES", "init_from": "/no/such/run"}, "init_from"),
        ({"integrator": "semi-implicit"}, "integrator"),
        ({"contacts": "knees"}, "contacts"),
        ({"max_contact_points": 0}, "max_contact_points"),
        ({"video_seconds": -1.0}, "video_seconds"),
        ({"video_seconds": float("inf")}, "video_seconds"),
    ],
)
def test_validation_names_the_field(overrides, field):
    with pytest.raises(config_lib.ConfigError, match=rf"^config\.{field}: "):
        es_config.validate(_config(**overrides))


@pytest.mark.parametrize("field, value", [("obs_norm", "zscore"), ("action_map", "sigmoid"),
                                          ("trainable", ("w_out", "w_outt")), ("reservoir_seed", -1)])
def test_policy_validation_names_the_field(field, value):
    c = es_test.get_config()
    c.policy[field] = value
    with pytest.raises(config_lib.ConfigError, match=rf"^config\.policy\.{field}: "):
        es_config.validate(c)


def test_valid_configs_pass():
    from configs import es

    es_config.validate(es.get_config())
    es_config.validate(es_test.get_config())
    es_config.validate(es_cpu.get_config())
    with pytest.raises(config_lib.ConfigError, match="devices"):
        es_config.validate(_config(candidate_chunk=32), n_devices=3)


def test_malformed_mjcf_is_one_clear_error(tmp_path):
    from common import envs, robots

    bad = tmp_path / "broken.xml"
    bad.write_text("<mujoco><worldbody><body></mujoco>")
    with pytest.raises(robots.ModelError, match="xml_path: cannot parse MJCF"):
        envs.make("humanoid", xml_path=str(bad))
    no_feet = tmp_path / "no_feet.xml"
    no_feet.write_text(
        '<mujoco><worldbody><geom name="floor" type="plane" size="1 1 .1"/>'
        '<body><freejoint/><geom type="sphere" size=".1"/></body></worldbody></mujoco>'
    )
    with pytest.raises(robots.ModelError, match="no geom named"):
        envs.make("humanoid", xml_path=str(no_feet))
    with pytest.raises(TypeError, match="unknown override"):
        envs.make("humanoid", physic="fast")


def test_results_dir_refuses_a_different_config_and_keeps_its_files(tmp_path):
    cfg = config_lib.to_dict(_config())
    run = results.RunDir(str(tmp_path), "es", "r1", cfg)
    run.log({"iteration": 1, "env_steps": 10, "fitness_mean": 1.5})
    run.log({"iteration": 2, "env_steps": 20, "fitness_mean": 2.5, "eval_return": 7.0})
    before = {n: open(run.sub(n)).read() for n in ("config.json", "metrics.jsonl", "metrics.csv")}

    other = dict(cfg, pairs=cfg["pairs"] * 2)
    with pytest.raises(config_lib.ConfigError, match=r"run_name: .*different config.*pairs"):
        results.RunDir(str(tmp_path), "es", "r1", other)
    assert before == {n: open(run.sub(n)).read() for n in before}

    # Same config (up to resumable fields) reopens it, records intact.
    again = results.RunDir(str(tmp_path), "es", "r1", dict(cfg, num_iterations=99))
    assert again.resumed and [r["iteration"] for r in again.records] == [1, 2]
    again.truncate_after(1)
    assert [json.loads(l)["iteration"] for l in open(again.sub("metrics.jsonl"))] == [1]
    # Reopened records come back from metrics.jsonl with sorted keys, and the truncated
    # record's eval_return column goes with it.
    assert open(again.sub("metrics.csv")).read().splitlines() == ["env_steps,fitness_mean,iteration", "10,1.5,1"]
    png = again.plot("env_steps", ["fitness_mean"], "curve.png")
    assert png == again.sub(os.path.join("plots", "curve.png"))
    with open(png, "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n" and len(f.read()) > 1000


def test_a_run_made_before_a_field_existed_resumes_at_its_default(tmp_path):
    """A config.json without a newer field (here tilt_cost, policy.obs_norm) reads it at
    `configs.es.fields()`'s value: the same run resumes, a changed value is refused."""
    cfg = config_lib.to_dict(_config())
    old = {k: v for k, v in cfg.items() if k != "tilt_cost"}
    old["policy"] = {k: v for k, v in cfg["policy"].items() if k != "obs_norm"}
    results.RunDir(str(tmp_path), "es", "r", old)
    defaults = config_lib.to_dict(es.fields())
    assert results.RunDir(str(tmp_path), "es", "r", cfg, defaults=defaults).resumed
    # Reopening wrote the whole config: write the old one back.
    results.atomic_write_json(os.path.join(tmp_path, "es", "r", "config.json"), old)
    with pytest.raises(config_lib.ConfigError, match=r"different config.*\['tilt_cost'\]"):
        results.RunDir(str(tmp_path), "es", "r", dict(cfg, tilt_cost=1.0), defaults=defaults)
    # Without the defaults both count as changed.
    with pytest.raises(config_lib.ConfigError, match=r"different config.*\['policy', 'tilt_cost'\]"):
        results.RunDir(str(tmp_path), "es", "r", cfg)


def test_metrics_csv_follows_new_columns(tmp_path):
    run = results.RunDir(str(tmp_path), "es", "r", {"a": 1})
    run.log({"iteration": 0, "x": 1.0})
    run.log({"iteration": 1, "x": 2.0, "eval_return": float("nan")})
    rows = open(run.sub("metrics.csv")).read().splitlines()
    assert rows[0].split(",") == ["iteration", "x", "eval_return"]
    assert len(rows) == 3
    assert json.loads(open(run.sub("metrics.jsonl")).read().splitlines()[1])["eval_return"] is None


def _scalars(path):
    events = EventAccumulator(path)
    events.Reload()
    return {tag: [(e.step, e.value) for e in events.Scalars(tag)] for tag in events.Tags()["scalars"]}


def test_tensorboard_reads_back_the_logged_values_once_after_a_resume(tmp_path):
    run = results.RunDir(str(tmp_path), "es", "r", {"a": 1}, tensorboard=True)
    run.truncate_after(-1)
    for i in range(4):
        run.log({"iteration": i, "env_steps": 100 * i, "fitness_mean": 0.5 * i, "note": "text", "eval_return": None})
    run.close()
    # Resumed from the checkpoint of iteration 1: iterations 2-3 are redone with new values.
    again = results.RunDir(str(tmp_path), "es", "r", {"a": 1}, tensorboard=True)
    again.truncate_after(1)
    for i in (2, 3):
        again.log({"iteration": i, "env_steps": 100 * i, "fitness_mean": -float(i)})
    again.close()
    scalars = _scalars(again.path)
    assert set(scalars) == {"env_steps", "fitness_mean"}
    assert scalars["fitness_mean"] == [(0, 0.0), (1, 0.5), (2, -2.0), (3, -3.0)]
    assert [v for _, v in scalars["env_steps"]] == [0, 100, 200, 300]


def test_tensorboard_off_writes_no_event_files(tmp_path):
    run = results.RunDir(str(tmp_path), "es", "r", {"a": 1}, tensorboard=False)
    run.truncate_after(-1)
    run.log({"iteration": 0, "x": 1.0})
    assert not [f for f in os.listdir(run.path) if f.startswith("events.out.tfevents")]


def test_logging_cost_does_not_grow_with_the_run(tmp_path):
    # A PPO+AMP record has ~70 keys. Logging used to rebuild the column list from every
    # record, for every key, on every call: 1.3 s per iteration by iteration 1,100.
    run = results.RunDir(str(tmp_path), "ppo_amp", "r", {"a": 1})
    keys = [f"metric_{i}" for i in range(70)]

    def log_block(start):
        t0 = time.perf_counter()
        for i in range(start, start + 100):
            run.log({"iteration": i, **dict.fromkeys(keys, 1.0)})
        return time.perf_counter() - t0

    first = log_block(0)
    for start in range(100, 1500, 100):
        log_block(start)
    # The fastest of three late blocks: a slow one means the other test worker was busy.
    late = min(log_block(start) for start in (1500, 1600, 1700))
    # Before the fix the late block took ~100x the first; allow generous timing noise.
    assert late < 5 * first + 0.5, (first, late)
    assert len(open(run.sub("metrics.csv")).read().splitlines()) == 1801
    # A reopened run (a resume) indexes the columns of the records it reads back.
    again = results.RunDir(str(tmp_path), "ppo_amp", "r", {"a": 1})
    again.truncate_after(9)
    again.log({"iteration": 10, "new": 2.0})
    header = open(again.sub("metrics.csv")).readline().strip().split(",")
    assert header[-1] == "new" and sorted(header[:-1]) == sorted(["iteration", *keys])


def test_evaluate_under_a_named_profile_drops_the_runs_physics_overrides():
    overrides = es_config.PHYSICS_OVERRIDES
    run = es_cpu.get_config()
    run.contacts, run.max_contact_points = "feet", 8
    assert run.solver_iterations == 2
    gym = config_lib.under_profile(run, "gym", overrides)
    assert gym.physics == "gym" and all(gym[f] is None for f in overrides)
    own = config_lib.under_profile(run, None, overrides)
    assert (own.physics, own.solver_iterations, own.contacts, own.max_contact_points) == (run.physics, 2, "feet", 8)
    assert run.contacts == "feet" and run.solver_iterations == 2  # the run's config is left as it was
    es_config.validate(gym)


def _old_run(root, experiment: str, config: dict, drop: dict) -> str:
    """A run directory whose config.json predates the fields in `drop` (dotted names)."""
    for name in drop:
        node = config
        *parents, leaf = name.split(".")
        for p in parents:
            node = node[p]
        del node[leaf]
    path = os.path.join(root, experiment, "old")
    os.makedirs(os.path.join(path, "checkpoints"))
    with open(os.path.join(path, "config.json"), "w") as f:
        json.dump(config, f)
    return path


def test_a_run_from_before_later_fields_opens_with_their_defaults(tmp_path):
    """What the README promises for runs started before `strategy`, `max_env_steps`,
    `policy.obs_norm`, `policy.action_map`, `config.task` and the biped's heading hold:
    the evaluation tools read them, every missing field at the default that keeps the
    behaviour they trained with, and their own values as they were."""
    from experiments import pipelines

    old = config_lib.to_dict(es_test.get_config())
    old["pairs"], old["candidate_chunk"], old["policy"]["size"] = 8, 16, 32
    path = _old_run(tmp_path, "es", old, ("strategy", "max_env_steps", "policy.obs_norm", "policy.action_map",
                                          "task", "max_contact_points"))
    before = open(os.path.join(path, "config.json")).read()
    c = pipelines.open_run(path).config
    assert (c.pairs, c.candidate_chunk, c.policy.size) == (8, 16, 32)
    assert (c.strategy, c.max_env_steps, c.policy.obs_norm, c.policy.action_map) == ("perturbative", 0, "clip", "tanh")
    assert c.max_contact_points is None
    assert config_lib.to_dict(c.task) == config_lib.to_dict(es.get_config().task)
    # Read, never written: the run's files are as they were.
    assert open(os.path.join(path, "config.json")).read() == before
    assert sorted(os.listdir(path)) == ["checkpoints", "config.json"]

    walker = config_lib.to_dict(ppo_amp_test.get_config())
    walker["num_envs"] = 16
    path = _old_run(tmp_path, "ppo_amp", walker, ("task.heading_hold", "max_env_steps"))
    c = pipelines.open_run(path).config
    assert c.num_envs == 16 and c.max_env_steps == 0
    assert c.task.heading_hold == ppo_amp_test.get_config().task.heading_hold


def test_a_directory_without_a_readable_config_is_one_clear_error(tmp_path):
    from experiments import pipelines

    empty = tmp_path / "es" / "empty"
    empty.mkdir(parents=True)
    with pytest.raises(config_lib.ConfigError, match=r"^--run: '.*empty': no config\.json in it \(not a run"):
        pipelines.open_run(str(empty))
    (empty / "config.json").write_text('{"pairs": 8,')
    with pytest.raises(config_lib.ConfigError, match=r"^--run: '.*empty': its config\.json is unreadable"):
        pipelines.open_run(str(empty))
    assert os.listdir(empty) == ["config.json"]
