import math

import numpy as np
import pytest

from trainer.evaluation import metrics


@pytest.fixture
def features():
    """float64 (500, 6), standard normal."""
    return np.random.default_rng(0).standard_normal((500, 6))


def whitened(rows, dims, seed):
    """float64 (rows, dims) with sample mean exactly 0 and sample covariance exactly I."""
    x = np.random.default_rng(seed).standard_normal((rows, dims))
    x -= x.mean(axis=0)
    values, vectors = np.linalg.eigh(np.cov(x, rowvar=False))
    return x @ (vectors / np.sqrt(values)) @ vectors.T


def one_hot(labels, classes=10):
    return np.eye(classes)[labels]


def test_identical_sets_have_distance_zero(features):
    scale = np.trace(np.cov(features, rowvar=False))
    assert metrics.frechet_distance(features, features) <= 1e-6 * scale


def test_shifted_means_give_the_squared_shift(features):
    shift = np.array([1.0, -2.0, 0.5, 0.0, 0.0, 3.0])
    assert metrics.frechet_distance(features, features + shift) == pytest.approx(
        np.sum(shift**2), rel=1e-8
    )  # 14.25


def test_diagonal_gaussians_match_the_closed_form():
    mu_a, mu_b = np.array([0.0, 1.0, -1.0]), np.array([2.0, 1.0, 0.0])
    var_a, var_b = np.array([4.0, 1.0, 2.0]), np.array([1.0, 9.0, 2.0])
    # sum (mu diff)^2 + sum (sqrt(s_a) - sqrt(s_b))^2 = (4 + 0 + 1) + (1 + 4 + 0) = 10.
    expected = 10.0
    assert metrics.frechet_distance_from_stats(
        mu_a, np.diag(var_a), mu_b, np.diag(var_b)
    ) == pytest.approx(expected, rel=1e-10)
    # Features built to have exactly these sample means and covariances.
    features_a = whitened(300, 3, seed=1) * np.sqrt(var_a) + mu_a
    features_b = whitened(200, 3, seed=2) * np.sqrt(var_b) + mu_b
    assert metrics.frechet_distance(features_a, features_b) == pytest.approx(expected, rel=1e-8)


def test_general_covariances_match_the_eigenvalues_of_the_product():
    rng = np.random.default_rng(3)
    m_a, m_b = rng.standard_normal((2, 5, 5))
    cov_a, cov_b = m_a @ m_a.T, m_b @ m_b.T  # PSD, not commuting
    mu_a, mu_b = rng.standard_normal((2, 5))
    # tr sqrt(S_a S_b) from the (real, non-negative) eigenvalues of the unsymmetric product.
    cross = np.sqrt(np.linalg.eigvals(cov_a @ cov_b).real.clip(0)).sum()
    expected = np.sum((mu_a - mu_b) ** 2) + np.trace(cov_a) + np.trace(cov_b) - 2 * cross
    assert metrics.frechet_distance_from_stats(mu_a, cov_a, mu_b, cov_b) == pytest.approx(
        expected, rel=1e-8
    )


def test_distance_is_symmetric(features):
    other = features[:, ::-1] * np.linspace(0.5, 2, 6) + 0.3
    forward = metrics.frechet_distance(features, other)
    assert forward > 1
    assert metrics.frechet_distance(other, features) == pytest.approx(forward, rel=1e-10)


def test_gaussian_stats_are_the_sample_mean_and_unbiased_covariance(features):
    mean, cov = metrics.gaussian_stats(features)
    assert mean.shape == (6,) and cov.shape == (6, 6) and cov.dtype == np.float64
    np.testing.assert_allclose(mean, features.mean(axis=0))
    np.testing.assert_allclose(cov, np.cov(features, rowvar=False))


def test_classifier_score_known_values():
    assert metrics.classifier_score(one_hot(np.zeros(50, int))) == pytest.approx(1.0)
    assert metrics.classifier_score(one_hot(np.arange(100) % 10)) == pytest.approx(10.0)
    assert metrics.classifier_score(np.full((40, 10), 0.1)) == pytest.approx(1.0)
    # Two classes, confident and equally common: exp(ln 2) = 2.
    assert metrics.classifier_score(one_hot(np.arange(8) % 2)) == pytest.approx(2.0)


def test_precision_recall_of_identical_sets_is_one(features):
    assert metrics.precision_recall(features, features) == (1.0, 1.0)


def test_far_away_fakes_have_no_precision_or_recall(features):
    assert metrics.precision_recall(features, features + 100.0) == (0.0, 0.0)


def test_fakes_covering_one_of_two_modes_have_half_recall():
    rng = np.random.default_rng(1)
    mode_a, mode_b = rng.standard_normal((200, 2)), rng.standard_normal((200, 2)) + 50
    fakes = rng.standard_normal((200, 2))  # drawn like mode_a
    precision, recall = metrics.precision_recall(np.concatenate([mode_a, mode_b]), fakes)
    assert precision > 0.95
    assert 0.45 < recall <= 0.5  # mode_b's 200 points are all out of reach


def brute_force_precision_recall(real, fake, k):
    """The definition, with full float64 distance matrices."""

    def radii(points):
        d = np.linalg.norm(points[:, None] - points[None], axis=-1)
        np.fill_diagonal(d, np.inf)  # a point is not its own neighbour
        return np.sort(d, axis=1)[:, k - 1]

    def coverage(centres, centre_radii, queries):
        d = np.linalg.norm(queries[:, None] - centres[None], axis=-1)
        return np.mean((d <= centre_radii[None]).any(axis=1))

    return coverage(real, radii(real), fake), coverage(fake, radii(fake), real)


@pytest.mark.parametrize("k", [1, 3, 5])
def test_batched_precision_recall_matches_brute_force(k):
    rng = np.random.default_rng(2)
    real, fake = rng.standard_normal((50, 3)), rng.standard_normal((40, 3)) * 0.8 + 0.8
    expected = brute_force_precision_recall(real, fake, k)
    assert 0 < expected[0] < 1 and 0 < expected[1] < 1  # neither trivial
    assert metrics.precision_recall(real, fake, k=k, batch_size=7) == expected


def test_precision_recall_never_holds_a_full_distance_matrix(monkeypatch):
    shapes, original = [], metrics._squared_distances
    monkeypatch.setattr(
        metrics,
        "_squared_distances",
        lambda a, b: shapes.append(a.shape[0]) or original(a, b),
    )
    rng = np.random.default_rng(4)
    metrics.precision_recall(
        rng.standard_normal((60, 3)), rng.standard_normal((45, 3)), batch_size=16
    )
    assert shapes and max(shapes) <= 16


def test_class_shares_and_kl_from_uniform():
    np.testing.assert_allclose(
        metrics.class_shares(one_hot([0, 0, 1, 9])), [0.5, 0.25] + [0] * 7 + [0.25]
    )
    assert metrics.kl_from_uniform(np.full(10, 0.1)) == pytest.approx(0.0, abs=1e-12)
    assert metrics.kl_from_uniform(one_hot([3])[0]) == pytest.approx(math.log(10))
    # Two classes at 3/4 and 1/4: 3/4 ln(3/2) + 1/4 ln(1/2).
    assert metrics.kl_from_uniform([0.75, 0.25]) == pytest.approx(
        0.75 * math.log(1.5) + 0.25 * math.log(0.5)
    )


def test_confident_share():
    probs = np.array([[0.95, 0.05], [0.9, 0.1], [0.5, 0.5], [0.01, 0.99]])
    assert metrics.confident_share(probs) == 0.5  # 0.9 is not above 0.9
    assert metrics.confident_share(probs, threshold=0.5) == 0.75


def test_summarize_reports_every_measure(features):
    probs = one_hot(np.arange(500) % 10)
    summary = metrics.summarize(features, features, probs)
    assert set(summary) == {
        "frechet_distance",
        "classifier_score",
        "precision",
        "recall",
        "class_shares",
        "class_kl",
        "confident_share",
    }
    assert summary["frechet_distance"] == pytest.approx(0, abs=1e-8)
    assert (summary["precision"], summary["recall"]) == (1.0, 1.0)
    assert summary["classifier_score"] == pytest.approx(10.0)
    assert summary["class_shares"] == pytest.approx([0.1] * 10)
    assert summary["class_kl"] == pytest.approx(0.0, abs=1e-12)
    assert summary["confident_share"] == 1.0


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: metrics.frechet_distance(np.zeros(5), np.zeros((5, 2))),
            "features_a must be",
        ),
        (
            lambda: metrics.frechet_distance(np.zeros((5, 2)), np.zeros((1, 2))),
            "features_b must",
        ),
        (
            lambda: metrics.frechet_distance(np.zeros((5, 2)), np.zeros((5, 3))),
            "features_b has 3",
        ),
        (
            lambda: metrics.frechet_distance(np.full((5, 2), np.nan), np.zeros((5, 2))),
            "features_a holds NaN",
        ),
        (lambda: metrics.gaussian_stats(np.zeros((1, 4))), "features must"),
        (
            lambda: metrics.frechet_distance_from_stats(
                np.zeros(2), np.eye(2), np.zeros(2), np.eye(3)
            ),
            "cov_b has shape",
        ),
        (
            lambda: metrics.precision_recall(np.zeros((3, 2)), np.zeros((9, 2))),
            "real_features",
        ),
        (
            lambda: metrics.precision_recall(np.zeros((9, 2)), np.zeros((9, 3))),
            "fake_features",
        ),
        (
            lambda: metrics.precision_recall(np.zeros((9, 2)), np.zeros((9, 2)), k=0),
            "k must",
        ),
        (
            lambda: metrics.classifier_score(-np.ones((3, 2))),
            "probs must hold probabilities",
        ),
        (lambda: metrics.classifier_score(np.ones((3, 2))), "probs rows must sum to 1"),
        (lambda: metrics.kl_from_uniform([0.5, 0.6]), "shares must"),
        (lambda: metrics.confident_share(np.eye(2), threshold=2), "threshold must"),
        (
            lambda: metrics.summarize(np.zeros((9, 2)), np.zeros((9, 2)), np.eye(2)),
            "fake_probs",
        ),
    ],
)
def test_bad_inputs_raise_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# --- per_digit: a class-conditional generator's figures, digit by digit ------------------


def digit_clouds(shifts, rows, seed):
    """One unit-covariance cloud per digit, digit d's mean at shifts[d], rows shuffled.

    Returns (features float64 (len(shifts) * rows, 2), digits int (len(shifts) * rows,));
    each cloud's sample mean is exactly shifts[d] and its sample covariance exactly I.
    """
    clouds = [whitened(rows, 2, seed + digit) + shift for digit, shift in enumerate(shifts)]
    digits = np.repeat(np.arange(len(shifts)), rows)
    order = np.random.default_rng(seed).permutation(len(digits))
    return np.concatenate(clouds)[order], digits[order]


def test_per_digit_shares_and_intra_class_distances_match_hand_values():
    test_features, test_labels = digit_clouds([[0, 0], [10, 0], [0, 10]], 50, seed=10)
    # Equal covariances, so each digit's distance is its squared shift: 0, 25 and 1,
    # the rows grouped by the digit asked for, not by the digit the probs label them.
    features, asked = digit_clouds([[0, 0], [13, 4], [1, 10]], 40, seed=20)
    labelled = asked.copy()
    labelled[np.flatnonzero(asked == 1)[:10]] = 2  # digit 1: 30 of 40 labelled as asked
    labelled[np.flatnonzero(asked == 2)[:30]] = 0  # digit 2: 10 of 40
    result = metrics.per_digit(
        features, one_hot(labelled, 3), asked, test_features, test_labels, num_classes=3
    )
    assert result["labelled_as_asked"] == [1.0, 0.75, 0.25]
    assert result["intra_class_frechet_distance"] == pytest.approx([0, 25, 1], abs=1e-9)
    assert result["count"] == [40, 40, 40]
    assert result["min_labelled_as_asked"] == 0.25
    assert result["mean_intra_class_frechet_distance"] == pytest.approx(26 / 3)


def test_per_digit_leaves_out_digits_never_asked_for():
    test_features, test_labels = digit_clouds([[0, 0], [10, 0], [0, 10]], 50, seed=10)
    features = whitened(20, 2, seed=30) + [10, 2]  # only digit 1, shifted by 2
    asked = np.ones(20, np.uint8)
    labelled = np.r_[np.ones(15, int), np.zeros(5, int)]
    result = metrics.per_digit(
        features, one_hot(labelled, 3), asked, test_features, test_labels, num_classes=3
    )
    assert result["labelled_as_asked"] == [None, 0.75, None]
    assert result["intra_class_frechet_distance"][0::2] == [None, None]
    assert result["count"] == [0, 20, 0]
    assert result["min_labelled_as_asked"] == 0.75
    assert result["mean_intra_class_frechet_distance"] == pytest.approx(4.0)


def per_digit_call(features_rows=6, asked=None, probs=None, test_labels=None, test_rows=6):
    """metrics.per_digit on 2 digits with one argument swapped for a bad one."""
    asked = np.arange(features_rows) % 2 if asked is None else asked
    probs = one_hot(np.arange(features_rows) % 2, 2) if probs is None else probs
    test_labels = np.arange(test_rows) % 2 if test_labels is None else test_labels
    rng = np.random.default_rng(0)
    return lambda: metrics.per_digit(
        rng.random((features_rows, 3)),
        probs,
        asked,
        rng.random((test_rows, 3)),
        test_labels,
        2,
    )


@pytest.mark.parametrize(
    "call, message",
    [
        (
            per_digit_call(asked=np.zeros(5, int)),
            r"asked has shape \(5,\) but features has 6",
        ),
        (per_digit_call(probs=one_hot(np.zeros(5, int), 2)), r"probs has shape \(5, 2\)"),
        (per_digit_call(probs=one_hot(np.zeros(6, int), 3)), r"expected \(6, 2\)"),
        (
            per_digit_call(test_labels=np.zeros(7, int)),
            r"test_labels has shape \(7,\) but test_features has 6",
        ),
        (
            per_digit_call(asked=np.array([0, 0, 0, 0, 0, 1])),
            r"digit 1 has 1 row\(s\) in asked",
        ),
        (
            per_digit_call(test_labels=np.array([1, 0, 0, 0, 0, 0])),
            r"digit 1 has 1 row\(s\) in test_labels",
        ),
        (
            per_digit_call(asked=np.array([0, 1, 2, 0, 1, 0])),
            "asked holds digit 2, outside 0 to 1",
        ),
        (
            per_digit_call(asked=np.array([0.0, 1, 0, 1, 0, 1])),
            "asked must hold integer digits",
        ),
        (
            per_digit_call(probs=-one_hot(np.zeros(6, int), 2)),
            "probs must hold probabilities",
        ),
    ],
)
def test_bad_per_digit_inputs_raise_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
