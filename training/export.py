"""Export: ``encoder.onnx`` and ``decoder.onnx`` exactly as the model-repository contract says
(and ``classifier.onnx``, z -> logits, for models with a classifier head).

Through the public API (``torch.onnx.export``) with the TorchScript exporter (``dynamo=False``):
it gives a dynamic batch axis from ``dynamic_axes`` without torch.export tracing, which fails on
this stack. Each file is checked with ``onnx.checker`` and against torch with onnxruntime.
"""

from __future__ import annotations

import io
import logging
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import torch
from torch import nn

from service.runtime.manifest import CLASSIFIER_FILE, DECODER_FILE, ENCODER_FILE
from training.models import Autoencoder

log = logging.getLogger(__name__)

OPSET = 17
PARITY_TOL = 1e-4  # max abs difference between torch and onnxruntime outputs


class ParityError(RuntimeError):
    """onnxruntime disagrees with torch on an exported graph."""


@dataclass(frozen=True)
class ExportResult:
    encoder: Path
    decoder: Path
    max_abs_diff: float  # worst torch-vs-onnxruntime difference over all files and all checks
    classifier: Path | None = None


def to_onnx(module: nn.Module, example: torch.Tensor, inputs: str, outputs: list[str]) -> bytes:
    """Serialise one module to ONNX bytes with axis 0 of every input and output dynamic."""
    buf = io.BytesIO()
    axes = {name: {0: "N"} for name in [inputs, *outputs]}
    with warnings.catch_warnings():
        # torch >= 2.9 warns that this exporter is legacy; it is still public API and the one
        # that works here (see the module docstring). Only that one message is silenced.
        warnings.filterwarnings(
            "ignore", message=".*legacy TorchScript-based ONNX export", category=DeprecationWarning
        )
        torch.onnx.export(
            module,
            (example,),
            buf,  # type: ignore[arg-type]  # a file object is documented, just not typed
            input_names=[inputs],
            output_names=outputs,
            dynamic_axes=axes,
            opset_version=OPSET,
            dynamo=False,
            do_constant_folding=True,
        )
    data = buf.getvalue()
    proto = onnx.load_from_string(data)
    onnx.checker.check_model(proto, full_check=True)
    return data


def _session(path: Path) -> ort.InferenceSession:
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 1
    opts.inter_op_num_threads = 1
    return ort.InferenceSession(str(path), opts, providers=["CPUExecutionProvider"])


def _max_diff(module: nn.Module, sess: ort.InferenceSession, x: torch.Tensor) -> float:
    with torch.no_grad():
        ref = module(x)
    refs = list(ref) if isinstance(ref, tuple) else [ref]
    got = sess.run(None, {sess.get_inputs()[0].name: x.numpy()})
    if len(got) != len(refs):
        raise ParityError(f"onnxruntime returned {len(got)} outputs, torch {len(refs)}")
    worst = 0.0
    for r, g in zip(refs, got, strict=True):
        if tuple(g.shape) != tuple(r.shape) or g.dtype != np.float32:
            raise ParityError(f"output {g.dtype}{g.shape} differs from torch {tuple(r.shape)}")
        worst = max(worst, float(np.max(np.abs(r.numpy() - g))))
    return worst


def check_parity(module: nn.Module, path: Path, inputs: list[torch.Tensor]) -> float:
    """Max |torch - onnxruntime| over ``inputs``; :class:`ParityError` above the tolerance."""
    sess = _session(path)
    worst = max(_max_diff(module, sess, x) for x in inputs)
    if not worst <= PARITY_TOL:
        raise ParityError(f"{path.name}: onnxruntime differs from torch by {worst:.3g}")
    return worst


def export(model: Autoencoder, out_dir: Path, sample: np.ndarray, *, seed: int = 0) -> ExportResult:
    """Write both ONNX files into ``out_dir`` and check them against torch.

    ``sample`` is real data ``[n, *shape]``: the parity check runs on it, on random inputs and
    random codes of other batch sizes (1 and 7, which proves the batch axis is dynamic), and on
    codes spread around the training codes.
    """
    model.eval()
    out_dir.mkdir(parents=True, exist_ok=True)
    enc, dec = model.export_encoder(), model.export_decoder()
    x = torch.from_numpy(np.asarray(sample, np.float32))
    with torch.no_grad():
        z = model.encode(x)
    gen = torch.Generator().manual_seed(seed)
    enc_path, dec_path = out_dir / ENCODER_FILE, out_dir / DECODER_FILE
    enc_path.write_bytes(to_onnx(enc, x[:2], "x", model.export_encoder_outputs()))
    dec_path.write_bytes(to_onnx(dec, z[:2], "z", ["x_hat"]))

    x_checks = [x, x[:1], torch.rand((7, *model.shape), generator=gen)]
    spread = z.std(0, keepdim=True).clamp_min(1.0)
    z_checks = [z, z[:1], z.mean(0) + 2 * spread * torch.randn((7, z.shape[1]), generator=gen)]
    worst = max(check_parity(enc, enc_path, x_checks), check_parity(dec, dec_path, z_checks))
    cls_path = None
    head = getattr(model, "export_classifier", None)
    if head is not None:  # stacked-AE classifiers (training.stacked): z -> logits
        cls_module: nn.Module = head()
        cls_path = out_dir / CLASSIFIER_FILE
        cls_path.write_bytes(to_onnx(cls_module, z[:2], "z", ["logits"]))
        worst = max(worst, check_parity(cls_module, cls_path, z_checks))
    log.info("exported %s and %s (max |torch - ort| = %.2g)", enc_path, dec_path, worst)
    return ExportResult(encoder=enc_path, decoder=dec_path, max_abs_diff=worst, classifier=cls_path)
