"""onnxruntime sessions: how a model's ONNX files are opened (the runtime runs them)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import onnxruntime as ort

F32 = npt.NDArray[np.float32]
F64 = npt.NDArray[np.float64]


@dataclass(frozen=True)
class OnnxOptions:
    """onnxruntime session settings for a server (see docs/benchmarks.md for the measurements).

    One intra-op thread per session: requests (or micro-batches) of small dense models finish in
    tens of microseconds, far below what splitting a GEMM across threads saves, and every extra
    thread competes with the event loop for the same cores. No spinning: idle pool threads that
    spin burn a core between requests. The CPU arena stays on: it reuses buffers between runs.
    """

    intra_op_threads: int = 1  # 0: onnxruntime picks (all cores)
    inter_op_threads: int = 1
    spinning: bool = False
    arena: bool = True


def open_session(path: Path, options: OnnxOptions) -> Any:
    """An onnxruntime CPU session with the configured threading, spinning and arena."""
    so = ort.SessionOptions()
    so.intra_op_num_threads = options.intra_op_threads
    so.inter_op_num_threads = options.inter_op_threads
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.enable_cpu_mem_arena = options.arena
    spin = "1" if options.spinning else "0"
    so.add_session_config_entry("session.intra_op.allow_spinning", spin)
    so.add_session_config_entry("session.inter_op.allow_spinning", spin)
    so.log_severity_level = 3  # errors only: load failures are reported by the repository
    return ort.InferenceSession(str(path), sess_options=so, providers=["CPUExecutionProvider"])
