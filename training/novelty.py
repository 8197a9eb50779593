"""Are a generative model's samples new? (issue 17, the emoji VAE's card)

For each prior sample, its nearest training image (per-pixel mean squared distance over the whole
training split, augmented copies included). A sample is

- **not a copy** when that distance is above the typical reconstruction error: the median
  distance between a training image and the model's own reconstruction of it (a sample closer
  to a training image than that is as good as a replay of it);
- **not noise** when the distance is below the typical distance of structureless images to their
  nearest training image: training images with their pixels shuffled (same ink, no shape), the
  median over as many of them as samples.

The card reports both fractions and their conjunction, and shows samples beside their nearest
training images.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.onnx_model import OnnxAutoencoder


@dataclass(frozen=True)
class Novelty:
    samples: np.ndarray  # [n, H, W] decoded prior samples
    nearest: np.ndarray  # [n] index of each sample's nearest training image
    distance: np.ndarray  # [n] per-pixel MSE to it
    copy_level: float  # median reconstruction error of training images
    noise_level: float  # median nearest-training distance of pixel-shuffled training images

    @property
    def not_copy(self) -> float:
        return float((self.distance > self.copy_level).mean())

    @property
    def not_noise(self) -> float:
        return float((self.distance < self.noise_level).mean())

    @property
    def novel(self) -> float:
        ok = (self.distance > self.copy_level) & (self.distance < self.noise_level)
        return float(ok.mean())


def nearest(
    queries: np.ndarray, reference: np.ndarray, batch: int = 256
) -> tuple[np.ndarray, np.ndarray]:
    """Index of the nearest reference image and its per-pixel MSE, for each query."""
    r = reference.reshape(len(reference), -1).astype(np.float64)
    rr = (r**2).sum(1)
    idx, dist = [], []
    for i in range(0, len(queries), batch):
        q = queries[i : i + batch].reshape(-1, r.shape[1]).astype(np.float64)
        d = (q**2).sum(1)[:, None] - 2 * q @ r.T + rr[None]  # squared distances [b, m]
        j = d.argmin(1)
        idx.append(j)
        dist.append(np.maximum(d[np.arange(len(j)), j], 0.0) / r.shape[1])
    return np.concatenate(idx), np.concatenate(dist)


def novelty(
    model: OnnxAutoencoder, train: np.ndarray, n: int, seed: int, latent_dim: int
) -> Novelty:
    """``n`` samples from N(0, I) (seeded) measured against ``train`` (see the module doc)."""
    rng = np.random.default_rng(seed)
    z = rng.standard_normal((n, latent_dim)).astype(np.float32)
    samples = model.decode(z)
    idx, dist = nearest(samples, train)
    recon = np.concatenate(
        [model.reconstruct(train[i : i + 512]) for i in range(0, len(train), 512)]
    )
    rec_err = ((recon - train) ** 2).reshape(len(train), -1).mean(1)
    pick = rng.choice(len(train), size=n, replace=False)
    flat = train[pick].reshape(n, -1).copy()
    for row in flat:
        rng.shuffle(row)
    _, noise_dist = nearest(flat.reshape(n, *train.shape[1:]), train)
    return Novelty(
        samples=samples,
        nearest=idx,
        distance=dist,
        copy_level=float(np.median(rec_err)),
        noise_level=float(np.median(noise_dist)),
    )
