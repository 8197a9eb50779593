"""An exported model run with onnxruntime and numpy only (no torch).

Evaluation measures the files that ship, not the torch module they came from; the tests that
re-check the shipped zoo use this too, and :func:`verify_files` checks a model directory's
checksums against its manifest the way the service does.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort

from service.runtime.manifest import (
    CLASSIFIER_FILE,
    DECODER_FILE,
    ENCODER_FILE,
    Manifest,
    sha256_file,
)


class ChecksumError(ValueError):
    """A model file does not match the sha256 its manifest records."""

    def __init__(self, path: Path, expected: str, actual: str) -> None:
        super().__init__(
            f"{path}: sha256 {actual[:12]}… does not match the manifest's {expected[:12]}…"
        )
        self.path = path
        self.expected = expected
        self.actual = actual


def verify_files(model_dir: Path, manifest: Manifest) -> None:
    """Raise :class:`ChecksumError` if an ONNX file differs from the manifest's sha256."""
    for info in manifest.files.all():
        path = model_dir / info.path
        actual = sha256_file(path)
        if actual != info.sha256:
            raise ChecksumError(path, info.sha256, actual)


class OnnxAutoencoder:
    """The sessions of a model directory (encoder, decoder and, when the directory has one,
    classifier); arrays in, arrays out (float32)."""

    def __init__(self, model_dir: Path, threads: int = 1) -> None:
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = threads
        opts.inter_op_num_threads = 1
        providers = ["CPUExecutionProvider"]
        self.encoder = ort.InferenceSession(
            str(model_dir / ENCODER_FILE), opts, providers=providers
        )
        self.decoder = ort.InferenceSession(
            str(model_dir / DECODER_FILE), opts, providers=providers
        )
        self.classifier = (
            ort.InferenceSession(str(model_dir / CLASSIFIER_FILE), opts, providers=providers)
            if (model_dir / CLASSIFIER_FILE).is_file()
            else None
        )
        self.encoder_outputs = [o.name for o in self.encoder.get_outputs()]
        self.variational = self.encoder_outputs == ["mu", "logvar"]

    def encode_all(self, x: np.ndarray) -> list[np.ndarray]:
        """Every encoder output: ``[z]``, or ``[mu, logvar]`` for a VAE."""
        out: list[np.ndarray] = self.encoder.run(None, {"x": np.asarray(x, np.float32)})
        return out

    def encode(self, x: np.ndarray) -> np.ndarray:
        """The code of each sample (VAE: the mean), [N, dim]."""
        return self.encode_all(x)[0]

    def decode(self, z: np.ndarray) -> np.ndarray:
        out: np.ndarray = self.decoder.run(None, {"z": np.asarray(z, np.float32)})[0]
        return out

    def reconstruct(self, x: np.ndarray) -> np.ndarray:
        return self.decode(self.encode(x))

    def logits(self, x: np.ndarray, batch: int = 1000) -> np.ndarray:
        """Class logits [N, classes] of inputs ``x`` (encoder, then classifier), in batches."""
        if self.classifier is None:
            raise ValueError("this model has no classifier.onnx")
        out = []
        for i in range(0, len(x), batch):
            z = self.encode(x[i : i + batch])
            out.append(self.classifier.run(None, {"z": z})[0])
        return np.concatenate(out).astype(np.float32)
