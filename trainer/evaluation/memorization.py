"""The memorization measure, NumPy only.

Each image's pixel distance to its nearest training image, set beside the same distance for
held-out real images: a generator that copies its training set sits closer to it than real
images it never saw.
"""

import numpy as np

from trainer.evaluation.metrics import _check_same_width


def nearest_distances(queries, references, batch_size: int = 500) -> np.ndarray:
    """Euclidean distance from each query row to its nearest reference row.

    The nearest row is found with float32 matmuls, batch_size queries at a time:
    argmax_j (q . r_j - ||r_j||^2 / 2), the ||r_j||^2 term folded into the matmul as one
    more column, is argmin_j ||q - r_j||^2. Memory holds a float32 copy of the references
    and batch_size x M scores, never N x M (about 310 MB for 60,000 MNIST images). The
    distance to the row found is recomputed in float64, so a copy gives exactly 0; only a
    near-tie within float32 rounding (~1e-5 in squared distance) can pick the runner-up.

    Args:
      queries: float or uint8 (N, D), N >= 1, e.g. images flattened and scaled to [0, 1].
      references: float or uint8 (M, D), M >= 1, the same D.
      batch_size: query rows per matmul, >= 1.

    Returns:
      float64 (N,) distances >= 0.

    Raises:
      ValueError: a bad array or batch_size (named), or D differs.
    """
    if int(batch_size) != batch_size or batch_size < 1:
        raise ValueError(f"batch_size must be a positive integer, got {batch_size!r}")
    given_queries, given_references = np.asarray(queries), np.asarray(references)
    queries, references = _rows("queries", queries), _rows("references", references)
    _check_same_width("references", references, "queries", queries)
    # Centring on the references keeps the dot products small, so float32 ranks well.
    centre = references.mean(axis=0, dtype=np.float64).astype(np.float32)
    augmented = np.empty((references.shape[1] + 1, len(references)), np.float32)  # (D+1, M)
    for start in range(0, len(references), batch_size):  # bounded float32 temporaries
        block = references[start : start + batch_size] - centre
        augmented[:-1, start : start + len(block)] = block.T
        augmented[-1, start : start + len(block)] = -0.5 * np.einsum("ij,ij->i", block, block)
    batch = np.ones((min(batch_size, len(queries)), references.shape[1] + 1), np.float32)
    nearest = np.empty(len(queries), np.int64)
    for start in range(0, len(queries), batch_size):
        rows = len(queries[start : start + batch_size])
        batch[:rows, :-1] = queries[start : start + batch_size] - centre
        nearest[start : start + rows] = (batch[:rows] @ augmented).argmax(axis=1)
    # In the given precision: float64 inputs are not rounded to float32 here.
    return np.linalg.norm(given_queries.astype(np.float64) - given_references[nearest], axis=1)


def _rows(name, array):
    """array -> float32 (N, D) with N, D >= 1 and finite values, or ValueError naming it.

    float32 rather than metrics._check_features's float64: the training set is 60,000
    rows."""
    array = np.asarray(array, dtype=np.float32)
    if array.ndim != 2 or 0 in array.shape:
        raise ValueError(
            f"{name} must be a 2-D array (N, D) with N, D >= 1, got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return array


def memorization(
    generated, held_out, train, percentile: float = 1.0, batch_size: int = 500
) -> dict:
    """How close generated images sit to the training set, against held-out real images.

    A generator that copies training images gives nearest distances near 0; real images
    it never saw set the reference. The share of generated images nearer a training image
    than the held-out images' `percentile`-th percentile distance is about percentile / 100
    for a model that makes new images like the held-out ones, and 1.0 for one that copies.

    Args:
      generated: float (N, D) images, e.g. uint8 pixels / 255 flattened (images.unit_pixels).
      held_out: float (H, D) real images not in `train`, e.g. the MNIST test set.
      train: float (M, D) the training images.
      percentile: the held-out distance percentile the share is counted below, in (0, 100).
      batch_size: query rows per matmul (see nearest_distances).

    Returns:
      {"percentile": percentile, "threshold": the held-out images' percentile distance,
      "generated": stats, "held_out": stats}; stats of each set's nearest distances are
      floats "mean", "percentile_distance" and "share_below_threshold" (in [0, 1]), and
      the int "count".

    Raises:
      ValueError: a bad array (named), D differs, or percentile is outside (0, 100).
    """
    if not 0 < percentile < 100:
        raise ValueError(f"percentile must be in (0, 100), got {percentile!r}")
    generated, held_out = np.asarray(generated), np.asarray(held_out)
    _check_same_width(
        "generated", _rows("generated", generated), "held_out", _rows("held_out", held_out)
    )
    # One pass over the training set for both: it is prepared for the matmul once.
    both = nearest_distances(np.concatenate([generated, held_out]), train, batch_size)
    distances = {"generated": both[: len(generated)], "held_out": both[len(generated) :]}
    threshold = float(np.percentile(distances["held_out"], percentile))
    results = {"percentile": float(percentile), "threshold": threshold}
    for name, values in distances.items():
        results[name] = {
            "mean": float(values.mean()),
            "percentile_distance": float(np.percentile(values, percentile)),
            "share_below_threshold": float(np.mean(values < threshold)),
            "count": len(values),
        }
    return results
