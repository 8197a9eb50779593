"""``python -m training``: train one recipe, or rebuild the whole zoo.

python -m training train training/recipes/font.toml --out models/font
python -m training train font --dry-run   # 2 epochs into a temporary directory
python -m training build-zoo --out models [--only font font-vae] [--jobs 2]
python -m training one-class --models models --only mnist fashion   # no retraining
python -m training list
"""

from __future__ import annotations

import argparse
import logging
import multiprocessing
import shlex
import sys
import tempfile
import time
from collections.abc import Sequence
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
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
    extra = m.training.extra
    print(f"  built in {extra['build_s']:.0f} s wall, {extra['build_cpu_s']:.0f} s CPU")
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
    p_zoo.add_argument(
        "--jobs", type=int, default=1, help="models built at once, one process each (default 1)"
    )

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
    t0 = time.perf_counter()
    built = _build_all(order, args.out, args.quiet, args.jobs)
    missed = [f"{b.name}: {miss}" for b in built for miss in b.missed]
    if not args.quiet:
        _report_times(built, time.perf_counter() - t0, args.jobs)
    for miss in missed:  # why the exit status is 1
        print(f"MISSED: {miss}", file=sys.stderr)
    return 1 if missed else 0


@dataclass
class _Built:
    """One zoo model's build: the targets it missed and its time (nothing when skipped)."""

    name: str
    missed: list[str]
    wall: float = 0.0
    cpu: float = 0.0
    skipped: bool = False


def _build_member(path: str, out: Path, quiet: bool) -> _Built:
    """Build one zoo recipe (in this process or a worker of ``--jobs``)."""
    logging.basicConfig(  # a worker process starts unconfigured
        level=logging.WARNING if quiet else logging.INFO, format="%(levelname)s %(message)s"
    )
    name = recipes.load(path).name
    try:
        res = train_one(path, out / name, quiet=quiet)
    except DatasetUnavailable as exc:  # a user-provided file (creditcard) is absent
        log.warning("skipping %s: %s", name, exc)
        return _Built(name, [], skipped=True)
    extra = res.manifest.training.extra
    return _Built(name, list(res.evaluation.missed), extra["build_s"], extra["build_cpu_s"])


def _build_all(order: list[recipes.Recipe], out: Path, quiet: bool, jobs: int) -> list[_Built]:
    """Every recipe of ``order``, ``jobs`` at a time (one process each, started fresh: each
    model trains with its own seed and one torch thread, so the files do not depend on
    ``jobs``); a model waits for the models it compares with."""
    paths = {r.name: str(r.path) for r in order}
    if jobs <= 1:
        return [_build_member(paths[r.name], out, quiet) for r in order]
    done: dict[str, _Built] = {}
    pending = list(order)
    ctx = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx) as pool:
        running: dict[Future[_Built], str] = {}
        while pending or running:
            for r in list(pending):
                if set(r.evaluate.compare_with) & set(paths) <= set(done):
                    running[pool.submit(_build_member, paths[r.name], out, quiet)] = r.name
                    pending.remove(r)
            finished, _ = wait(running, return_when=FIRST_COMPLETED)
            for f in finished:
                done[running.pop(f)] = f.result()
    return [done[r.name] for r in order]


def _report_times(built: list[_Built], elapsed: float, jobs: int) -> None:
    """Each model's build time (wall and CPU), their sums and the elapsed time."""
    print(f"\n{'model':20s} {'wall s':>8s} {'CPU s':>8s}")
    for b in built:
        print(f"{b.name:20s} {b.wall:8.0f} {b.cpu:8.0f}" + ("  (skipped)" if b.skipped else ""))
    wall, cpu = sum(b.wall for b in built), sum(b.cpu for b in built)
    print(f"{'total':20s} {wall:8.0f} {cpu:8.0f}")
    print(f"elapsed {elapsed:.0f} s = {elapsed / 60:.1f} min ({jobs} job{'s' if jobs > 1 else ''})")
