"""Image datasets and Inception FID (issue 15, items 4 and 5): imagefolder, cifar10, local-only
Inception weights, the feature net in cache keys and point identities."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from typer.testing import CliRunner

from scalebench.cli import app
from scalebench.data import dataset_args, get_dataset
from scalebench.data.cifar10 import Cifar10
from scalebench.data.imagefolder import ImageFolder
from scalebench.data.imageset import DataError
from scalebench.metrics.inception import HUB_FILES, MissingInception, weights_path
from scalebench.params import ArgsError
from scalebench.results import load_results
from scalebench.sweep.plan import expand, generator_identity
from scalebench.sweep.spec import parse_spec
from tests.conftest import toy_spec
from tests.image_fixtures import random_inception, write_fake_cifar, write_folder

runner = CliRunner(env={"COLUMNS": "200"})


@pytest.fixture(scope="module")
def inception_file(tmp_path_factory) -> Path:
    return random_inception(tmp_path_factory.mktemp("inception") / "random-inception.pth")


@pytest.fixture
def no_weights(monkeypatch, tmp_path) -> None:
    """No Inception anywhere: no env var, an empty torch hub."""
    monkeypatch.delenv("SCALEBENCH_INCEPTION", raising=False)
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch-home"))


def test_imagefolder_reads_nested_pngs_into_the_canonical_form(tmp_path) -> None:
    root = write_folder(tmp_path / "imgs", n=10, side=8)
    ds = ImageFolder(str(root))
    assert ds.name == "imagefolder-imgs" and ds.form.shape == (3, 8, 8) and ds.form.levels == 256
    x = ds.canonical("all")
    assert x.shape == (10, 3, 8, 8) and x.dtype == torch.float32
    assert torch.equal(ds.quantise(x), x) and 0 <= x.min() and x.max() <= 1  # on the k/255 grid
    from PIL import Image

    first = np.array(Image.open(root / "dogs" / "001.png"))  # sorted by relative path: cats/… then dogs/…
    assert torch.equal(ds.uint8("all")[5], torch.from_numpy(first).permute(2, 0, 1))
    # splits: seeded, disjoint, held_out of the images; test = reference
    tr, ref = ds.canonical("train"), ds.canonical("reference")
    assert (len(tr), len(ref)) == (8, 2) and torch.equal(ds.canonical("test"), ref)
    assert torch.equal(ImageFolder(str(root)).canonical("reference"), ref)  # deterministic
    assert not torch.equal(ImageFolder(str(root), seed=1).canonical("reference"), ref)
    with pytest.raises(ValueError, match="no split 'features'"):
        ds.canonical("features")


def test_imagefolder_channels_size_and_odd_files(tmp_path) -> None:
    grey = write_folder(tmp_path / "grey", n=4, side=8, mode="L", nested=False)
    assert ImageFolder(str(grey)).form.shape == (1, 8, 8)  # every file grey → 1 channel
    assert ImageFolder(str(grey), channels=3).form.shape == (3, 8, 8)
    assert ImageFolder(str(grey), size=12).canonical("all").shape == (4, 1, 12, 12)
    from PIL import Image

    Image.new("RGB", (9, 8)).save(grey / "odd.png")
    ds = ImageFolder(str(grey))
    assert ds.channels == 3  # one colour file → RGB
    with pytest.raises(DataError, match=r"odd.png is 9×8 but 000.png is 8×8; give dataset_args.size = N"):
        ds.canonical("all")
    assert ImageFolder(str(grey), size=8).canonical("all").shape == (5, 3, 8, 8)
    (grey / "broken.jpg").write_bytes(b"not a jpeg")
    with pytest.raises(DataError, match="cannot read .*broken.jpg"):
        ImageFolder(str(grey)).canonical("all")
    empty = tmp_path / "empty"
    empty.mkdir()
    with pytest.raises(DataError, match="0 PNG/JPEG file"):
        ImageFolder(str(empty))


def test_imagefolder_fingerprint_follows_content_not_location(tmp_path) -> None:
    a = write_folder(tmp_path / "a", n=6, side=8)
    fp = ImageFolder(str(a)).fingerprint()
    b = a.rename(tmp_path / "weird name!")
    moved = ImageFolder(str(b))
    assert moved.fingerprint() == fp and moved.name == "imagefolder-weird_name"
    (b / "notes.txt").write_text("ignored")
    assert ImageFolder(str(b)).fingerprint() == fp
    write_folder(b, n=1, side=8, seed=5, nested=False)
    assert ImageFolder(str(b)).fingerprint()["content"] != fp["content"]


def test_cifar10_reads_the_python_batches_through_torchvision(tmp_path) -> None:
    train, test = write_fake_cifar(tmp_path / "root")
    ds = get_dataset("cifar10", json.dumps(dataset_args("x", "cifar10", {"root": str(tmp_path / "root")}),
                                           sort_keys=True))
    assert ds.name == "cifar10" and ds.form.shape == (3, 32, 32)
    assert torch.equal(ds.uint8("train"), torch.from_numpy(train)) and torch.equal(ds.uint8("reference"),
                                                                                     torch.from_numpy(test))
    assert ds.labels("test").tolist() == [0, 1, 2, 3]
    assert Cifar10(str(tmp_path / "root" / "cifar-10-batches-py")).fingerprint() == ds.fingerprint()


def test_cifar10_missing_files_say_which_and_where(tmp_path) -> None:
    write_fake_cifar(tmp_path / "root")
    (tmp_path / "root" / "cifar-10-batches-py" / "test_batch").unlink()
    with pytest.raises(DataError, match=r"cifar-10-batches-py/ lacks test_batch; unpack .*cifar-10-python.tar.gz"):
        Cifar10(str(tmp_path / "root"))
    with pytest.raises(ArgsError, match=r"args.root = '/no/cifar' does not exist; .*cifar-10-batches-py"):
        dataset_args("x", "cifar10", {"root": "/no/cifar"})


def test_inception_weights_lookup_order(tmp_path, monkeypatch, no_weights) -> None:
    with pytest.raises(MissingInception, match=f"put {HUB_FILES[0]} .* in .*torch-home/hub/checkpoints/"):
        weights_path()
    hub = tmp_path / "torch-home" / "hub" / "checkpoints"
    hub.mkdir(parents=True)
    (hub / HUB_FILES[1]).write_bytes(b"pytorch-fid's name")
    assert weights_path() == hub / HUB_FILES[1]
    env = tmp_path / "env.pth"
    env.write_bytes(b"x")
    monkeypatch.setenv("SCALEBENCH_INCEPTION", str(env))
    assert weights_path() == env.resolve()
    spec_file = tmp_path / "spec.pth"
    spec_file.write_bytes(b"y")
    assert weights_path(str(spec_file)) == spec_file.resolve()
    monkeypatch.setenv("SCALEBENCH_INCEPTION", str(tmp_path / "gone.pth"))
    with pytest.raises(MissingInception, match="SCALEBENCH_INCEPTION=.*gone.pth.* is not a file"):
        weights_path()
    from scalebench.metrics.inception import load_inception

    with pytest.raises(MissingInception, match="is not an Inception state dict"):
        load_inception(env.resolve())


def _image_spec(folder: Path, metrics: list[str], **ds_args) -> object:
    return parse_spec(toy_spec(generators=[{"name": "image-noise", "dataset": "imagefolder", "K": [1],
                                            "dataset_args": {"path": str(folder), **ds_args}}],
                               metrics=metrics, samples=8, batch_size=8))


def test_feature_net_enters_identity_and_cache_key(tmp_path, monkeypatch, no_weights, inception_file) -> None:
    folder = write_folder(tmp_path / "imgs", n=10, side=8)
    # digits: the metric-net part is the historical one, byte for byte
    from scalebench.metrics.refnll import REFERENCE
    from scalebench.zoo import checkpoint_hash

    assert generator_identity("diffusion")["metric_nets"] == json.dumps(
        {"features": checkpoint_hash("features"), "ref_nll": checkpoint_hash(REFERENCE)}, sort_keys=True)
    # no weights: a sweep that needs Inception stops at planning; a speed-only one does not need it
    with pytest.raises(MissingInception, match="Inception weights for FID/KID not found"):
        expand(_image_spec(folder, ["fid"]))
    speed = expand(_image_spec(folder, []))[0]
    assert json.loads(dict(speed.identity)["metric_nets"]) == {"features": "unused"}
    # weights given (env var or spec): their content hash is in the identity and the reference cache key
    monkeypatch.setenv("SCALEBENCH_INCEPTION", str(inception_file))
    p1 = expand(_image_spec(folder, ["fid", "ref_nll"]))[0]
    nets = json.loads(dict(p1.identity)["metric_nets"])
    assert nets["features"].startswith("inception-v3-2048-tf1x:") and "ref_nll" not in nets
    other = tmp_path / "other.pth"
    data = inception_file.read_bytes()
    other.write_bytes(data[:-1] + bytes([data[-1] ^ 1]))  # other weights (only hashed here, never loaded)
    p2 = expand(_image_spec(folder, ["fid"], inception=str(other)))[0]  # the spec's path wins over the env var
    assert p2.fingerprint != p1.fingerprint
    from scalebench.metrics.fid import reference_key, reference_path

    ds = get_dataset(p1.dataset, p1.dataset_args)
    ds2 = get_dataset(p2.dataset, p2.dataset_args)
    assert reference_key(ds, "reference")["num_features"] == 2048
    assert reference_path(ds, "reference") != reference_path(ds2, "reference")
    assert reference_path(ds, "reference").name.startswith("ref-features-imagefolder-imgs-reference-")


def test_missing_weights_stop_the_cli_at_planning(tmp_path, no_weights) -> None:
    folder = write_folder(tmp_path / "imgs", n=10, side=8)
    spec = tmp_path / "s.toml"
    spec.write_text(f'''name = "img"
samples = 8
metrics = ["fid"]
dataset = "imagefolder"
dataset_args = {{ path = "{folder}" }}
[[generators]]
name = "image-noise"
''')
    res = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run"), "--no-progress"])
    assert res.exit_code == 2, res.output
    assert len(res.output.strip().splitlines()) == 1 and HUB_FILES[0] in res.output
    assert "SCALEBENCH_INCEPTION" in res.output and not (tmp_path / "run" / "points.jsonl").exists()


@pytest.mark.slow
def test_inception_fid_through_the_cli_with_the_reference_cache(tmp_path, monkeypatch, inception_file) -> None:
    """A tiny generator on a 40-image folder, scored on a random Inception loaded from a file the env var
    names: `run` then `table`; a second run hits the cached reference features (no real image through the net)."""
    from torchmetrics.image.fid import NoTrainInceptionV3

    import scalebench.metrics.fid as fid_mod
    import scalebench.metrics.inception as inc

    monkeypatch.setenv("SCALEBENCH_INCEPTION", str(inception_file))
    folder = write_folder(tmp_path / "faces", n=40, side=16)
    spec = tmp_path / "img.toml"
    spec.write_text(f'''name = "img"
threads = 2
samples = 32
batch_size = 32
metrics = ["fid", "kid", "precision", "recall", "diversity", "ref_nll", "memorisation", "test_nll"]
dataset = "imagefolder"
dataset_args = {{ path = "{folder}" }}
[timing]
warmup = 0
min_repeats = 1
min_duration_s = 0
[[generators]]
name = "image-noise"
K = [2]
''')
    seen = []
    real_forward = NoTrainInceptionV3.forward
    monkeypatch.setattr(NoTrainInceptionV3, "forward", lambda self, x: seen.append(len(x)) or real_forward(self, x))
    res = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run1"), "--no-progress"])
    assert res.exit_code == 0, res.output
    df = load_results(tmp_path / "run1")
    got = set(df["metric"])
    assert {"fid", "kid", "precision", "recall", "diversity"} <= got
    assert not {"ref_nll", "memorisation", "memorisation_feat", "test_nll"} & got  # not declared: nothing recorded
    fid = float(df[df["metric"] == "fid"]["value"].iloc[0])
    assert np.isfinite(fid) and fid > 0
    assert sum(seen) == 40 + 32  # each distinct image (40 real, 32 samples) through Inception once
    refs = sorted(fid_mod.cache_dir().glob("ref-features-imagefolder-faces-*.safetensors"))
    assert len(refs) == 1
    stamp = refs[0].stat().st_mtime_ns
    res = runner.invoke(app, ["table", str(tmp_path / "run1"), "--metric", "fid"])
    assert res.exit_code == 0 and "image-noise" in res.output, res.output
    # a fresh start (no in-process memo, the net loaded again): the reference comes from the cache file
    monkeypatch.setattr(fid_mod, "_MEMO", {})
    monkeypatch.setattr(inc, "_NETS", {})
    seen.clear()
    res = runner.invoke(app, ["run", str(spec), "--out", str(tmp_path / "run2"), "--no-progress"])
    assert res.exit_code == 0, res.output
    assert sum(seen) == 32  # only the samples; the reference features and the floors were cached
    assert refs[0].stat().st_mtime_ns == stamp
    again = load_results(tmp_path / "run2")
    assert float(again[again["metric"] == "fid"]["value"].iloc[0]) == pytest.approx(fid, rel=1e-9)
    assert os.environ["SCALEBENCH_INCEPTION"] == str(inception_file)
