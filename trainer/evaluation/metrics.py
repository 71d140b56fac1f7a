"""Sample-quality measures on an MNIST classifier's features and probabilities. NumPy only.

- Frechet distance between Gaussians fitted to two feature sets (Heusel et al. 2017, "GANs
  Trained by a Two Time-Scale Update Rule Converge to a Local Nash Equilibrium"), on the
  classifier's penultimate features rather than Inception's.
- Classifier score exp(E_x[KL(p(y|x) || p(y))]): the Inception score of Salimans et al. 2016
  ("Improved Techniques for Training GANs") with an MNIST classifier, TF-GAN's "MNIST score".
- Improved precision and recall on k-nearest-neighbour manifolds (Kynkaanniemi et al. 2019,
  "Improved Precision and Recall Metric for Assessing Generative Models").
- Digit shares, their KL divergence from uniform, and the share classified confidently.
"""

import numpy as np

_EPS = 1e-12  # keeps log(0) finite; 0 * log(eps) is still 0
_SUM_TOLERANCE = 1e-3  # float32 softmax rows sum to 1 within ~1e-6


def _check_features(name, array, min_rows=2):
    """array -> float64 (N, D), or ValueError naming `name`."""
    array = np.asarray(array, dtype=np.float64)
    if array.ndim != 2 or array.shape[0] < min_rows or array.shape[1] < 1:
        raise ValueError(
            f"{name} must be a 2-D array (N, D) with N >= {min_rows} and "
            f"D >= 1, got shape {array.shape}"
        )
    if not np.isfinite(array).all():
        raise ValueError(f"{name} holds NaN or inf values")
    return array


def _check_probs(name, probs):
    """probs -> float64 (N, C), rows non-negative and summing to 1, or ValueError."""
    probs = _check_features(name, probs, min_rows=1)
    if (probs < 0).any():
        raise ValueError(
            f"{name} must hold probabilities, got a negative value "
            f"{probs.min():g}; pass softmax outputs, not logits"
        )
    worst = np.abs(probs.sum(axis=1) - 1).max()
    if worst > _SUM_TOLERANCE:
        raise ValueError(f"{name} rows must sum to 1, got a row {worst:g} away from 1")
    return probs


def _check_same_width(name_a, a, name_b, b):
    if a.shape[-1] != b.shape[-1]:
        raise ValueError(
            f"{name_b} has {b.shape[-1]} features per row but {name_a} has "
            f"{a.shape[-1]}; both must come from the same feature layer"
        )


def gaussian_stats(features):
    """Mean and unbiased covariance of features float (N, D), N >= 2.

    Returns (mean float64 (D,), covariance float64 (D, D)). Raises ValueError if features
    is not 2-D with 2 rows or more, or not finite.
    """
    features = _check_features("features", features)
    mean = features.mean(axis=0)
    centred = features - mean
    return mean, centred.T @ centred / (len(features) - 1)


def _sqrt_psd(matrix):
    """Symmetric PSD square root by eigh; tiny negative eigenvalues (rounding) become 0."""
    values, vectors = np.linalg.eigh(matrix)
    return (vectors * np.sqrt(np.clip(values, 0, None))) @ vectors.T


def frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b) -> float:
    """||mu_a - mu_b||^2 + tr(S_a) + tr(S_b) - 2 tr(sqrt(S_a S_b)), in float64.

    tr(sqrt(S_a S_b)) sums the square roots of the eigenvalues of sqrt(S_a) S_b sqrt(S_a),
    which is symmetric PSD with the eigenvalues of S_a S_b: stable without scipy's sqrtm.
    Compute the reference set's gaussian_stats once and pass them to every call.

    Args:
      mu_a, mu_b: means, float (D,); cov_a, cov_b: covariances, float (D, D), PSD.

    Returns:
      The distance, a float >= 0 (a tiny negative rounding result is clamped to 0).

    Raises:
      ValueError: a shape is wrong or differs between the two sets (the argument named).
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64), np.asarray(mu_b, np.float64)
    cov_a, cov_b = np.asarray(cov_a, np.float64), np.asarray(cov_b, np.float64)
    if mu_a.ndim != 1:
        raise ValueError(f"mu_a must be 1-D (D,), got shape {mu_a.shape}")
    for name, value, shape in (
        ("mu_b", mu_b, mu_a.shape),
        ("cov_a", cov_a, mu_a.shape * 2),
        ("cov_b", cov_b, mu_a.shape * 2),
    ):
        if value.shape != shape:
            raise ValueError(
                f"{name} has shape {value.shape}, expected {shape} to match mu_a's {mu_a.shape}"
            )
    root_a = _sqrt_psd(cov_a)
    middle = root_a @ cov_b @ root_a
    middle = (middle + middle.T) / 2  # symmetric but for rounding; eigvalsh reads one half
    cross = np.sqrt(np.clip(np.linalg.eigvalsh(middle), 0, None)).sum()
    distance = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    return float(max(distance, 0.0))


def frechet_distance(features_a, features_b) -> float:
    """Frechet distance between Gaussians fitted to float (N, D) and (M, D), N, M >= 2.

    Raises ValueError if either set is not 2-D with 2 rows or more, or D differs (named).
    """
    features_a = _check_features("features_a", features_a)
    features_b = _check_features("features_b", features_b)
    _check_same_width("features_a", features_a, "features_b", features_b)
    return frechet_distance_from_stats(*gaussian_stats(features_a), *gaussian_stats(features_b))


def classifier_score(probs) -> float:
    """exp(mean_x KL(p(y|x) || p(y))), p(y) the mean row of probs float (N, C).

    Returns a float in [1, C]: 1 when every row is the same, C when the rows are confident
    one-hots with every class equally common. Raises ValueError for a bad probs.
    """
    probs = _check_probs("probs", probs)
    marginal = probs.mean(axis=0, keepdims=True)
    kl = np.sum(probs * (np.log(probs + _EPS) - np.log(marginal + _EPS)), axis=1)
    return float(np.exp(kl.mean()))


def _squared_distances(a, b):
    """(n, m) squared distances ||a||^2 - 2ab + ||b||^2, clipped at 0 (rounding), in place."""
    d = a @ b.T
    d *= -2
    d += (a * a).sum(axis=1)[:, None]
    d += (b * b).sum(axis=1)[None, :]
    return np.maximum(d, 0, out=d)


def _kth_neighbour_radii(points, k, batch_size):
    """Squared distance from each of points (N, D) to its k-th nearest other point, (N,)."""
    radii = np.empty(len(points), points.dtype)
    for start in range(0, len(points), batch_size):
        d = _squared_distances(points[start : start + batch_size], points)
        rows = np.arange(len(d))
        d[rows, start + rows] = np.inf  # the point itself is no neighbour
        radii[start : start + batch_size] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return radii


def precision_recall(real_features, fake_features, k: int = 3, batch_size: int = 1000):
    """Improved precision and recall (Kynkaanniemi et al. 2019).

    Each set's manifold is the union of balls around its points, each reaching its point's
    k-th nearest neighbour in the same set; a point is inside if within some ball (<=).
    Distances are float32, batch_size rows at a time: never an N x M matrix in memory.

    Args:
      real_features: reference set, float (N, D), N > k.
      fake_features: judged set, float (M, D), M > k.
      k: which neighbour sets the radii, >= 1 (the paper uses 3).
      batch_size: rows of distances held at once, >= 1.

    Returns:
      (precision, recall): the share of fake points inside the real manifold and of real
      points inside the fake manifold, floats in [0, 1].

    Raises:
      ValueError: k or batch_size below 1, too few rows, or D differs (named).
    """
    for name, value in (("k", k), ("batch_size", batch_size)):
        if int(value) != value or value < 1:
            raise ValueError(f"{name} must be a positive integer, got {value!r}")
    real = _check_features("real_features", real_features, k + 1)
    fake = _check_features("fake_features", fake_features, k + 1)
    _check_same_width("real_features", real, "fake_features", fake)
    # Centring on the data keeps ||a||^2 - 2ab + ||b||^2 accurate in float32.
    centre = real.mean(axis=0)
    real, fake = (real - centre).astype(np.float32), (fake - centre).astype(np.float32)
    real_radii = _kth_neighbour_radii(real, k, batch_size)
    fake_radii = _kth_neighbour_radii(fake, k, batch_size)
    # One pass over real x fake distances serves both: rows give recall, columns precision.
    real_covered, fake_covered = np.zeros(len(real), bool), np.zeros(len(fake), bool)
    for start in range(0, len(real), batch_size):
        d = _squared_distances(real[start : start + batch_size], fake)
        real_covered[start : start + batch_size] = (d <= fake_radii[None, :]).any(axis=1)
        fake_covered |= (d <= real_radii[start : start + batch_size, None]).any(axis=0)
    return float(fake_covered.mean()), float(real_covered.mean())


def class_shares(probs) -> np.ndarray:
    """float64 (C,) share of rows of probs (N, C) whose most likely class is each class."""
    probs = _check_probs("probs", probs)
    return np.bincount(probs.argmax(axis=1), minlength=probs.shape[1]) / len(probs)


def kl_from_uniform(shares) -> float:
    """KL(shares || uniform) in nats of shares float (C,) summing to 1; 0 * log 0 is 0.

    Returns a float in [0, ln C]: 0 when uniform, ln C when one class has every sample.
    """
    shares = np.asarray(shares, np.float64)
    if shares.ndim != 1 or (shares < 0).any() or abs(shares.sum() - 1) > _SUM_TOLERANCE:
        raise ValueError(
            f"shares must be a 1-D array of non-negative shares summing to 1, got {shares!r}"
        )
    present = shares[shares > 0]
    return float(np.sum(present * np.log(present * len(shares))))


def confident_share(probs, threshold: float = 0.9) -> float:
    """Share of rows of probs float (N, C) whose top probability is above threshold."""
    if not 0 <= threshold <= 1:
        raise ValueError(f"threshold must be in [0, 1], got {threshold!r}")
    return float(np.mean(_check_probs("probs", probs).max(axis=1) > threshold))


def summarize(real_features, fake_features, fake_probs, k: int = 3) -> dict:
    """Every measure of a judged set ("fake", M rows) against a reference set ("real").

    Args:
      real_features: reference features float (N, D), e.g. the MNIST test set's.
      fake_features, fake_probs: the judged images' features (M, D) and probabilities (M, C).
      k: the neighbour for precision and recall.

    Returns:
      Floats "frechet_distance", "classifier_score", "precision", "recall", "class_kl",
      "confident_share" and "class_shares", a list of C floats; all but Frechet distance,
      precision and recall are of the fake set alone.

    Raises:
      ValueError: a bad array (named), or fake_probs and fake_features row counts differ.
    """
    if len(fake_probs) != len(fake_features):
        raise ValueError(
            f"fake_probs has {len(fake_probs)} rows but fake_features has "
            f"{len(fake_features)}; pass the same images' outputs"
        )
    precision, recall = precision_recall(real_features, fake_features, k)
    shares = class_shares(fake_probs)
    return {
        "frechet_distance": frechet_distance(real_features, fake_features),
        "classifier_score": classifier_score(fake_probs),
        "precision": precision,
        "recall": recall,
        "class_shares": [float(s) for s in shares],
        "class_kl": kl_from_uniform(shares),
        "confident_share": confident_share(fake_probs),
    }


def labelled_as_asked(probs, asked) -> dict:
    """class -> the share of the images asked for it whose most likely class is it.

    Args:
      probs: float (N, num_classes), the classifier's probabilities of N images.
      asked: int (N,), the class each image was asked to be.

    Returns:
      {class: float in [0, 1]} for each class in `asked`.
    """
    probs, asked = np.asarray(probs), np.asarray(asked)
    return {
        int(label): float(np.mean(probs[asked == label].argmax(axis=1) == label))
        for label in np.unique(asked)
    }


def per_digit(features, probs, asked, test_features, test_labels, num_classes: int = 10) -> dict:
    """How well each digit asked for comes out: a class-conditional generator's figures.

    Args:
      features, probs: the judged images' features float (N, D) and probabilities
        float (N, num_classes).
      asked: int (N,), the digit each image was asked to be (for real images, its label),
        in [0, num_classes). A digit asked for needs 2 images or more (a Frechet
        distance needs a covariance); a digit never asked for is left out (None).
      test_features: the reference images' features float (M, D), e.g. the test set's.
      test_labels: int (M,), their digits; 2 or more of each digit asked for.
      num_classes: how many digits there are.

    Returns:
      Lists of num_classes entries, digit d at index d: "labelled_as_asked" (floats in
      [0, 1], the share of images asked for d whose most likely class is d),
      "intra_class_frechet_distance" (floats >= 0, between the images asked for d and
      the test images of d), both None for a digit never asked for, and "count" (ints);
      and the floats "min_labelled_as_asked" and "mean_intra_class_frechet_distance"
      over the digits asked for.

    Raises:
      ValueError: a bad array (named), row counts that differ, a digit outside
        [0, num_classes), or a digit asked for with fewer than 2 rows in either set
        (named, with its count).
    """
    features = _check_features("features", features)
    test_features = _check_features("test_features", test_features)
    _check_same_width("features", features, "test_features", test_features)
    probs = _check_probs("probs", probs)
    if probs.shape != (len(features), num_classes):
        raise ValueError(
            f"probs has shape {probs.shape}, expected ({len(features)}, "
            f"{num_classes}): a row per row of features, a column per digit"
        )
    asked = _digits("asked", asked, len(features), "features", num_classes)
    test_labels = _digits(
        "test_labels", test_labels, len(test_features), "test_features", num_classes
    )
    counts = np.bincount(asked, minlength=num_classes)
    asked_for = [digit for digit in range(num_classes) if counts[digit]]
    shares, distances = [None] * num_classes, [None] * num_classes
    for digit, share in labelled_as_asked(probs, asked).items():
        shares[digit] = share
    for digit in asked_for:
        mine, theirs = asked == digit, test_labels == digit
        for name, rows in (("asked", counts[digit]), ("test_labels", theirs.sum())):
            if rows < 2:
                raise ValueError(
                    f"digit {digit} has {rows} row(s) in {name}; each digit "
                    "asked for needs at least 2 for its Frechet distance"
                )
        distances[digit] = frechet_distance_from_stats(
            *gaussian_stats(features[mine]), *gaussian_stats(test_features[theirs])
        )
    return {
        "labelled_as_asked": shares,
        "intra_class_frechet_distance": distances,
        "count": [int(count) for count in counts],
        "min_labelled_as_asked": min(shares[digit] for digit in asked_for),
        "mean_intra_class_frechet_distance": float(
            np.mean([distances[digit] for digit in asked_for])
        ),
    }


def _digits(name, labels, rows, rows_name, num_classes):
    """labels -> int64 (rows,) in [0, num_classes), or ValueError naming `name`."""
    labels = np.asarray(labels)
    if labels.shape != (rows,):
        raise ValueError(
            f"{name} has shape {labels.shape} but {rows_name} has {rows} "
            f"rows; pass one digit per row, shape ({rows},)"
        )
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"{name} must hold integer digits, got dtype {labels.dtype}")
    outside = labels[(labels < 0) | (labels >= num_classes)]
    if outside.size:
        raise ValueError(f"{name} holds digit {outside[0]}, outside 0 to {num_classes - 1}")
    return labels.astype(np.int64)
