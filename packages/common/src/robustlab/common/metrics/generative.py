"""Quality measures of generated samples that need no downloaded Inception weights: they work in any feature space
(a classifier trained on the real data, or the pixels themselves).

- :func:`frechet_distance`: the Fréchet distance between Gaussians fitted to two feature sets (Heusel et al.
  2017's FID, computed as pytorch-fid does, in the caller's feature space).
- :func:`precision_recall`: k-nearest-neighbour manifold precision and recall (Kynkäänniemi et al. 2019), with
  density and coverage (Naeem et al. 2020); agrees with the ``prdc`` package.
- :func:`nearest_neighbour_check`: are generated samples copies of training samples? Each fake's distance to its
  nearest training sample against the same distance of held-out real samples.

Distances are Euclidean, computed in float64 in blocks (memory ``O(block x N)``, not ``O(N^2)``). Inputs are
arrays or tensors ``(N, *)``, flattened to ``(N, D)``; they must be finite (a ``ValueError`` says which is not).
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np

from robustlab.common.arrays import to_numpy

__all__ = ["frechet_distance", "nearest_neighbour_check", "precision_recall"]

_BLOCK = 1024  # rows per block of a distance matrix


def _features(x: Any, name: str, *, min_rows: int = 1) -> np.ndarray:
    a = np.asarray(to_numpy(x), dtype=np.float64)
    if a.ndim == 0 or (a.ndim == 1 and min_rows > 1):
        raise ValueError(f"{name} must have shape (N, D) (or (N, *), flattened), got {a.shape}")
    a = a.reshape(len(a), -1)
    if len(a) < min_rows:
        raise ValueError(f"{name} needs at least {min_rows} samples, got {len(a)}")
    if a.shape[1] == 0:
        raise ValueError(f"{name} has no features (shape {a.shape})")
    if not np.isfinite(a).all():
        i = int(np.argwhere(~np.isfinite(a))[0, 0])
        raise ValueError(f"{name}: sample {i} has NaN or infinite features")
    return a


def _same_width(a: np.ndarray, b: np.ndarray, names: str) -> None:
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"{names} have {a.shape[1]} and {b.shape[1]} features; expected the same feature space")


def _blocks(a: np.ndarray, b: np.ndarray):
    """``(start, distances of a[start:start + block] to every row of b)``, Euclidean, float64."""
    b2 = np.einsum("ij,ij->i", b, b)
    for start in range(0, len(a), _BLOCK):
        part = a[start:start + _BLOCK]
        d2 = np.einsum("ij,ij->i", part, part)[:, None] + b2[None, :] - 2.0 * part @ b.T
        yield start, np.sqrt(np.maximum(d2, 0.0))


def _kth_neighbour_radii(a: np.ndarray, k: int) -> np.ndarray:
    """Each row's distance to its ``k``-th nearest other row (the row itself, at distance 0, is not counted)."""
    out = np.empty(len(a))
    for start, d in _blocks(a, a):
        out[start:start + len(d)] = np.partition(d, k, axis=1)[:, k]
    return out


def frechet_distance(real_features: Any, fake_features: Any, *, eps: float = 1e-6) -> float:
    """The Fréchet distance between Gaussians fitted to two sets of features (the FID of Heusel et al. 2017 in
    the caller's feature space).

    ``||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2))`` with the sample means and covariances (``ddof=1``).
    The matrix square root is scipy's ``sqrtm``; as in pytorch-fid, when it is not finite (a singular product,
    e.g. fewer samples than features) ``eps`` is added to both diagonals and it is recomputed, and a complex
    result whose diagonal's imaginary parts are below 1e-3 is replaced by its real part (numerical residue of a
    real symmetric positive semi-definite product).

    Args:
        real_features: features of real samples.
        fake_features: features of generated samples, in the same space.
        eps: the diagonal offset of the fallback.

    Returns:
        The distance (0 for identical Gaussians; squared units of the features).

    Raises:
        ValueError: fewer than two samples in a set, different feature sizes, values not finite, or an imaginary
            part of the square root above 1e-3 (the covariances are not positive semi-definite enough to trust).

    Shape:
        ``(N, D)`` and ``(M, D)`` (or ``(N, *)``, flattened).

    Reference:
        Heusel, M., Ramsauer, H., Unterthiner, T., Nessler, B., Hochreiter, S. "GANs Trained by a Two Time-Scale
        Update Rule Converge to a Local Nash Equilibrium", NeurIPS 2017; mseitzer/pytorch-fid
        (``calculate_frechet_distance``).

    Examples::

        >>> rng = np.random.default_rng(0)
        >>> a = rng.normal(size=(2000, 2))
        >>> round(frechet_distance(a, a), 6)
        0.0
        >>> round(frechet_distance(a, a + [3.0, 0.0]), 6)  # a shift by 3: 3^2
        9.0
    """
    from scipy import linalg

    real = _features(real_features, "real_features", min_rows=2)
    fake = _features(fake_features, "fake_features", min_rows=2)
    _same_width(real, fake, "real_features and fake_features")
    mu1, mu2 = real.mean(0), fake.mean(0)
    s1, s2 = np.atleast_2d(np.cov(real, rowvar=False)), np.atleast_2d(np.cov(fake, rowvar=False))
    with warnings.catch_warnings():  # singular products (fewer samples than features) are handled below
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(s1 @ s2)
    if not np.isfinite(covmean).all():
        offset = np.eye(len(s1)) * eps
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    if np.iscomplexobj(covmean):
        if not np.allclose(np.diagonal(covmean).imag, 0, atol=1e-3):
            raise ValueError(f"frechet_distance: the square root of the covariance product has an imaginary part "
                             f"of {np.abs(covmean.imag).max():.3g}; the covariances are too ill-conditioned")
        covmean = covmean.real
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def precision_recall(real_features: Any, fake_features: Any, k: int = 3) -> dict[str, float]:
    """Improved precision and recall (Kynkäänniemi et al. 2019), and density and coverage (Naeem et al. 2020).

    Each set's manifold is the union of balls around its samples, each ball's radius the distance to the
    sample's ``k``-th nearest neighbour within its set. Precision is the share of fakes inside the real manifold
    (fidelity); recall the share of reals inside the fake manifold (diversity). Density is the mean number of real
    balls holding a fake, divided by ``k`` (about 1 when fakes are distributed like the reals; robust to real
    outliers); coverage the share of reals whose ball holds at least one fake. A point on a ball's boundary is
    inside (``<=``, the papers' definition; the ``prdc`` package uses ``<``, which differs only at exact ties).

    Args:
        real_features: features of real samples.
        fake_features: features of generated samples, in the same space.
        k: the neighbour that sets the radii (3 in both papers); each set needs more than ``k`` samples.

    Returns:
        ``{"precision", "recall", "density", "coverage"}``; precision, recall and coverage in ``[0, 1]``.

    Raises:
        ValueError: a set of ``k`` samples or fewer, different feature sizes, values not finite, ``k < 1``.

    Shape:
        ``(N, D)`` and ``(M, D)`` (or ``(N, *)``, flattened).

    Reference:
        Kynkäänniemi, T., Karras, T., Laine, S., Lehtinen, J., Aila, T. "Improved Precision and Recall Metric for
        Assessing Generative Models", NeurIPS 2019; Naeem, M. F., Oh, S. J., Uh, Y., Choi, Y., Yoo, J. "Reliable
        Fidelity and Diversity Metrics for Generative Models", ICML 2020 (clovaai/generative-evaluation-prdc).

    Examples::

        >>> rng = np.random.default_rng(0)
        >>> real = rng.normal(size=(500, 2))
        >>> pr = precision_recall(real, rng.normal(size=(500, 2)))
        >>> pr["precision"] > 0.9 and pr["recall"] > 0.9
        True
        >>> precision_recall(real, rng.normal(size=(500, 2)) + 10)["precision"]
        0.0
    """
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"precision_recall: k must be an int >= 1, got {k!r}")
    k = int(k)
    real = _features(real_features, "real_features", min_rows=k + 1)
    fake = _features(fake_features, "fake_features", min_rows=k + 1)
    _same_width(real, fake, "real_features and fake_features")
    real_radii, fake_radii = _kth_neighbour_radii(real, k), _kth_neighbour_radii(fake, k)
    in_real = np.zeros(len(fake), np.int64)  # per fake: how many real balls hold it
    real_in_fake = np.zeros(len(real), bool)  # per real: inside some fake ball
    real_covered = np.zeros(len(real), bool)  # per real: its ball holds some fake
    for start, d in _blocks(real, fake):  # d: (block of reals, fakes)
        radii = real_radii[start:start + len(d), None]
        inside = d <= radii
        in_real += inside.sum(0)
        real_in_fake[start:start + len(d)] = (d <= fake_radii[None, :]).any(1)
        real_covered[start:start + len(d)] = inside.any(1)
    return {"precision": float((in_real > 0).mean()), "recall": float(real_in_fake.mean()),
            "density": float(in_real.mean() / k), "coverage": float(real_covered.mean())}


def nearest_neighbour_check(fake: Any, train: Any, holdout: Any, *, quantile: float = 0.01) -> dict[str, Any]:
    """Are generated samples copies of training samples? Compare each fake's distance to its nearest training
    sample with the same distance of real samples the generator never saw.

    A generator that memorizes puts its samples closer to the training set than fresh real samples are (a median
    ratio below 1) and produces near-copies: fakes closer to a training sample than all but ``quantile`` of the
    held-out samples (closer than the 1st percentile by default). Without copying, that share is about
    ``quantile`` (or below, for a generator that stays off the data); a share well above it, or exact copies
    (distance 0), is the warning sign. Pixels or features: the inputs are flattened and compared by L2 distance.

    Args:
        fake: generated samples.
        train: the samples the generator was trained on.
        holdout: real samples of the same distribution that the generator did not see.
        quantile: which quantile of the held-out distances marks a copy, in ``(0, 1)``.

    Returns:
        ``{"median_ratio"``: median fake distance / median held-out distance (``inf`` when the held-out median is
        0), ``"copy_share"``: share of fakes at or below the threshold, ``"n_copies"``, ``"threshold"``: the
        ``quantile`` of the held-out distances, ``"fake_distances"`` ``(N,)`` and ``"fake_indices"`` ``(N,)``
        (each fake's nearest training sample), ``"holdout_distances"`` and ``"holdout_indices"`` ``(H,)}``.

    Raises:
        ValueError: an empty set, different feature sizes, values not finite, ``quantile`` outside ``(0, 1)``.

    Shape:
        ``(N, *)``, ``(T, *)`` and ``(H, *)`` with the same trailing size.

    Reference:
        The "distance to the nearest training sample vs held-out samples" test of memorization, e.g. Webster, R.,
        Rabin, J., Simon, L., Jurie, F. "Detecting Overfitting of Deep Generative Networks via Latent Recovery",
        CVPR 2019; Meehan, C., Chaudhuri, K., Dasgupta, S. "A Non-Parametric Test to Detect Data-Copying in
        Generative Models", AISTATS 2020.

    Examples::

        >>> rng = np.random.default_rng(0)
        >>> train, holdout = rng.normal(size=(300, 4)), rng.normal(size=(100, 4))
        >>> out = nearest_neighbour_check(np.concatenate([train[:5], rng.normal(size=(95, 4))]), train, holdout)
        >>> out["n_copies"] >= 5, out["fake_indices"][:5].tolist()
        (True, [0, 1, 2, 3, 4])
    """
    if not (isinstance(quantile, (int, float)) and 0.0 < quantile < 1.0):
        raise ValueError(f"nearest_neighbour_check: quantile must be in (0, 1), got {quantile!r}")
    f = _features(fake, "fake")
    t = _features(train, "train")
    h = _features(holdout, "holdout")
    _same_width(f, t, "fake and train")
    _same_width(h, t, "holdout and train")
    fake_d, fake_i = _nearest(f, t)
    hold_d, hold_i = _nearest(h, t)
    threshold = float(np.quantile(hold_d, quantile))
    copies = fake_d <= threshold
    hold_median = float(np.median(hold_d))
    ratio = float(np.median(fake_d)) / hold_median if hold_median > 0 else float("inf")
    return {"median_ratio": ratio, "copy_share": float(copies.mean()), "n_copies": int(copies.sum()),
            "threshold": threshold, "fake_distances": fake_d, "fake_indices": fake_i,
            "holdout_distances": hold_d, "holdout_indices": hold_i}


def _nearest(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Each row of ``a``: the index of its nearest row of ``b`` and the exact distance to it."""
    idx = np.empty(len(a), np.int64)
    for start, d in _blocks(a, b):
        idx[start:start + len(d)] = d.argmin(1)
    return np.sqrt(((a - b[idx]) ** 2).sum(1)), idx
