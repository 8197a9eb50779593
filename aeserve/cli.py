"""aeserve: serve, package your own autoencoder, fit a model on a CSV, check and list models.

Every user mistake (a missing file, a bad option, a model that breaks the contract) ends with
one line on stderr and exit status 2; ``aeserve check`` exits 1 when the folder it checked would
be refused by the server. Only ``package --torch`` and ``fit-csv`` need torch (the ``train``
extra); the other commands run on the runtime install alone, and nothing here imports torch
until one of those two runs.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
import traceback
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

from aeserve.errors import UserError

PROG = "aeserve"
EXIT_USER = 2
MODELS_ENV = "AESERVE_MODEL_DIR"


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage mistake is one line (and exit 2), not the usage block."""

    def error(self, message: str) -> NoReturn:
        self.exit(EXIT_USER, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _models_default() -> Path:
    return Path(os.environ.get(MODELS_ENV, "models"))


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32, width=100)


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(
        prog=PROG,
        description=__doc__.split("\n\n")[0] if __doc__ else None,
        formatter_class=_formatter,
        epilog="Run `aeserve COMMAND --help` for a command's options.",
    )
    parser.add_argument("--traceback", action="store_true", help="show tracebacks of failures")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    sub.required = True

    def command(name: str, help: str, description: str) -> argparse.ArgumentParser:
        p = sub.add_parser(name, help=help, description=description, formatter_class=_formatter)
        # SUPPRESS: given before the command, the flag is not reset by the subcommand's default.
        p.add_argument(
            "--traceback", action="store_true", default=argparse.SUPPRESS, help=argparse.SUPPRESS
        )
        return p

    # -- serve ------------------------------------------------------------------------------
    p = command(
        "serve",
        "serve a model repository over HTTP (as `python -m service`)",
        "Serve every model folder of the repository. Settings come from AESERVE_* variables "
        "(see the README); these flags override them.",
    )
    p.add_argument("--models", type=Path, help=f"model repository (${MODELS_ENV}, default models)")
    p.add_argument("--default-model", metavar="NAME", help="model for requests that name none")
    p.add_argument("--host", help="bind address (AESERVE_HOST, default 0.0.0.0)")
    p.add_argument("--port", type=int, help="TCP port (AESERVE_PORT, default 8000)")
    p.add_argument("--workers", type=int, help="worker processes (AESERVE_WORKERS, default 1)")

    # -- package ----------------------------------------------------------------------------
    p = command(
        "package",
        "turn your own autoencoder (ONNX files or a PyTorch module) into a model folder",
        "Write <models>/<name>/ (model.json, encoder.onnx, decoder.onnx, card.md, plots) from\n"
        "two ONNX files or a PyTorch module, calibrated on normal samples you provide.\n\n"
        "  aeserve package --name my-ae --encoder enc.onnx --decoder dec.onnx --data normal.npy\n"
        "  aeserve package --name my-ae --torch mypkg.models:build --weights ae.pt --data imgs/\n\n"
        "ONNX contract: encoder input 'x' [N, *shape] -> 'z' [N, dim] (VAE: 'mu', 'logvar');\n"
        "decoder 'z' [N, dim] -> 'x_hat' [N, *shape]; float32; the batch axis dynamic.\n"
        "--torch: a factory returning a module with encode(x) and decode(z) (encode may return\n"
        "(mu, logvar)), or a pair (encoder, decoder); it is exported and checked against torch.",
    )
    src = p.add_argument_group("the model (ONNX files, or --torch)")
    src.add_argument("--encoder", type=Path, metavar="ONNX", help="encoder ONNX file")
    src.add_argument("--decoder", type=Path, metavar="ONNX", help="decoder ONNX file")
    src.add_argument(
        "--torch",
        metavar="PKG.MODULE:FACTORY",
        help="a function returning the module (or an (encoder, decoder) pair); needs torch",
    )
    src.add_argument("--weights", type=Path, help="--torch: a state dict file (torch.save)")
    p.add_argument("--name", required=True, help="model name: lowercase letters, digits, . _ -")
    p.add_argument(
        "--data",
        type=Path,
        required=True,
        metavar="PATH",
        help="normal samples for calibration: .npy [N, *shape], a CSV with a header, or a folder "
        "of images",
    )
    p.add_argument("--models", type=Path, help=f"model repository (${MODELS_ENV}, default models)")
    p.add_argument("--kind", choices=["image", "tabular"], help="default: from the data")
    p.add_argument(
        "--range",
        nargs=2,
        type=float,
        metavar=("LO", "HI"),
        help="image value range (default 0 1); tabular inputs are unbounded",
    )
    p.add_argument("--binary", action="store_true", help="the data is 0/1 (outputs can binarize)")
    p.add_argument("--score", choices=["bce", "mse"], help="default: bce for images, mse otherwise")
    p.add_argument(
        "--threshold-rule",
        default="quantile:0.99",
        metavar="RULE",
        help="quantile:Q of the calibration scores (default quantile:0.99)",
    )
    p.add_argument("--drop", nargs="+", default=[], metavar="COL", help="CSV data: columns to skip")
    p.add_argument("--description", default="", help="one line for the card and GET /models")
    p.add_argument("--force", action="store_true", help="replace an existing model folder")

    # -- fit-csv ----------------------------------------------------------------------------
    p = command(
        "fit-csv",
        "train a tabular anomaly model on a CSV in one command (needs torch)",
        "Train a dense autoencoder on DATA.csv and write <models>/<name>/. Categorical columns\n"
        "(text) are one-hot encoded and recorded in the manifest, missing cells imputed as\n"
        "recorded there: the served model takes the raw columns as `records`.\n\n"
        "  aeserve fit-csv transactions.csv --label is_fraud --id-column tx_id --name fraud\n"
        "  aeserve fit-csv sessions.csv --name sessions          # unlabelled: calibration only\n\n"
        "With --label the rows are split 60/20/20 (stratified), the model trains on the normal\n"
        "training rows and is evaluated against IsolationForest and PCA on the test rows.",
    )
    p.add_argument("csv", type=Path, metavar="DATA.csv", help="a CSV (or .csv.gz) with a header")
    p.add_argument("--label", metavar="COL", help="label column (anomaly = --anomaly-values)")
    p.add_argument(
        "--anomaly-values",
        nargs="+",
        default=["1"],
        metavar="V",
        help="label values that mean anomaly (default 1)",
    )
    p.add_argument("--id-column", metavar="COL", help="row id column: not a feature")
    p.add_argument("--drop", nargs="+", default=[], metavar="COL", help="columns to ignore")
    p.add_argument(
        "--categorical",
        nargs="+",
        default=[],
        metavar="COL",
        help="treat numeric codes as categories",
    )
    p.add_argument(
        "--missing",
        choices=["impute", "refuse"],
        default="impute",
        help="missing cells: median / all-zero one-hot (+ indicator), or refuse (default impute)",
    )
    p.add_argument("--max-categories", type=int, default=50, help="per column (default 50)")
    p.add_argument("--name", help="model name (default: from the file name)")
    p.add_argument("--models", type=Path, help=f"model repository (${MODELS_ENV}, default models)")
    p.add_argument("--epochs", type=int, help="default: about 4,000 optimiser steps")
    p.add_argument("--latent-dim", type=int, help="default: features / 3, between 2 and 16")
    p.add_argument("--seed", type=int, default=0, help="split and training seed (default 0)")
    p.add_argument(
        "--threshold-rule",
        metavar="RULE",
        help="quantile:Q or best_f1 (labelled only); default quantile:0.99",
    )
    p.add_argument("--train-on", choices=["normal", "all"], default="normal", help="labelled data")
    p.add_argument("--description", default="", help="one line for the card and GET /models")
    p.add_argument("--force", action="store_true", help="replace an existing model folder")
    p.add_argument("--quiet", action="store_true", help="no progress bars")

    # -- check, list ------------------------------------------------------------------------
    p = command(
        "check",
        "validate a model folder as the server would load it",
        "Load DIR as the server does (manifest, sha256 of the ONNX files, signatures, a test\n"
        "batch). Exit 0 when it would serve, 1 when it would be refused (the reason on stderr).",
    )
    p.add_argument("dir", type=Path, metavar="DIR", help="a model folder (with model.json)")
    p = command(
        "list",
        "list the models of a repository and whether each would load",
        "One line per model folder: name, version, family, input, latent size, and OK or the\n"
        "reason the server would refuse it. Exit 1 when any folder would be refused.",
    )
    p.add_argument(
        "models", type=Path, nargs="?", help=f"repository (${MODELS_ENV}, default models)"
    )
    return parser


# -- commands ------------------------------------------------------------------------------------


def cmd_serve(args: argparse.Namespace) -> int:
    if args.models is not None:
        if not args.models.is_dir():
            raise UserError(f"no model repository at {args.models}")
        os.environ[MODELS_ENV] = str(args.models)
    if args.default_model is not None:
        os.environ["AESERVE_DEFAULT_MODEL"] = args.default_model
    from service.__main__ import main as serve_main

    argv = []
    for flag in ("host", "port", "workers"):
        value = getattr(args, flag)
        if value is not None:
            argv += [f"--{flag}", str(value)]
    return serve_main(argv)


def cmd_package(args: argparse.Namespace) -> int:
    from aeserve.package import PackageOptions, package

    out = package(PackageOptions.from_args(args, _models(args.models), _command(args)))
    print(f"wrote {out}")
    return 0


def cmd_fit_csv(args: argparse.Namespace) -> int:
    from aeserve.fitcsv import fit_csv

    out = fit_csv(args, _models(args.models), _command(args))
    print(f"wrote {out}")
    return 0


def cmd_check(args: argparse.Namespace) -> int:
    from aeserve.modeldir import check_folder, describe

    path: Path = args.dir
    if not path.is_dir():
        raise UserError(f"{path} is not a directory")
    runtime, reason = check_folder(path)
    if runtime is None:
        print(f"{PROG}: {path}: refused: {reason}", file=sys.stderr)
        return 1
    print(f"{path}: OK  {describe(runtime)}")
    return 0


def cmd_list(args: argparse.Namespace) -> int:
    from aeserve.modeldir import check_folder, describe

    root: Path = args.models or _models_default()
    if not root.is_dir():
        raise UserError(f"no model repository at {root}")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
    if not folders:
        print(f"{root}: no model folders")
        return 0
    width = max(len(p.name) for p in folders)
    refused = 0
    for path in folders:
        runtime, reason = check_folder(path)
        if runtime is None:
            refused += 1
            print(f"{path.name:<{width}}  REFUSED  {reason}")
        else:
            print(f"{path.name:<{width}}  OK       {describe(runtime)}")
    return 1 if refused else 0


COMMANDS: dict[str, Callable[[argparse.Namespace], int]] = {
    "serve": cmd_serve,
    "package": cmd_package,
    "fit-csv": cmd_fit_csv,
    "check": cmd_check,
    "list": cmd_list,
}


def _models(given: Path | None) -> Path:
    return given if given is not None else _models_default()


def _command(args: argparse.Namespace) -> str:
    """The command line as typed, for the manifest's ``training.command``."""
    return shlex.join([PROG, *args.argv])


def _one_line(exc: BaseException) -> str:
    """The message's first non-empty line (library errors can run to several)."""
    return next((line.strip() for line in str(exc).splitlines() if line.strip()), "")


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = build_parser().parse_args(argv)
    args.argv = argv
    try:
        return COMMANDS[args.command](args)
    except UserError as exc:
        if args.traceback:
            traceback.print_exc()
        print(f"{PROG} {args.command}: error: {_one_line(exc)}", file=sys.stderr)
        return EXIT_USER
    except KeyboardInterrupt:
        print(f"{PROG} {args.command}: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # a bug, not a user mistake: one line, the traceback on request
        if args.traceback:
            traceback.print_exc()
        print(
            f"{PROG} {args.command}: internal error: {type(exc).__name__}: {_one_line(exc)} "
            "(run with --traceback for details)",
            file=sys.stderr,
        )
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
