"""Re-run the one-class protocol of an already built model, in place, without retraining it.

The protocol (:func:`training.image_study.one_class_protocol`) never touches the shipped model: it
fits its own per-class autoencoders and PCA. So when only its options change, the model's
``model.json`` metrics, the card's metric rows and one-class section, and ``one_class.png`` can be
rewritten from the recipe alone; they come out as a full rebuild would write them (the ONNX files,
``version`` and every other figure stay as they are). ``python -m training one-class``.
"""

from __future__ import annotations

import logging
from pathlib import Path

from service.runtime.manifest import CARD_FILE, Manifest, Metric
from training.card import metric_row
from training.datasets import load_dataset
from training.image_study import ImageEvalOptions, Study, one_class_study
from training.recipe import Recipe

log = logging.getLogger(__name__)

PREFIX = "one_class_"
SECTION = "### Anomaly detection: the one-class protocol"


def _splice_metrics(old: dict[str, Metric], new: dict[str, Metric]) -> dict[str, Metric]:
    """``old`` with its one-class metrics replaced by ``new``, at the place of the first one."""
    out: dict[str, Metric] = {}
    placed = False
    for name, metric in old.items():
        if name.startswith(PREFIX):
            if not placed:
                out.update(new)
                placed = True
            continue
        out[name] = metric
    if not placed:
        raise ValueError("the model has no one-class metrics to replace")
    return out


def _splice_card(card: str, metrics: dict[str, Metric], section: str) -> str:
    """The card with its one-class metric rows and its one-class section replaced."""
    lines = card.split("\n")
    rows = [metric_row(name, m) for name, m in metrics.items() if name.startswith(PREFIX)]
    first = next(i for i, line in enumerate(lines) if line.startswith(f"| `{PREFIX}"))
    lines = [
        line for i, line in enumerate(lines) if i < first or not line.startswith(f"| `{PREFIX}")
    ]
    lines[first:first] = rows
    start = lines.index(SECTION)
    # the section runs to the blank line before the next heading
    end = next(i for i in range(start + 1, len(lines)) if lines[i].startswith("#")) - 1
    lines[start:end] = section.split("\n")
    return "\n".join(lines)


def refresh_one_class(model_dir: Path, recipe: Recipe) -> Study:
    """Rewrite ``model_dir``'s one-class metrics, card section and figure from ``recipe``."""
    table = recipe.evaluate.images
    opts = ImageEvalOptions.parse(table).one_class if table else None
    if opts is None:
        raise ValueError(f"recipe {recipe.name!r} has no [evaluate.images.one_class] table")
    manifest = Manifest.read(model_dir)
    if manifest.name != recipe.name:
        raise ValueError(f"{model_dir} holds {manifest.name!r}, not {recipe.name!r}")
    data = load_dataset(recipe.dataset, **recipe.dataset_options)
    study = one_class_study(data, opts, recipe.name)
    targets = recipe.evaluate.targets
    new = {
        name: m.model_copy(update={"target": targets[name]}) if name in targets else m
        for name, m in study.metrics.items()
    }
    metrics = _splice_metrics(manifest.metrics, new)
    card_path = model_dir / CARD_FILE
    card = _splice_card(card_path.read_text(encoding="utf-8"), metrics, study.sections[0])
    manifest.model_copy(update={"metrics": metrics}).write(model_dir)
    card_path.write_text(card, encoding="utf-8")
    study.draw(model_dir)
    log.info("%s: one-class protocol rewritten (%s)", recipe.name, ", ".join(new))
    return study
