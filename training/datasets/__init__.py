"""The dataset registry: a name -> a loader returning a :class:`Dataset`.

Importing this package registers the built-in loaders. Loaders are plain numpy (no torch), so the
tests that re-check shipped models with onnxruntime can use them too. New datasets (issues 4 and 5:
MNIST and Fashion-MNIST via an IDX reader, sklearn digits, tabular benchmarks) register themselves
with :func:`register` in their own module and are imported below.
"""

from training.datasets import emoji as _emoji  # noqa: F401  (registers "emoji")
from training.datasets import font as _font  # noqa: F401  (registers "font")
from training.datasets import images as _images  # noqa: F401  (mnist, fashion-mnist, digits)
from training.datasets import tabular as _tabular  # noqa: F401  (shuttle, breast-cancer, ...)
from training.datasets import usercsv as _usercsv  # noqa: F401  (user-csv: aeserve fit-csv)
from training.datasets.base import DATASETS, Dataset, Split, get_dataset, load_dataset, register

__all__ = ["DATASETS", "Dataset", "Split", "get_dataset", "load_dataset", "register"]
