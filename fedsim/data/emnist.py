"""EMNIST (Cohen, Afshar, Tapson and van Schaik 2017, "EMNIST: an extension of MNIST to
handwritten letters", arXiv:1702.05373): NIST Special Database 19's digits and letters,
converted to MNIST's 28x28 format.

The built-in ``emnist`` loader reads ``<root>/EMNIST/raw/emnist-<split>-{train,test}-
{images-idx3,labels-idx1}-ubyte[.gz]``, the layout torchvision's ``datasets.EMNIST`` writes
(it downloads every split at once).  Two quirks of the files are fixed here:

- the images are stored transposed (column by column) relative to MNIST's: they are
  turned upright, so a digit reads as in MNIST;
- the ``letters`` labels run 1..26 (a-z, upper and lower case merged): they are shifted to
  classes 0..25.
"""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from fedsim.data.dataset import Dataset
from fedsim.data.idx_images import IdxImages

Split = Literal["balanced", "byclass", "bymerge", "digits", "letters", "mnist"]
CLASSES: dict[str, int] = {  # the paper's Table II
    "balanced": 47,
    "byclass": 62,
    "bymerge": 47,
    "digits": 10,
    "letters": 26,
    "mnist": 10,
}


def load(root: Path | None, *, split: Split = "balanced") -> Dataset:
    """Normalized upright 1x28x28 images of the ``split``'s classes (balanced: 47, 112,800 to
    train and 18,800 to test).  Normalized with the mean and std of the split's training
    pixels, computed once per machine."""
    return images(split).dataset(root, CLASSES[split])


def images(split: str) -> IdxImages:
    files = {
        part: (f"emnist-{split}-{part}-images-idx3-ubyte", f"emnist-{split}-{part}-labels-idx1-ubyte")
        for part in ("train", "test")
    }
    return IdxImages("emnist", "EMNIST", files, transposed=True, first_label=int(split == "letters"))
