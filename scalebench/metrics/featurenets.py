"""The feature nets that judge samples, as a registry: one declaration per net.

FID, KID, precision/recall and diversity embed images with a feature net chosen by the dataset
(`dataset.feature_net`): the project's digit CNN for `digits` (the default for a dataset that
names none), Inception-v3 (`inception.py`) for RGB and other image sizes. The net's identity
(name + weights hash) enters the reference-statistics cache key (`fid.reference_key`), the data
floor's key and every point's identity (`sweep/plan.py`, the "metric_nets" part).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

DIGITS_CNN = "digits-cnn"
INCEPTION = "inception"


@dataclass(frozen=True)
class FeatureNet:
    """A feature net: its identity (weights hash), its width and its extractor, each from the dataset."""

    name: str
    identity: Callable[[Any], str]
    num_features: Callable[[], int]
    extractor: Callable[[Any, str], Any]  # (dataset, device) → module: images in [0, 1] → (N, num_features)


def _inception_path(dataset: Any) -> Any:
    from scalebench.metrics.inception import weights_path

    return weights_path(getattr(dataset, "inception", "") or "")


def _digits_identity(dataset: Any) -> str:
    from scalebench.metrics.features import NAME
    from scalebench.zoo import checkpoint_hash

    return checkpoint_hash(NAME)


def _digits_width() -> int:
    from scalebench.metrics.features import NUM_FEATURES

    return NUM_FEATURES


def _digits_extractor(dataset: Any, device: str) -> Any:
    from scalebench.metrics.features import feature_extractor

    return feature_extractor(device)


def _inception_identity(dataset: Any) -> str:
    from scalebench.metrics.inception import weights_identity

    return weights_identity(_inception_path(dataset))


def _inception_width() -> int:
    from scalebench.metrics.inception import NUM_FEATURES

    return NUM_FEATURES


def _inception_extractor(dataset: Any, device: str) -> Any:
    from scalebench.metrics.inception import load_inception

    return load_inception(_inception_path(dataset), device)


NETS: dict[str, FeatureNet] = {net.name: net for net in [
    FeatureNet(DIGITS_CNN, _digits_identity, _digits_width, _digits_extractor),
    FeatureNet(INCEPTION, _inception_identity, _inception_width, _inception_extractor),
]}


def net_of(dataset: Any) -> str:
    net = getattr(dataset, "feature_net", DIGITS_CNN)
    if net not in NETS:
        raise ValueError(f"dataset {dataset.name!r} names feature_net {net!r}; known: {list(NETS)}")
    return net


def identity(dataset: Any) -> str:
    """Name + weights hash of the dataset's feature net (MissingInception if its weights are absent)."""
    return NETS[net_of(dataset)].identity(dataset)


def num_features(dataset: Any) -> int:
    return NETS[net_of(dataset)].num_features()


def extractor(dataset: Any, device: str) -> Any:
    """The `feature=` module for torchmetrics (images in [0, 1] → (N, num_features))."""
    return NETS[net_of(dataset)].extractor(dataset, device)


def metric_nets(dataset: Any, metrics: Iterable[str] | None = None) -> str:
    """The "metric_nets" identity part of a point on `dataset`.

    `digits` keeps its historical form (feature CNN + reference likelihood model, byte for
    byte, so shipped baselines still match). Another dataset names its own feature net, or, when
    `metrics` is given and asks for none of the feature metrics it declares, "unused" (a
    speed-only sweep neither needs the Inception weights nor changes identity when they arrive).
    """
    from scalebench.metrics import FEATURE_METRICS

    if net_of(dataset) == DIGITS_CNN:
        from scalebench.metrics.refnll import REFERENCE
        from scalebench.zoo import checkpoint_hash

        return json.dumps({"features": identity(dataset), "ref_nll": checkpoint_hash(REFERENCE)}, sort_keys=True)
    if metrics is not None and not any(m in FEATURE_METRICS and m in tuple(dataset.metrics) for m in metrics):
        return json.dumps({"features": "unused"})
    return json.dumps({"features": identity(dataset)})
