"""Reference motions for AMP: convert a GMR pickle, or write the built-in walking clips.

    python -m experiments.motion convert --input=walk.pkl --output=walk.npz --allow_pickle
    python -m experiments.motion generate --output_dir=motions

`convert` refuses to unpickle without `--allow_pickle` (a pickle can run code);
`--joint_map=3,4,...` names the GMR `dof_pos` column of each of the biped's 12 joints.
Bad input ends with one line on stderr and exit status 2.
"""

import os
from collections.abc import Sequence

from absl import flags

from common import cli
from common.errors import UserError
from ppo_amp import motion, motion_gen

_INPUT = flags.DEFINE_string("input", None, "convert: GMR .pkl file to read.")
_OUTPUT = flags.DEFINE_string("output", None, "convert: .npz file to write.")
_ALLOW_PICKLE = flags.DEFINE_bool("allow_pickle", False, "convert: unpickle the input (only for files you trust).")
_JOINT_MAP = flags.DEFINE_list("joint_map", None, "convert: dof_pos column of each biped joint, in actuator order.")
_OUTPUT_DIR = flags.DEFINE_string("output_dir", None, "generate: directory for the generated .npz clips.")
_SPEEDS = flags.DEFINE_list("speeds", ["0.2", "0.35", "0.5", "0.65"], "generate: walking speeds, m/s.")
_SECONDS = flags.DEFINE_float("seconds", 4.0, "generate: clip length, s.")
_FPS = flags.DEFINE_float("fps", 50.0, "generate: frame rate (the policy rate).")

_COMMANDS = ("convert", "generate")


def _numbers(flag_name: str, values: Sequence[str], kind: type) -> list:
    try:
        return [kind(v) for v in values]
    except ValueError:
        raise UserError(
            f"--{flag_name} must be a comma-separated list of {kind.__name__}s, got {','.join(values)}"
        ) from None


def _convert() -> None:
    if not _INPUT.value or not _OUTPUT.value:
        raise UserError("convert needs --input=<GMR .pkl> and --output=<.npz>")
    joint_map = None if _JOINT_MAP.value is None else _numbers("joint_map", _JOINT_MAP.value, int)
    clip = motion.convert_gmr_pkl(_INPUT.value, _OUTPUT.value, allow_pickle=_ALLOW_PICKLE.value, joint_map=joint_map)
    print(f"wrote {_OUTPUT.value}: {clip.num_frames} frames at {clip.fps:g} fps")


def _generate() -> None:
    if not _OUTPUT_DIR.value:
        raise UserError("generate needs --output_dir=<directory>")
    speeds = _numbers("speeds", _SPEEDS.value, float)
    for clip in motion_gen.generate_walking_clips(speeds, seconds=_SECONDS.value, fps=_FPS.value):
        path = os.path.join(_OUTPUT_DIR.value, f"{clip.name}.npz")
        motion.save_npz(clip, path)
        print(f"wrote {path}: {clip.num_frames} frames at {clip.fps:g} fps")


def main(argv: Sequence[str]) -> None:
    if len(argv) != 2 or argv[1] not in _COMMANDS:
        got = " ".join(argv[1:]) or "no command"
        raise UserError(f"usage: python -m experiments.motion {{{'|'.join(_COMMANDS)}}} [--flags]; got {got}")
    {"convert": _convert, "generate": _generate}[argv[1]]()


if __name__ == "__main__":
    cli.run(main)
