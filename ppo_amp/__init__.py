"""PPO with Adversarial Motion Priors for the 12-DOF biped's velocity-tracking walk."""
