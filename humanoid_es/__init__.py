"""Perturbative evolution strategies training a reservoir-RNN policy for the humanoid."""
