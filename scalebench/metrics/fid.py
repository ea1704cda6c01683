"""FID and KID of samples against a real split, on the dataset's feature net (`featurenets.py`).

Both are computed by torchmetrics (`FrechetInceptionDistance` / `KernelInceptionDistance`
with `feature=<FeatureExtractor>`), so the numbers follow its conventions (unbiased
covariance, eigenvalue-based matrix square root, polynomial-kernel MMD over random subsets).
The real side is the same for every grid point, so its features are computed once and
cached on disk; the cached features are injected into the metrics' real-side state instead
of re-running the net.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scalebench.atomic import atomic_write
from scalebench.paths import cache_dir

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when the cached content changes meaning
KID_SUBSETS = 50
KID_SUBSET_SIZE = 500
KID_SEED = 0

_MEMO: dict[str, torch.Tensor] = {}


def extractor_for(dataset: Any, device: str) -> Any:
    """The dataset's feature net as torchmetrics' `feature=` module (digits: the project's CNN)."""
    from scalebench.metrics import featurenets

    return featurenets.extractor(dataset, device)


def reference_key(dataset: Any, split: str) -> dict[str, Any]:
    """Every choice that changes the reference features (hashed into the cache file name).

    The digit CNN's key keeps its historical form (its checkpoint hash), so existing caches stay
    valid; another net enters as its name + weights hash (`featurenets.identity`)."""
    import torchmetrics

    from scalebench.metrics import featurenets

    net = featurenets.identity(dataset)  # the digit CNN's: its checkpoint hash, as the cache always keyed it
    return {"format": CACHE_FORMAT, "dataset": dataset.fingerprint(), "split": split,
            "feature_net": net, "levels": dataset.form.levels,
            "num_features": featurenets.num_features(dataset), "torchmetrics": torchmetrics.__version__}


def reference_path(dataset: Any, split: str) -> Path:
    key = reference_key(dataset, split)
    digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:20]
    return cache_dir() / f"ref-features-{dataset.name}-{split}-{digest}.safetensors"


def reference_features(dataset: Any, split: str | None = None, device: str = "cpu") -> torch.Tensor:
    """(N, d) float32 feature-net features of the real `split` (CPU), computed once, cached.

    Stored with safetensors (no pickle) and written atomically (temp file + os.replace), so
    concurrent runners never read a half-written file.
    """
    from safetensors.torch import load_file, save_file

    split = split or dataset.reference_split
    path = reference_path(dataset, split)
    memo_key = str(path)
    if memo_key in _MEMO:
        return _MEMO[memo_key]
    if path.exists():
        feats = load_file(str(path))["features"]
        log.debug("reference features loaded from %s", path)
    else:
        real = dataset.quantise(dataset.canonical(split))
        feats = extractor_for(dataset, device)(real.to(device)).float().cpu().contiguous()
        path.parent.mkdir(parents=True, exist_ok=True)
        meta = {"key": json.dumps(reference_key(dataset, split), sort_keys=True)}
        atomic_write(path, lambda tmp: save_file({"features": feats}, str(tmp), metadata=meta))
        log.info("reference features for %s/%s cached at %s", dataset.name, split, path)
    _MEMO[memo_key] = feats
    return feats


def _fid_metric(real: torch.Tensor, fake: torch.Tensor, dataset: Any, device: str) -> Any:
    """A torchmetrics FID whose state is set from features of both sides.

    The state update mirrors `FrechetInceptionDistance.update` exactly (float64 sums of
    features and of their outer products; the result cast back to the features' dtype), so
    the result equals feeding the images.
    """
    from torchmetrics.image.fid import FrechetInceptionDistance

    fid = FrechetInceptionDistance(feature=extractor_for(dataset, device), normalize=True,
                                   reset_real_features=False).to(device)
    for f, side in ((real, "real"), (fake, "fake")):
        f64 = f.to(device).double()
        getattr(fid, f"{side}_features_sum").add_(f64.sum(dim=0))
        getattr(fid, f"{side}_features_cov_sum").add_(f64.t().mm(f64))
        setattr(fid, f"{side}_features_num_samples",
                getattr(fid, f"{side}_features_num_samples") + f64.shape[0])
    fid.orig_dtype = fake.dtype
    fid._update_count += 1  # the state is filled: what update() would have counted (no "compute before update")
    return fid


def fid_kid(samples: torch.Tensor, dataset: Any, device: str = "cpu", reference_split: str | None = None,
            kid_subset_size: int = KID_SUBSET_SIZE, kid_subsets: int = KID_SUBSETS,
            which: tuple[str, ...] = ("fid", "kid")) -> dict[str, float]:
    """FID, KID (mean and std over subsets) of canonical `samples` against `reference_split`.

    Samples are quantised to the dataset's grid first. KID's subset size is
    min(kid_subset_size, #samples, #reference); its random subsets come from a fixed seed
    (forked RNG), so the same samples give the same KID. Fewer than 2 samples give NaN.
    """
    x = dataset.quantise(samples.detach().float()).to(device)
    fake = extractor_for(dataset, device)(x) if len(x) else torch.zeros(0, 1)
    return fid_kid_features(fake, reference_features(dataset, reference_split, device), dataset, device,
                            kid_subset_size, kid_subsets, which)


def fid_kid_features(fake: torch.Tensor, real: torch.Tensor, dataset: Any, device: str = "cpu",
                     kid_subset_size: int = KID_SUBSET_SIZE, kid_subsets: int = KID_SUBSETS,
                     which: tuple[str, ...] = ("fid", "kid"), low_rank: bool = False) -> dict[str, float]:
    """`fid_kid` on feature-net features of both sides (the data floor redraws the reference).

    `low_rank`: compute FID by `fid_low_rank` when the feature dimension exceeds a side's count."""
    out: dict[str, float] = {}
    n = fake.shape[0]
    if "fid" in which:
        if n < 2:
            out["fid"] = float("nan")
        elif low_rank and fake.shape[1] > min(n, real.shape[0]):
            out["fid"] = fid_low_rank(fake.cpu(), real.cpu())
        else:
            out["fid"] = float(_fid_metric(real, fake, dataset, device).compute())
    if "kid" in which:
        size = min(kid_subset_size, n, real.shape[0])
        if size < 2:
            out["kid"], out["kid_std"] = float("nan"), float("nan")
        else:
            from torchmetrics.image.kid import KernelInceptionDistance

            with warnings.catch_warnings():
                warnings.filterwarnings("ignore", message=".*will save all extracted features.*")
                kid = KernelInceptionDistance(feature=extractor_for(dataset, device), subsets=kid_subsets,
                                              subset_size=size, normalize=True,
                                              reset_real_features=False).to(device)
            kid.real_features.append(real.to(device))
            kid.fake_features.append(fake.to(device))
            kid._update_count += 1
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(KID_SEED)
                mean, std = kid.compute()
            out["kid"], out["kid_std"] = float(mean), float(std)
    return out


def fid_low_rank(fake: torch.Tensor, real: torch.Tensor) -> float:
    """FID of two feature sets through their Gram matrix, for d above the sample counts (Inception, 2048-d).

    With centred features X1 (n1×d), X2 (n2×d) and unbiased covariances Σi = XiᵀXi/(ni−1), the nonzero
    eigenvalues of Σ1Σ2 are the squared singular values of C = X2X1ᵀ/√((n1−1)(n2−1)), so
    Tr (Σ1Σ2)^½ = ‖C‖_* (nuclear norm): an n2×n1 SVD instead of a d×d non-symmetric eigenproblem
    (the data floor computes FID `floor.DRAWS` times). Same value as torchmetrics' up to rounding.
    """
    x1, x2 = real.double(), fake.double()
    n1, n2 = len(x1), len(x2)
    if n1 < 2 or n2 < 2:
        return float("nan")
    mu1, mu2 = x1.mean(0), x2.mean(0)
    c1, c2 = x1 - mu1, x2 - mu2
    cross = torch.linalg.svdvals(c2 @ c1.T / math.sqrt((n1 - 1) * (n2 - 1))).sum()
    tr = (c1 * c1).sum() / (n1 - 1) + (c2 * c2).sum() / (n2 - 1)
    return float(((mu1 - mu2) ** 2).sum() + tr - 2 * cross)


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray, sigma2: np.ndarray) -> float:
    """Reference Fréchet distance in float64 numpy/scipy (Heusel et al. 2017, pytorch-fid style).

    d² = |mu1 - mu2|² + Tr(sigma1 + sigma2 - 2 (sigma1 sigma2)^½); used by the tests to check
    the torchmetrics path independently.
    """
    from scipy import linalg

    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
    covmean, _ = linalg.sqrtm(s1 @ s2, disp=False)
    if not np.isfinite(covmean).all():
        offset = np.eye(s1.shape[0]) * 1e-6
        covmean = linalg.sqrtm((s1 + offset) @ (s2 + offset))
    covmean = np.real(covmean)
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2.0 * np.trace(covmean))


def gaussian_stats(features: np.ndarray | torch.Tensor) -> tuple[np.ndarray, np.ndarray]:
    """Mean and unbiased covariance of (N, d) features in float64."""
    f = np.asarray(features.detach().cpu() if isinstance(features, torch.Tensor) else features,
                   dtype=np.float64)
    return f.mean(axis=0), np.cov(f, rowvar=False)


def score(x: torch.Tensor, dataset: Any, device: str, names: list[str]) -> dict[str, float]:
    """The registry's entry for FID and KID of quantised samples (`scalebench.metrics.METRICS`)."""
    return fid_kid(x, dataset, device=device, which=tuple(names))


def score_features(fake: torch.Tensor, real: torch.Tensor, dataset: Any, device: str,
                   names: list[str]) -> dict[str, float]:
    """FID and KID from features of both sides, as the data floor redraws them (low-rank FID)."""
    return fid_kid_features(fake, real, dataset, device, which=tuple(names), low_rank=True)
