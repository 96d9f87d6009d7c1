"""ONNX graphs of trained policies, with metadata, checked against JAX before they ship.

A policy is written op by op with `onnx.helper` (no converter, no TensorFlow): the
pipelines build their own graphs with `Graph` and fold their observation normaliser in
with `normalize`, so the model takes the env's raw observation. The run's facts a
robot's firmware needs go into `metadata_props` as JSON values (floats at full
precision). `verify` runs onnxruntime on recorded inputs and returns the largest
absolute difference from the JAX outputs; `latency` times single calls on one thread.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
from jaxtyping import Float
from onnx import TensorProto, helper, numpy_helper

from common import normalizer
from common.errors import UserError

OPSET = 17
# The leading axis of every input and output: any number of observations per call.
BATCH = "batch"


class Graph:
    """Nodes and constants of one graph, with fresh names for every intermediate value."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.constants: list[onnx.TensorProto] = []
        self._count = 0

    def _name(self, stem: str) -> str:
        self._count += 1
        return f"{stem}_{self._count}"

    def const(self, stem: str, value: np.ndarray) -> str:
        name = self._name(stem)
        self.constants.append(numpy_helper.from_array(np.asarray(value, np.float32), name))
        return name

    def const_int(self, stem: str, value: list[int]) -> str:
        name = self._name(stem)
        self.constants.append(numpy_helper.from_array(np.asarray(value, np.int64), name))
        return name

    def op(self, op_type: str, *inputs: str, output: str | None = None, **attrs: Any) -> str:
        out = output or self._name(op_type.lower())
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], **attrs))
        return out

    def dense(self, x: str, weight: Float[np.ndarray, "out inp"], bias: Float[np.ndarray, " out"] | None,
              stem: str) -> str:
        """x @ weight.T + bias, for [batch, in] x."""
        args = [x, self.const(f"{stem}_w", weight)] + ([self.const(f"{stem}_b", bias)] if bias is not None else [])
        return self.op("Gemm", *args, transB=1)


def normalize(g: Graph, x: str, stats: normalizer.RunningStats, *, clip: float | None, eps: float = 1e-8,
              std_floor: float = 0.0, zero_below: float = 0.0) -> str:
    """`common.normalizer.normalize` with the statistics folded into constants."""
    variance = np.asarray(stats.variance, np.float32)
    std = np.maximum(np.sqrt(variance + np.float32(eps)), np.float32(std_floor))
    started = float(stats.count) > 1.0
    y = g.op("Div", g.op("Sub", x, g.const("obs_mean", stats.mean)), g.const("obs_std", std if started else 1.0))
    if zero_below > 0.0 and started:
        y = g.op("Mul", y, g.const("obs_kept", (np.sqrt(variance) >= zero_below).astype(np.float32)))
    if clip is not None:
        y = g.op("Clip", y, g.const("clip_low", np.float32(-clip)), g.const("clip_high", np.float32(clip)))
    return y


def build(g: Graph, inputs: dict[str, int], outputs: dict[str, int], metadata: dict[str, Any],
          name: str) -> onnx.ModelProto:
    """The model of `g` with `[batch, size]` float inputs and outputs; metadata as JSON values."""
    value = lambda n, size: helper.make_tensor_value_info(n, TensorProto.FLOAT, [BATCH, size])
    graph = helper.make_graph(g.nodes, name, [value(n, s) for n, s in inputs.items()],
                              [value(n, s) for n, s in outputs.items()], initializer=g.constants)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)], producer_name="humanoid-locomotion-jax")
    helper.set_model_props(model, {k: json.dumps(v) for k, v in metadata.items()})
    onnx.checker.check_model(model, full_check=True)
    return model


def save(model: onnx.ModelProto, path: str) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(path)) or ".", exist_ok=True)
    tmp = f"{path}.tmp"
    onnx.save(model, tmp)
    os.replace(tmp, path)
    return path


def read_metadata(path: str) -> dict[str, Any]:
    """The JSON metadata of an exported model, or one clear error for a file that is not one."""
    try:
        model = onnx.load(path, load_external_data=False)
    except Exception as e:  # noqa: BLE001  (OSError, protobuf's DecodeError, ...: all mean "not a model")
        raise UserError(f"--inspect: {path!r} is not a readable ONNX model ({type(e).__name__}: {e})") from None
    try:
        return {p.key: json.loads(p.value) for p in model.metadata_props}
    except json.JSONDecodeError as e:
        raise UserError(f"--inspect: {path!r} has metadata that is not JSON ({e})") from None


def session(path: str, threads: int = 1) -> ort.InferenceSession:
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    return ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])


def verify(path: str, feeds: dict[str, np.ndarray], expected: dict[str, np.ndarray]) -> float:
    """Largest |onnxruntime - JAX| over every output, for the rows of `feeds`."""
    outputs = session(path, threads=0).run(list(expected), {k: np.asarray(v, np.float32) for k, v in feeds.items()})
    return max(float(np.max(np.abs(o - np.asarray(expected[k], np.float32)))) for o, k in zip(outputs, expected))


def latency(path: str, feed: Callable[[int], dict[str, np.ndarray]], calls: int = 2000) -> dict[str, float]:
    """p50 and p99 milliseconds of one single-row call on one CPU thread (after 100 warm-up calls)."""
    sess = session(path, threads=1)
    times = []
    for i in range(calls + 100):
        row = feed(i)
        start = time.perf_counter()
        sess.run(None, row)
        if i >= 100:
            times.append(time.perf_counter() - start)
    ms = 1e3 * np.asarray(times)
    return {"latency_ms_p50": float(np.percentile(ms, 50)), "latency_ms_p99": float(np.percentile(ms, 99))}
