"""Write ``blobs.npz``, the data set of this example, from a seed: the same arrays every time.

    python examples/npz_model_and_data/make_blobs.py            # next to this file
    python examples/npz_model_and_data/make_blobs.py out.npz    # elsewhere

Five classes of points in 8 dimensions written by 20 "writers": every class is a Gaussian
blob around its own centre, every writer has a style (a small shift of all its points)
and favourite classes (a Dirichlet draw), and writers wrote very different amounts
(lognormal counts), as real clients do.  The test set is balanced across classes and
writers.  The arrays: ``x_train`` (float32, one row per sample), ``y_train`` (uint8
classes), ``writers`` (uint8, the writer of each training sample), ``x_test``, ``y_test``.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
FILE = HERE / "blobs.npz"


def generate(
    *,
    seed: int = 0,
    classes: int = 5,
    features: int = 8,
    writers: int = 20,
    train: int = 2400,
    test: int = 600,
    spread: float = 1.0,
    style: float = 0.5,
    skew: float = 0.5,
) -> dict[str, np.ndarray]:
    """The arrays of the data set, drawn from ``seed`` alone.

    ``spread``: how far apart the class centres are (in units of the points' own noise);
    ``style``: the size of a writer's shift; ``skew``: Dirichlet concentration of the
    writers' class mix (smaller: each writer sticks to fewer classes).
    """
    rng = np.random.default_rng(seed)
    centres = rng.normal(scale=spread, size=(classes, features))
    shifts = rng.normal(scale=style, size=(writers, features))
    mixes = rng.dirichlet(np.full(classes, skew), size=writers)
    sizes = rng.lognormal(mean=0.0, sigma=0.8, size=writers)
    counts = np.maximum(10, np.floor(sizes / sizes.sum() * train)).astype(np.int64)
    counts[np.argmax(counts)] += train - counts.sum()  # exactly ``train`` samples

    writer = np.repeat(np.arange(writers), counts)
    y_train = np.concatenate([rng.choice(classes, size=n, p=mixes[w]) for w, n in enumerate(counts)])
    x_train = centres[y_train] + shifts[writer] + rng.normal(size=(train, features))

    y_test = np.arange(test) % classes
    test_writer = rng.integers(0, writers, size=test)
    x_test = centres[y_test] + shifts[test_writer] + rng.normal(size=(test, features))
    return {
        "x_train": x_train.astype(np.float32),
        "y_train": y_train.astype(np.uint8),
        "writers": writer.astype(np.uint8),
        "x_test": x_test.astype(np.float32),
        "y_test": y_test.astype(np.uint8),
    }


def save(path: Path = FILE, *, seed: int = 0) -> Path:
    """Write :func:`generate`'s arrays (of ``seed``) to ``path``, compressed; return it."""
    a = generate(seed=seed)
    np.savez_compressed(
        path,
        x_train=a["x_train"],
        y_train=a["y_train"],
        writers=a["writers"],
        x_test=a["x_test"],
        y_test=a["y_test"],
    )
    return path


if __name__ == "__main__":
    written = save(Path(sys.argv[1]) if len(sys.argv) > 1 else FILE)
    print(f"wrote {written} ({written.stat().st_size / 1000:.0f} kB)")
