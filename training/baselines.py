"""Baselines and figures the image zoo is measured with (numpy; scikit-learn for kNN and AUC).

PCA is the linear autoencoder: projecting onto the top-k principal directions is the best rank-k
linear reconstruction in squared error, so "AE vs PCA at the same code size" says what the
nonlinearity buys.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from training.scoring import ScoreKind, scores


@dataclass(frozen=True)
class PCA:
    """Top-``k`` principal directions of the training data (flattened)."""

    mean: np.ndarray  # [D]
    components: np.ndarray  # [k, D], orthonormal rows
    explained_variance: np.ndarray  # [k]

    @classmethod
    def fit(cls, x: np.ndarray, k: int) -> PCA:
        """Exact PCA from the eigenvectors of the covariance (D = pixels is small)."""
        flat = np.asarray(x, np.float64).reshape(len(x), -1)
        if not 0 < k <= flat.shape[1]:
            raise ValueError(f"k must be in [1, {flat.shape[1]}], got {k}")
        mean = flat.mean(0)
        centred = flat - mean
        cov = centred.T @ centred / max(len(flat) - 1, 1)
        vals, vecs = np.linalg.eigh(cov)  # ascending
        top = np.argsort(vals)[::-1][:k]
        comps = vecs[:, top].T
        # Fix each direction's sign (largest |loading| positive) so runs agree exactly.
        sign = np.sign(comps[np.arange(k), np.argmax(np.abs(comps), axis=1)])
        comps = comps * sign[:, None]
        return cls(mean=mean, components=comps, explained_variance=vals[top])

    @property
    def k(self) -> int:
        return int(self.components.shape[0])

    def encode(self, x: np.ndarray) -> np.ndarray:
        flat = np.asarray(x, np.float64).reshape(len(x), -1)
        out: np.ndarray = (flat - self.mean) @ self.components.T
        return out

    def decode(self, z: np.ndarray, shape: tuple[int, ...], clip: bool = True) -> np.ndarray:
        """Reconstructions ``[n, *shape]``, clipped to [0, 1] (the image range) by default."""
        flat = np.asarray(z, np.float64) @ self.components + self.mean
        if clip:
            flat = np.clip(flat, 0.0, 1.0)
        out: np.ndarray = flat.reshape(len(flat), *shape)
        return out

    def reconstruct(self, x: np.ndarray, clip: bool = True) -> np.ndarray:
        return self.decode(self.encode(x), tuple(x.shape[1:]), clip)


def reconstruction_scores(x: np.ndarray, x_hat: np.ndarray, kind: ScoreKind) -> np.ndarray:
    """Per-sample mean error, as the contract defines it (BCE clips x_hat to [1e-7, 1 - 1e-7])."""
    return scores(x, x_hat, kind)


def psnr(clean: np.ndarray, other: np.ndarray, peak: float = 1.0) -> np.ndarray:
    """Per-image peak signal-to-noise ratio in dB: 10 log10(peak^2 / MSE)."""
    mse = ((np.asarray(clean, np.float64) - other) ** 2).reshape(len(clean), -1).mean(1)
    out: np.ndarray = 10.0 * np.log10(peak**2 / np.maximum(mse, 1e-12))
    return out


def knn_accuracy(
    train_codes: np.ndarray, train_y: np.ndarray, test_codes: np.ndarray, test_y: np.ndarray, k: int
) -> float:
    """Accuracy of a k-nearest-neighbour classifier fitted on the training codes."""
    from sklearn.neighbors import KNeighborsClassifier

    clf = KNeighborsClassifier(n_neighbors=k).fit(train_codes, train_y)
    return float(clf.score(test_codes, test_y))


def roc_auc(is_anomaly: np.ndarray, score: np.ndarray) -> float:
    """ROC-AUC of ``score`` for telling anomalies (True) from normal samples."""
    from sklearn.metrics import roc_auc_score

    return float(roc_auc_score(np.asarray(is_anomaly, bool), np.asarray(score, np.float64)))


def knn_loo_accuracy(codes: np.ndarray, y: np.ndarray, k: int) -> float:
    """Leave-one-out k-NN accuracy within one set of codes (each point's k nearest *other*
    points vote; ties go to the lowest label, as in scikit-learn). For maps that embed only the
    points they are given (t-SNE), where train -> test neighbours do not exist."""
    from sklearn.neighbors import NearestNeighbors

    idx = NearestNeighbors(n_neighbors=k + 1).fit(codes).kneighbors(codes)[1]
    # drop each point itself (normally the first neighbour; with duplicate codes anywhere)
    own = idx == np.arange(len(codes))[:, None]
    own[~own.any(1), -1] = True  # self not among the k + 1 found: drop the farthest instead
    others = idx[~own].reshape(len(codes), k)
    votes = np.asarray(y)[others]
    classes = int(np.max(y)) + 1
    counts = np.stack([np.bincount(v, minlength=classes) for v in votes])
    return float((counts.argmax(1) == y).mean())


def tsne_map(x: np.ndarray, pca_components: int, seed: int) -> np.ndarray:
    """2-D t-SNE (scikit-learn, perplexity 30, PCA initialisation) of ``x`` [N, ...] after
    projecting onto its first ``pca_components`` principal components (the usual speed-up)."""
    from sklearn.decomposition import PCA as SkPCA
    from sklearn.manifold import TSNE

    flat = np.asarray(x, np.float64).reshape(len(x), -1)
    reduced = SkPCA(pca_components, random_state=seed).fit_transform(flat)
    out: np.ndarray = TSNE(2, perplexity=30.0, init="pca", random_state=seed).fit_transform(reduced)
    return out.astype(np.float32)
