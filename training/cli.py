"""``python -m training``: train one recipe, or rebuild the whole zoo.

python -m training train training/recipes/font.toml --out models/font
python -m training train font --dry-run   # 2 epochs into a temporary directory
python -m training build-zoo --out models [--only font font-vae]
python -m training one-class --models models --only mnist fashion   # no retraining
python -m training list
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from training import recipe as recipes
from training.datasets.tabular import DatasetUnavailable
from training.pipeline import BuildResult, build
from training.reference import write_for_model

log = logging.getLogger("training")
REPO = Path(__file__).resolve().parent.parent


def _rel(path: Path) -> str:
    """A path as written in rebuild commands: relative to the repository when inside it."""
    path = path.resolve()
    try:
        return str(path.relative_to(REPO))
    except ValueError:
        return str(path)


def _command(
    recipe_path: Path, out: Path, seed: int | None, epochs: int | None, data_dir: Path | None = None
) -> str:
    args = ["python", "-m", "training", "train", _rel(recipe_path), "--out", _rel(out)]
    if seed is not None:
        args += ["--seed", str(seed)]
    if epochs is not None:
        args += ["--epochs", str(epochs)]
    if data_dir is not None:
        args += ["--data-dir", _rel(data_dir)]
    return shlex.join(args)


def _report(res: BuildResult) -> None:
    m = res.manifest
    print(f"{m.name} {m.version} -> {res.out_dir}  (parity {res.parity:.1e})")
    for name, metric in m.metrics.items():
        target = f"  [target {metric.target}]" if metric.target else ""
        print(f"  {name:34s} {metric.value:10.4g}{target}")
    for miss in res.evaluation.missed:
        print(f"  MISSED: {miss}", file=sys.stderr)


def train_one(
    recipe_arg: str,
    out: Path | None,
    *,
    seed: int | None = None,
    epochs: int | None = None,
    quiet: bool = False,
    data_dir: Path | None = None,
) -> BuildResult:
    r = recipes.load(recipe_arg)
    assert r.path is not None
    out = out if out is not None else REPO / "models" / r.name
    command = _command(r.path, out, seed, epochs, data_dir)
    data = None if data_dir is None else str(data_dir)
    r = r.with_overrides(seed, epochs, data)
    res = build(r, out, command, quiet=quiet, recipe_ref=_rel(r.path) if r.path else "")
    if not quiet:
        _report(res)
    return res


def zoo_order(paths: list[Path]) -> list[recipes.Recipe]:
    """Zoo recipes ordered so that models named in ``compare_with`` are built first."""
    pending = {r.name: r for r in (recipes.load(p) for p in paths)}
    ordered: list[recipes.Recipe] = []
    while pending:
        ready = [
            r
            for r in pending.values()
            if not set(r.evaluate.compare_with) & set(pending) - {r.name}
        ]
        if not ready:
            raise ValueError(f"circular compare_with among {', '.join(pending)}")
        for r in sorted(ready, key=lambda r: r.name):
            ordered.append(pending.pop(r.name))
    return ordered


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__.split("\n")[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="no progress bars or summary")
    sub = parser.add_subparsers(dest="cmd", required=True)

    p_train = sub.add_parser("train", help="train one recipe into a model directory")
    p_train.add_argument("recipe", help="a recipe file, or a zoo model name (training/recipes/)")
    p_train.add_argument("--out", type=Path, help="model directory (default: models/<name>)")
    p_train.add_argument("--seed", type=int, help="override the recipe's seed")
    p_train.add_argument("--epochs", type=int, help="override the recipe's epochs")
    p_train.add_argument(
        "--data-dir", type=Path, help="read the dataset's files from here (your own copy)"
    )
    p_train.add_argument(
        "--dry-run", action="store_true", help="2 epochs into a temporary directory, then discard"
    )

    p_zoo = sub.add_parser("build-zoo", help="rebuild every model of training/recipes/")
    p_zoo.add_argument("--out", type=Path, default=REPO / "models", help="the model repository")
    p_zoo.add_argument("--only", nargs="+", metavar="NAME", help="rebuild only these models")

    p_ref = sub.add_parser(
        "reference",
        help="write reference.npz (the latent map's codes) into built models, with their encoder",
    )
    p_ref.add_argument("--models", type=Path, default=REPO / "models", help="model repository")
    p_ref.add_argument("--only", nargs="+", metavar="NAME", help="only these models")

    p_one = sub.add_parser(
        "one-class",
        help="re-run the one-class protocol of built models from their recipes (no retraining)",
    )
    p_one.add_argument("--models", type=Path, default=REPO / "models", help="model repository")
    p_one.add_argument("--only", nargs="+", metavar="NAME", required=True, help="these models")

    sub.add_parser("list", help="list the zoo's recipes")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO, format="%(levelname)s %(message)s"
    )

    if args.cmd == "list":
        for r in zoo_order(recipes.zoo()):
            print(f"{r.name:16s} {r.dataset:10s} {r.architecture:10s} {r.description}")
        return 0
    if args.cmd == "reference":
        dirs = sorted(p.parent for p in args.models.glob("*/model.json"))
        if args.only:
            dirs = [d for d in dirs if d.name in args.only]
        for d in dirs:
            try:
                write_for_model(d)
            except DatasetUnavailable as exc:
                log.warning("skipping %s: %s", d.name, exc)
        return 0
    if args.cmd == "one-class":
        from training.restudy import refresh_one_class

        for name in args.only:
            refresh_one_class(args.models / name, recipes.load(name))
        return 0
    if args.cmd == "train":
        if args.dry_run:
            with tempfile.TemporaryDirectory() as tmp:
                res = train_one(
                    args.recipe,
                    Path(tmp) / "model",
                    seed=args.seed,
                    epochs=2,
                    quiet=args.quiet,
                    data_dir=args.data_dir,
                )
            return 0 if res.manifest else 1
        res = train_one(
            args.recipe,
            args.out,
            seed=args.seed,
            epochs=args.epochs,
            quiet=args.quiet,
            data_dir=args.data_dir,
        )
        return 1 if res.evaluation.missed else 0
    # build-zoo
    order = zoo_order(recipes.zoo())
    if args.only:
        unknown = set(args.only) - {r.name for r in order}
        if unknown:
            parser.error(f"no recipe for {', '.join(sorted(unknown))}")
        order = [r for r in order if r.name in args.only]
    missed = 0
    for r in order:
        assert r.path is not None
        try:
            res = train_one(str(r.path), args.out / r.name, quiet=args.quiet)
        except DatasetUnavailable as exc:  # a user-provided file (creditcard) is absent
            log.warning("skipping %s: %s", r.name, exc)
            continue
        missed += len(res.evaluation.missed)
    return 1 if missed else 0
