"""The 12-DOF biped's velocity-tracking walk (`"biped_walk"`): config, randomisation,
reward terms and the task, in separate modules as MuJoCo Playground lays out a robot."""

from common.envs.biped.config import BipedWalkConfig
from common.envs.biped.walk import BipedWalk, make

__all__ = ["BipedWalk", "BipedWalkConfig", "make"]
