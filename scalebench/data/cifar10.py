"""`cifar10`: torchvision's CIFAR-10 from a local copy (never downloaded).

    dataset = "cifar10"
    dataset_args = { root = "/data" }   # holds cifar-10-batches-py/

`root` is the folder holding `cifar-10-batches-py/` (data_batch_1..5, test_batch, batches.meta: the
python version from https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz, unpacked), or that
folder itself. Read by `torchvision.datasets.CIFAR10(download=False)`; torchvision's md5 check is
replaced by the content hash of the seven files, which enters the fingerprint (a re-pickled or
subset copy is usable, and is a different dataset). Canonical form: 3×32×32 on 256 levels.
Splits: ``train`` = the 50 000 training images, ``reference`` = ``test`` = the 10 000 test images
(the usual FID reference of papers that hold the test set out; see `imageset.py`).
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scalebench.data.imageset import LEVELS, DataError, ImageSet
from scalebench.params import Param

FOLDER = "cifar-10-batches-py"
TRAIN_FILES = tuple(f"data_batch_{i}" for i in range(1, 6))
TEST_FILES = ("test_batch",)
META = "batches.meta"
FILES = (*TRAIN_FILES, *TEST_FILES, META)
URL = "https://www.cs.toronto.edu/~kriz/cifar-10-python.tar.gz"


def batches_folder(root: Path) -> Path:
    """root/cifar-10-batches-py (or root itself when it is that folder) with every file present."""
    folder = root if root.name == FOLDER and not (root / FOLDER).is_dir() else root / FOLDER
    missing = [f for f in FILES if not (folder / f).is_file()]
    if missing:
        raise DataError(f"cifar10: {folder}/ lacks {', '.join(missing)}; unpack {URL} so that {root}/{FOLDER}/ "
                        f"holds {', '.join(FILES)} (nothing is downloaded)")
    return folder


def _torchvision_cifar(folder: Path, train: bool) -> Any:
    """torchvision's CIFAR10 reader over `folder`, its md5 checks replaced by a presence check."""
    import pickle

    from torchvision.datasets import CIFAR10

    class LocalCIFAR10(CIFAR10):
        base_folder = folder.name

        def _check_integrity(self) -> bool:
            return all((folder / name).is_file() for name, _ in self.train_list + self.test_list)

        def _load_meta(self) -> None:
            with open(folder / self.meta["filename"], "rb") as f:
                self.classes = pickle.load(f, encoding="latin1")[self.meta["key"]]
            self.class_to_idx = {c: i for i, c in enumerate(self.classes)}

    return LocalCIFAR10(str(folder.parent), train=train, download=False)


class Cifar10(ImageSet):
    """CIFAR-10 from a local root (module docstring)."""

    name = "cifar10"
    params = (
        Param("root", "path", help=f"the folder holding {FOLDER}/ ({', '.join(FILES)}; from {URL})"),
        Param("inception", "path", "", help="the Inception weights file for FID/KID (else $SCALEBENCH_INCEPTION, "
                                            "else the torch hub cache)"),
    )

    def __init__(self, root: str, inception: str = "") -> None:
        self.root = Path(root)
        self.folder = batches_folder(self.root)
        self.inception = inception

    def _load(self) -> tuple[torch.Tensor, torch.Tensor]:
        parts = []
        for train in (True, False):
            try:
                ds = _torchvision_cifar(self.folder, train)
            except Exception as e:  # noqa: BLE001 - a damaged pickle is the same user error
                raise DataError(f"cifar10: cannot read {self.folder} ({type(e).__name__}: {e}); unpack {URL} "
                                "there again") from None
            parts.append(torch.from_numpy(np.ascontiguousarray(ds.data.transpose(0, 3, 1, 2))))
        images = torch.cat(parts)
        ref = torch.zeros(len(images), dtype=torch.bool)
        ref[len(parts[0]):] = True
        return images, ref

    def labels(self, split: str = "train") -> torch.Tensor:
        targets = []
        for train in (True, False):
            targets += list(_torchvision_cifar(self.folder, train).targets)
        return torch.tensor(targets)[self._mask(split)]

    def fingerprint(self) -> dict[str, Any]:
        from scalebench.zoo import file_hash

        h = hashlib.sha256("".join(f"{f}\0{file_hash(self.folder / f)}\n" for f in FILES).encode())
        return {"dataset": self.name, "content": h.hexdigest()[:16], "levels": LEVELS,
                "splits": "train=data_batch_1-5 reference=test=test_batch v1"}
