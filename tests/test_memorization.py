import numpy as np
import pytest

from trainer.evaluation import memorization


def test_copies_of_reference_rows_are_at_distance_exactly_zero():
    train = np.random.default_rng(5).random((50, 784), dtype=np.float32)  # pixels in [0, 1]
    distances = memorization.nearest_distances(train[[3, 7, 7, 49]], train, batch_size=3)
    assert distances.dtype == np.float64
    np.testing.assert_array_equal(distances, 0.0)


def test_known_offsets_give_known_distances():
    references = np.zeros((5, 6))
    references[:, 0] = 10.0 * np.arange(5)  # rows 10 apart along the first axis
    offsets = np.zeros((4, 6))
    offsets[0, 1] = 3.0  # off row 2 by 3, sideways
    offsets[1, 0] = 4.0  # off row 1 by 4 toward row 2 (6 away): row 1 is nearest
    offsets[2, 1:3] = [3.0, 4.0]  # off row 4 by (3, 4): 5
    offsets[3, 0] = -7.0  # 7 below row 0, the end of the line
    queries = references[[2, 1, 4, 0]] + offsets
    np.testing.assert_allclose(
        memorization.nearest_distances(queries, references),
        [3.0, 4.0, 5.0, 7.0],
        rtol=1e-12,
    )


def brute_force_nearest(queries, references):
    return np.linalg.norm(queries[:, None] - references[None], axis=-1).min(axis=1)


@pytest.mark.parametrize("batch_size", [1, 7, 37, 1000])
def test_batched_nearest_distances_match_brute_force(batch_size):
    rng = np.random.default_rng(6)
    # Far from the origin, where ||a||^2 + ||b||^2 - 2ab loses float32 digits uncentred.
    references = rng.random((300, 20)) + 50.0
    queries = rng.random((37, 20)) + 50.0
    distances = memorization.nearest_distances(queries, references, batch_size)
    np.testing.assert_allclose(distances, brute_force_nearest(queries, references), rtol=1e-9)


def test_nearest_distances_never_hold_a_full_distance_matrix(monkeypatch):
    rng = np.random.default_rng(7)
    references, queries = rng.random((80, 5)), rng.random((45, 5))
    shapes = []

    class Spy(np.ndarray):
        def __matmul__(self, other):
            shapes.append(self.shape[0])
            return np.asarray(self) @ other

    original_ones = np.ones
    monkeypatch.setattr(memorization.np, "ones", lambda *a, **k: original_ones(*a, **k).view(Spy))
    result = memorization.nearest_distances(queries, references, batch_size=16)
    np.testing.assert_allclose(result, brute_force_nearest(queries, references), rtol=1e-9)
    assert shapes == [16, 16, 13]


def test_memorization_figures_on_known_distances():
    train = np.zeros((1, 4))  # one training image: distances are the rows' norms
    held_out = np.zeros((100, 4))
    held_out[:, 0] = np.arange(1, 101)  # distances 1 ... 100
    generated = np.zeros((4, 4))
    generated[:, 1] = [0.5, 1.5, 2.5, 50.0]
    result = memorization.memorization(generated, held_out, train)
    # numpy's percentile interpolates: 1 + 0.01 * (100 - 1) = 1.99.
    assert result["percentile"] == 1.0
    assert result["threshold"] == pytest.approx(1.99)
    assert result["generated"] == pytest.approx(
        {
            "mean": 13.625,
            "percentile_distance": 0.5 + 0.03 * 1.0,
            "count": 4,
            "share_below_threshold": 0.5,
        }
    )
    assert result["held_out"]["share_below_threshold"] == 0.01  # only distance 1
    assert result["held_out"]["mean"] == pytest.approx(50.5)


def test_a_generator_that_copies_its_training_set_scores_share_one():
    rng = np.random.default_rng(8)
    train = rng.random((200, 784), dtype=np.float32)
    result = memorization.memorization(train[:50], rng.random((50, 784)), train)
    assert result["generated"]["mean"] == 0.0
    assert result["generated"]["share_below_threshold"] == 1.0
    assert result["threshold"] > 0


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: memorization.nearest_distances(np.zeros((3, 2)), np.zeros((4, 5))),
            "queries has 2 features per row but references has 5",
        ),
        (
            lambda: memorization.nearest_distances(np.zeros(3), np.zeros((4, 3))),
            "queries must be",
        ),
        (
            lambda: memorization.nearest_distances(np.zeros((3, 2)), np.zeros((0, 2))),
            "references must be",
        ),
        (
            lambda: memorization.nearest_distances(np.full((3, 2), np.inf), np.zeros((4, 2))),
            "queries holds NaN or inf",
        ),
        (
            lambda: memorization.nearest_distances(
                np.zeros((3, 2)), np.zeros((4, 2)), batch_size=0
            ),
            "batch_size must be a positive integer, got 0",
        ),
        (
            lambda: memorization.memorization(
                np.zeros((3, 2)), np.zeros((3, 2)), np.zeros((3, 2)), percentile=100
            ),
            r"percentile must be in \(0, 100\)",
        ),
        (
            lambda: memorization.memorization(np.zeros((3, 2)), np.zeros((3, 3)), np.zeros((3, 2))),
            "held_out",
        ),
    ],
)
def test_bad_memorization_inputs_raise_naming_the_argument(call, message):
    with pytest.raises(ValueError, match=message):
        call()
