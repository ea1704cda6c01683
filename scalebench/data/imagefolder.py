"""`imagefolder`: a local folder of PNG/JPEG images (class subfolders allowed), read with PIL.

    dataset = "imagefolder"
    dataset_args = { path = "/data/faces", size = 32, channels = 3 }

Every ``*.png``/``*.jpg``/``*.jpeg`` under `path` (recursively, sorted by relative path) is one
image. `size` resizes each to size×size (PIL bicubic; non-square images are stretched); without it
all images must already share one size. `channels` (1 or 3) converts with PIL ("L" / "RGB");
without it the files decide: 1 when every file is grey, else 3. Splits: a permutation seeded by
`seed` holds out `held_out` of the images (at least one) as ``reference``/``test``; the rest is
``train`` (see `imageset.py`). The fingerprint hashes the image files' names and contents, so
editing the folder re-runs its points; the folder's location does not enter it.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from scalebench.data.imageset import LEVELS, DataError, ImageSet
from scalebench.params import Param

SUFFIXES = (".png", ".jpg", ".jpeg")
GREY_MODES = ("1", "L", "LA", "I", "I;16", "F")


def image_files(root: Path) -> list[Path]:
    return sorted((p for p in root.rglob("*") if p.is_file() and p.suffix.lower() in SUFFIXES),
                  key=lambda p: p.relative_to(root).as_posix())


def safe_name(text: str) -> str:
    """`text` reduced to characters safe in file names (the reference cache names files after it)."""
    return re.sub(r"[^A-Za-z0-9._-]+", "_", text).strip("._")[:40] or "folder"


class ImageFolder(ImageSet):
    """A folder of images as a dataset (module docstring)."""

    params = (
        Param("path", "path", help="a folder of PNG/JPEG images (class subfolders allowed)"),
        Param("size", "int", 0, help="resize every image to size×size (0: keep the files' own, equal size)"),
        Param("channels", "int", 0, choices=(0, 1, 3), help="1 (grey) or 3 (RGB); 0: 1 if every file is grey"),
        Param("held_out", "float", 0.2, help="fraction held out as the reference/test split"),
        Param("seed", "int", 0, help="seed of the split permutation"),
        Param("inception", "path", "", help="the Inception weights file for FID/KID (else $SCALEBENCH_INCEPTION, "
                                           "else the torch hub cache)"),
    )

    def __init__(self, path: str, size: int = 0, channels: int = 0, held_out: float = 0.2, seed: int = 0,
                 inception: str = "") -> None:
        self.root = Path(path)
        if not self.root.is_dir():
            raise DataError(f"imagefolder: path = {str(path)!r} is not a folder; give a folder of PNG/JPEG images")
        if size < 0:
            raise DataError(f"imagefolder: size = {size} must be ≥ 1 (or 0: the images' own size)")
        if not 0.0 < held_out < 1.0:
            raise DataError(f"imagefolder: held_out = {held_out} must be in (0, 1), e.g. 0.2")
        self.files = image_files(self.root)
        if len(self.files) < 2:
            raise DataError(f"imagefolder: {len(self.files)} PNG/JPEG file(s) under {self.root}; "
                            "give a folder holding at least two images")
        self.size, self.held_out, self.seed, self.inception = size, held_out, seed, inception
        self.channels = channels or self._channels_from_files()
        self.name = f"imagefolder-{safe_name(self.root.name)}"

    def _open(self, f: Path) -> Any:
        from PIL import Image, UnidentifiedImageError

        try:
            return Image.open(f)
        except (UnidentifiedImageError, OSError) as e:
            raise DataError(f"imagefolder: cannot read {f} ({type(e).__name__}); remove it or replace it "
                            "with a PNG/JPEG") from None

    def _channels_from_files(self) -> int:
        """1 if every file is grey, else 3 (reads headers only)."""
        for f in self.files:
            with self._open(f) as im:
                if im.mode not in GREY_MODES:
                    return 3
        return 1

    def _load(self) -> tuple[torch.Tensor, torch.Tensor]:
        from PIL import Image

        mode = "L" if self.channels == 1 else "RGB"
        arrays, first = [], None
        for f in self.files:
            with self._open(f) as im:
                try:
                    im = im.convert(mode)
                    if self.size:
                        im = im.resize((self.size, self.size), Image.Resampling.BICUBIC)
                    a = np.asarray(im, dtype=np.uint8)
                except OSError as e:
                    raise DataError(f"imagefolder: cannot decode {f} ({e}); remove it or re-save it") from None
            a = a[None] if a.ndim == 2 else a.transpose(2, 0, 1)
            if first is None:
                first = (f, a.shape)
            elif a.shape != first[1]:
                raise DataError(f"imagefolder: {f} is {a.shape[2]}×{a.shape[1]} but {first[0].name} is "
                                f"{first[1][2]}×{first[1][1]}; give dataset_args.size = N to resize every image "
                                "to N×N, or make them one size")
            arrays.append(a)
        images = torch.from_numpy(np.stack(arrays))
        n = len(images)
        n_ref = min(max(1, round(n * self.held_out)), n - 1)
        perm = torch.from_numpy(np.random.default_rng(self.seed).permutation(n))
        ref = torch.zeros(n, dtype=torch.bool)
        ref[perm[:n_ref]] = True
        return images, ref

    def content_hash(self) -> str:
        """sha256 over the image files' relative names and contents (other files are ignored)."""
        import hashlib

        from scalebench.zoo import file_hash

        h = hashlib.sha256()
        for f in self.files:
            h.update(f"{f.relative_to(self.root).as_posix()}\0{file_hash(f)}\n".encode())
        return h.hexdigest()[:16]

    def fingerprint(self) -> dict[str, Any]:
        return {"dataset": "imagefolder", "content": self.content_hash(), "files": len(self.files),
                "size": self.size, "channels": self.channels, "held_out": self.held_out, "seed": self.seed,
                "levels": LEVELS, "splits": "train/reference v1"}
