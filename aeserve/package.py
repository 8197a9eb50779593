"""``aeserve package``: a user's autoencoder -> a model folder the service loads.

From two ONNX files (numpy + onnxruntime only, no torch) or from a PyTorch module
(:mod:`aeserve.torch_export`). The steps, each failing with a one-line :class:`UserError`:

1. read the calibration samples (:mod:`aeserve.data`) and check them against the input range;
2. check the ONNX files against the contract: input/output names, float32, per-sample shapes
   that match the data, a dynamic batch axis (declared, and batches of 1 and 3 run);
3. run every sample through encoder and decoder; the score (BCE for images, MSE otherwise),
   calibration quantiles, threshold and latent prior follow the zoo's own rules
   (:func:`training.evaluate.calibrate`, :func:`threshold_for`, :func:`latent_spec`);
4. write model.json, card.md and plots into a hidden folder, load it exactly as the server
   does (:func:`service.repository.load_model`), and only then swap it in.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import numpy as np

from aeserve.card import write_card
from aeserve.data import F32, Kind, Samples, load_samples
from aeserve.errors import UserError
from aeserve.modeldir import check_folder, model_version, swap_in, target
from aeserve.progress import progress
from service.runtime.manifest import (
    DECODER_FILE,
    ENCODER_FILE,
    Files,
    InputSpec,
    Manifest,
    Metric,
    ScoreKind,
    ScoreSpec,
    TrainingInfo,
)
from service.runtime.reference import REFERENCE_FILE
from service.runtime.sessions import OnnxOptions, open_session
from training.evaluate import calibrate, latent_spec, threshold_for
from training.reference import arrays, subset
from training.scoring import scores as score_fn

BATCH = 256  # samples per onnxruntime call while calibrating
RANGE_TOLERANCE = 1e-6


@dataclass(frozen=True)
class PackageOptions:
    name: str
    data: Path
    models: Path
    command: str
    encoder: Path | None = None
    decoder: Path | None = None
    torch: str | None = None
    weights: Path | None = None
    kind: Kind | None = None
    range: tuple[float, float] | None = None
    binary: bool = False
    score: ScoreKind | None = None
    threshold_rule: str = "quantile:0.99"
    drop: tuple[str, ...] = ()
    description: str = ""
    force: bool = False
    quiet: bool = False

    @classmethod
    def from_args(cls, args: argparse.Namespace, models: Path, command: str) -> PackageOptions:
        return cls(
            name=args.name,
            data=args.data,
            models=models,
            command=command,
            encoder=args.encoder,
            decoder=args.decoder,
            torch=args.torch,
            weights=args.weights,
            kind=args.kind,
            range=tuple(args.range) if args.range else None,
            binary=args.binary,
            score=args.score,
            threshold_rule=args.threshold_rule,
            drop=tuple(args.drop),
            description=args.description,
            force=args.force,
        )


def _check_options(opts: PackageOptions) -> None:
    onnx_given = opts.encoder is not None or opts.decoder is not None
    if opts.torch is None and not (opts.encoder and opts.decoder):
        raise UserError("give the model: --encoder and --decoder (ONNX), or --torch")
    if opts.torch is not None and onnx_given:
        raise UserError("give either --torch or --encoder/--decoder, not both")
    if opts.weights is not None and opts.torch is None:
        raise UserError("--weights goes with --torch")
    for flag, path in (("--encoder", opts.encoder), ("--decoder", opts.decoder)):
        if path is not None and not path.is_file():
            raise UserError(f"{flag}: no such file: {path}")
    name, _, arg = opts.threshold_rule.partition(":")
    try:
        q = float(arg) if arg else 0.99
    except ValueError:
        q = -1.0
    if name != "quantile" or not 0 <= q <= 1:
        raise UserError(
            f"--threshold-rule {opts.threshold_rule!r}: use quantile:Q with Q in [0, 1] "
            "(calibration data is all normal, so label-based rules do not apply)"
        )
    if opts.range is not None and not opts.range[0] < opts.range[1]:
        raise UserError(f"--range {opts.range[0]:g} {opts.range[1]:g}: LO must be below HI")


def package(opts: PackageOptions) -> Path:
    """Check, calibrate and write ``opts.models / opts.name``; returns that folder."""
    started = time.perf_counter()
    _check_options(opts)
    out = target(opts.models, opts.name, opts.force)
    samples = load_samples(opts.data, opts.kind, list(opts.drop), quiet=opts.quiet)
    value_range = _value_range(opts, samples)
    kind: ScoreKind = opts.score or ("bce" if samples.kind == "image" or opts.binary else "mse")
    if kind == "bce" and value_range != (0.0, 1.0):
        raise UserError(f"--score bce needs inputs in [0, 1]; the range is {value_range}")

    opts.models.mkdir(parents=True, exist_ok=True)
    parent = Path(tempfile.mkdtemp(prefix=f".{opts.name}.", suffix=".building", dir=opts.models))
    work = parent / opts.name  # named as the model: the server's check compares the two
    work.mkdir()
    try:
        parity = _model_files(opts, samples, work)
        enc = _session(work / ENCODER_FILE, "encoder")
        dec = _session(work / DECODER_FILE, "decoder")
        family, outputs = _check_contract(enc, dec, samples)
        codes, x_hat = _run(enc, dec, outputs, samples.x, opts.quiet)
        _check_outputs(x_hat, kind)
        scores = score_fn(samples.x, x_hat, kind)
        split = f"calibration data: {samples.source}, all normal"
        calibration = calibrate(scores, split)
        threshold = threshold_for(opts.threshold_rule, scores)
        files = Files.hash(work)
        source: dict[str, Any] = (
            {"source": "torch", "factory": opts.torch, "weights": str(opts.weights or "")}
            if opts.torch
            else {"source": "onnx", "encoder": str(opts.encoder), "decoder": str(opts.decoder)}
        )
        manifest = Manifest(
            name=opts.name,
            version=model_version(files.encoder.sha256, files.decoder.sha256),
            created_at=datetime.now(UTC).replace(microsecond=0).isoformat(),
            description=opts.description or "A user's autoencoder packaged by `aeserve package`.",
            family=family,
            input=InputSpec(
                kind=samples.kind,
                shape=samples.shape,
                range=value_range,
                binary=opts.binary,
                features=samples.features,
            ),
            latent=latent_spec(codes, family == "vae"),
            files=files,
            score=ScoreSpec(
                kind=kind,
                calibration=calibration,
                threshold=threshold,
                threshold_rule=opts.threshold_rule,
            ),
            metrics={
                f"{kind}_calibration": Metric(
                    value=float(scores.mean()),
                    split=split,
                    description=f"mean per-sample reconstruction score ({kind}, per value)",
                )
            },
            training=TrainingInfo(
                dataset=samples.source,
                seed=0,
                epochs=0,
                duration_s=0.0,
                architecture=source,
                command=opts.command,
                extra={
                    "packaged": "trained outside aeserve; seed, epochs and duration unknown",
                    "parity_max_abs_diff": parity,
                    "package_seconds": round(time.perf_counter() - started, 2),
                },
            ),
        )
        manifest.write(work)
        write_card(work, manifest, samples, scores, codes, x_hat, parity)
        _write_reference(work, samples, codes, value_range)
        runtime, reason = check_folder(work)
        if runtime is None:
            raise UserError(f"the packaged model would be refused by the server: {reason}")
        del runtime, enc, dec
        swap_in(work, out)
    finally:
        shutil.rmtree(parent, ignore_errors=True)
    return out


def _write_reference(
    work: Path, samples: Samples, codes: F32, value_range: tuple[float, float] | None
) -> None:
    """``reference.npz`` from the calibration samples (all normal): the web app's latent map."""
    ids = subset(len(samples.x))
    ref = arrays(
        codes[ids],
        ids,
        np.zeros(len(ids), np.int64),
        ["normal"],
        "calibration",
        kind=samples.kind,
        inputs=samples.x[ids],
        value_range=value_range,
    )
    np.savez_compressed(work / REFERENCE_FILE, **ref)  # type: ignore[arg-type]


def _value_range(opts: PackageOptions, samples: Samples) -> tuple[float, float] | None:
    if samples.kind == "tabular":
        if opts.range is not None:
            raise UserError("--range is for image models; tabular inputs are unbounded")
        return None
    lo, hi = opts.range or (0.0, 1.0)
    x_min, x_max = float(samples.x.min()), float(samples.x.max())
    if x_min < lo - RANGE_TOLERANCE or x_max > hi + RANGE_TOLERANCE:
        raise UserError(
            f"{opts.data}: values run from {x_min:g} to {x_max:g}, outside the input range "
            f"[{lo:g}, {hi:g}]; scale the data or pass --range LO HI"
        )
    return (lo, hi)


def _model_files(opts: PackageOptions, samples: Samples, work: Path) -> float | None:
    """Put encoder.onnx and decoder.onnx into ``work``; the parity figure for --torch."""
    if opts.torch is not None:
        from aeserve.torch_export import export_module

        return export_module(opts.torch, opts.weights, samples.x, work)
    assert opts.encoder is not None and opts.decoder is not None  # _check_options
    # Copied alone: a graph that needs external-data side files fails to load below.
    shutil.copyfile(opts.encoder, work / ENCODER_FILE)
    shutil.copyfile(opts.decoder, work / DECODER_FILE)
    return None


def _session(path: Path, which: str) -> Any:
    try:
        return open_session(path, OnnxOptions())
    except Exception as exc:  # onnxruntime's load errors have no common public type
        first = (str(exc).strip().splitlines() or [""])[0]
        raise UserError(
            f"the {which} does not load in onnxruntime (it must be one self-contained .onnx "
            f"file): {first}"
        ) from None


def _dims(session: Any, which: str, name: str, per_sample: list[int]) -> None:
    inputs = session.get_inputs()
    if len(inputs) != 1 or inputs[0].name != name:
        names = [i.name for i in inputs]
        raise UserError(
            f"the {which}'s inputs are {names}; the contract needs one input named '{name}' "
            f"(torch.onnx.export(..., input_names=['{name}']))"
        )
    if inputs[0].type != "tensor(float)":
        raise UserError(f"the {which}'s input is {inputs[0].type}; it must be float32")
    shape = list(inputs[0].shape)
    if len(shape) != 1 + len(per_sample) or any(
        isinstance(got, int) and got != want
        for got, want in zip(shape[1:], per_sample, strict=True)
    ):
        raise UserError(
            f"the {which}'s input '{name}' has shape {shape}; the data needs [N, "
            f"{', '.join(map(str, per_sample))}]"
        )
    if isinstance(shape[0], int) and shape[0] > 0:
        raise UserError(
            f"the {which}'s batch axis is fixed at {shape[0]}; export it dynamic "
            f"(dynamic_axes={{'{name}': {{0: 'N'}}, ...}})"
        )


def _check_contract(enc: Any, dec: Any, samples: Samples) -> tuple[Any, list[str]]:
    """The family and the encoder outputs to read; UserError at the first breach."""
    _dims(enc, "encoder", "x", samples.shape)
    names = [o.name for o in enc.get_outputs()]
    if "z" in names:
        family, outputs = "ae", ["z"]
    elif {"mu", "logvar"} <= set(names):
        family, outputs = "vae", ["mu", "logvar"]
    else:
        raise UserError(
            f"the encoder's outputs are {names}; the contract needs 'z' (or 'mu' and 'logvar' "
            "for a VAE)"
        )
    probe = enc.run(outputs[:1], {"x": samples.x[:1]})[0]
    if probe.ndim != 2 or probe.shape[0] != 1:
        raise UserError(
            f"the encoder gives {list(probe.shape)} for one sample; the code must be [N, dim]"
        )
    dim = int(probe.shape[1])
    _dims(dec, "decoder", "z", [dim])
    if "x_hat" not in [o.name for o in dec.get_outputs()]:
        names = [o.name for o in dec.get_outputs()]
        raise UserError(f"the decoder's outputs are {names}; the contract needs 'x_hat'")
    n = min(3, len(samples.x))
    for which, session, feeds, out, want in (
        ("encoder", enc, {"x": samples.x[:n]}, outputs[0], (n, dim)),
        ("decoder", dec, {"z": np.zeros((n, dim), np.float32)}, "x_hat", (n, *samples.shape)),
    ):
        try:
            got = session.run([out], feeds)[0]
        except Exception as exc:  # onnxruntime's run errors have no common public type
            first = (str(exc).strip().splitlines() or [""])[0]
            raise UserError(
                f"the {which} fails on a batch of {n} ({first}); is its batch axis really "
                "dynamic (no reshape to a fixed batch size)?"
            ) from None
        if tuple(got.shape) != want:
            raise UserError(
                f"the {which} gives {list(got.shape)} for a batch of {n}; expected {list(want)}"
            )
    return family, outputs


def _run(enc: Any, dec: Any, outputs: list[str], x: F32, quiet: bool) -> tuple[F32, F32]:
    """Codes (VAE: means) and reconstructions of every sample, in batches."""
    starts = range(0, len(x), BATCH)
    codes, recon = [], []
    for a in progress(starts, len(starts), "calibrating", quiet=quiet):
        z = enc.run(outputs[:1], {"x": x[a : a + BATCH]})[0]
        codes.append(z)
        recon.append(dec.run(["x_hat"], {"z": z})[0])
    return cast(F32, np.concatenate(codes)), cast(F32, np.concatenate(recon))


def _check_outputs(x_hat: F32, kind: ScoreKind) -> None:
    if not np.isfinite(x_hat).all():
        raise UserError("the model gives NaN or infinite outputs on the calibration data")
    if kind == "bce":
        lo, hi = float(x_hat.min()), float(x_hat.max())
        if lo < -1e-4 or hi > 1 + 1e-4:
            raise UserError(
                f"the decoder's outputs run from {lo:g} to {hi:g}; BCE needs probabilities in "
                "[0, 1] (a sigmoid output): pass --score mse"
            )
