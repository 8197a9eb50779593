"""Recipes: one TOML file per zoo model (``training/recipes/<name>.toml``), read with tomllib.

A recipe names the dataset, the architecture and every training option, so that the file plus
the seed fully determine the weights. Unknown keys are errors (a typo must not silently fall
back to a default). Layout::

    name = "font"                     # model name = folder under models/
    description = "..."
    seed = 0
    epochs = 4000

    [dataset]                         # name + loader options (e.g. dir = "data/mnist")
    name = "font"

    [architecture]                    # kind + the config dataclass's fields
    kind = "dense_ae"
    latent_dim = 2

    [training]                        # TrainOptions
    lr = 0.003

    [noise]                           # optional: denoising training (kind, level)
    [regularizer]                     # optional: kind, weight, rho
    [score]                           # threshold_rule = "quantile:0.99"
    [evaluate]                        # evaluation options (EvalOptions)
    [classifier]                      # stacked-AE classifiers only (training.stacked)
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

RECIPES_DIR = Path(__file__).resolve().parent / "recipes"


def build_options(cls: type[Any], table: dict[str, Any], where: str) -> Any:
    """The options dataclass ``cls`` from a TOML table (lists become tuples); an unknown key is
    an error that names ``where`` (the file and table)."""
    names = {f.name for f in fields(cls)}
    unknown = set(table) - names
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    return cls(**{k: tuple(v) if isinstance(v, list) else v for k, v in table.items()})


@dataclass(frozen=True)
class TrainOptions:
    """Optimisation settings of the generic training loop."""

    lr: float = 1e-3
    weight_decay: float = 0.0
    # 0 = full batch (the 32 glyphs); otherwise the minibatch size.
    batch_size: int = 0
    # Each epoch sees ``repeat`` copies of the training set (with fresh noise when denoising).
    repeat: int = 1
    # Multiply lr by ``lr_decay`` at each of the ``lr_milestones`` (fractions of the epochs).
    lr_decay: float = 1.0
    lr_milestones: tuple[float, ...] = ()
    # CPU threads torch may use; 1 keeps runs deterministic and polite on shared machines.
    threads: int = 1
    # Clip the gradient norm (None: no clipping).
    grad_clip: float | None = None


@dataclass(frozen=True)
class NoiseOptions:
    kind: str
    level: float


@dataclass(frozen=True)
class RegularizerOptions:
    kind: str
    weight: float
    rho: float | None = None


@dataclass(frozen=True)
class ScoreOptions:
    # "quantile:q": the q-quantile of the calibration scores (issue 5 adds label-based rules).
    threshold_rule: str = "quantile:0.99"
    # Which split the calibration scores come from.
    calibration_split: str = "val"


@dataclass(frozen=True)
class EvalOptions:
    """Evaluation settings; the metrics themselves follow from the data kind and the training."""

    # Denoising curve: flip levels, noisy draws per sample and level, the draws' seed.
    noise_levels: tuple[float, ...] = (0.05, 0.10, 0.20, 0.30)
    noise_draws: int = 200
    noise_seed: int = 1234
    # Other zoo models (sibling folders of the output) to put beside this one in the curve.
    compare_with: tuple[str, ...] = ()
    # Metric targets, e.g. {"wrong_pixels_total" = "<= 0"}; checked and recorded in the manifest.
    targets: dict[str, str] = field(default_factory=dict)
    # How many prior samples the card shows.
    samples: int = 32
    # Image studies (issue 4, training.image_study.ImageEvalOptions): PCA baseline, kNN,
    # interpolation, one-class protocol, regulariser variants. Empty: none.
    images: dict[str, Any] = field(default_factory=dict)
    # Imputation study (issue 17, training.impute_study.ImputeOptions). Empty: none.
    impute: dict[str, Any] = field(default_factory=dict)
    # How the recipe was chosen (markdown), for the card's "How this recipe was chosen" section:
    # the search, the data it used and what each tried setting measured. Empty: no section.
    selection: str = ""


@dataclass(frozen=True)
class Recipe:
    """A parsed recipe file."""

    name: str
    dataset: str
    architecture: str
    arch_options: dict[str, Any]
    seed: int
    epochs: int
    description: str = ""
    dataset_options: dict[str, Any] = field(default_factory=dict)
    train: TrainOptions = TrainOptions()
    noise: NoiseOptions | None = None
    regularizer: RegularizerOptions | None = None
    score: ScoreOptions = ScoreOptions()
    evaluate: EvalOptions = EvalOptions()
    # Stacked-autoencoder classifiers (training.stacked.StackedOptions); empty for the others.
    classifier: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    def with_overrides(
        self, seed: int | None = None, epochs: int | None = None, data_dir: str | None = None
    ) -> Recipe:
        """A copy with the CLI's overrides (``data_dir``: the dataset loader's directory)."""
        options = (
            self.dataset_options
            if data_dir is None
            else {
                **self.dataset_options,
                "data_dir": data_dir,
            }
        )
        return replace(
            self,
            seed=self.seed if seed is None else seed,
            epochs=self.epochs if epochs is None else epochs,
            dataset_options=options,
        )


_TOP = {"name", "description", "seed", "epochs", "dataset", "architecture", "training"}
_TOP |= {"noise", "regularizer", "score", "evaluate", "classifier"}


def parse(data: dict[str, Any], path: Path | None = None) -> Recipe:
    """A :class:`Recipe` from a TOML document already parsed into a dict."""
    where = str(path) if path else "recipe"
    unknown = set(data) - _TOP
    if unknown:
        raise ValueError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    for key in ("name", "seed", "epochs", "dataset", "architecture"):
        if key not in data:
            raise ValueError(f"{where}: missing {key!r}")
    dataset = dict(data["dataset"])
    arch = dict(data["architecture"])
    if "name" not in dataset or "kind" not in arch:
        raise ValueError(f"{where}: [dataset] needs 'name' and [architecture] needs 'kind'")
    ev = dict(data.get("evaluate", {}))
    targets = ev.pop("targets", {})
    evaluate = build_options(EvalOptions, ev, f"{where} [evaluate]")
    evaluate = replace(evaluate, targets=dict(targets))
    return Recipe(
        name=data["name"],
        description=data.get("description", ""),
        seed=int(data["seed"]),
        epochs=int(data["epochs"]),
        dataset=dataset.pop("name"),
        dataset_options=dataset,
        architecture=arch.pop("kind"),
        arch_options=arch,
        train=build_options(TrainOptions, data.get("training", {}), f"{where} [training]"),
        noise=build_options(NoiseOptions, data["noise"], f"{where} [noise]")
        if "noise" in data
        else None,
        regularizer=(
            build_options(RegularizerOptions, data["regularizer"], f"{where} [regularizer]")
            if "regularizer" in data
            else None
        ),
        score=build_options(ScoreOptions, data.get("score", {}), f"{where} [score]"),
        evaluate=evaluate,
        classifier=dict(data.get("classifier", {})),
        path=path,
    )


def load(path_or_name: str | Path) -> Recipe:
    """Read a recipe file, or a zoo recipe by name (``font`` -> training/recipes/font.toml)."""
    path = Path(path_or_name)
    if not path.suffix and not path.exists():
        path = RECIPES_DIR / f"{path_or_name}.toml"
    with path.open("rb") as fh:
        return parse(tomllib.load(fh), path.resolve())


def zoo() -> list[Path]:
    """The zoo's recipe files, in build order (file name order; see each recipe's comments)."""
    return sorted(RECIPES_DIR.glob("*.toml"))
