"""trainer.tools.layer_profile: one timed row per conv, transposed-conv and dense layer."""

import pytest

from trainer.tools import layer_profile
from trainer.train_config import TrainConfig


def test_profile_times_every_weighted_layer_of_both_networks():
    config = TrainConfig(
        batch_size=4,
        latent_dim=8,
        generator_width=4,
        discriminator_width=4,
        generator_depth=1,
        discriminator_depth=1,
    )
    rows = layer_profile.profile(config, steps=1)
    # Generator: projection, 3x3 at 7x7, up to 14x14, 3x3 at 14x14, up to 28x28.
    # Discriminator: down to 14x14, 3x3, down to 7x7, 3x3, the 7x7 logit.
    assert [r["layer"].split("/")[0] for r in rows] == ["generator"] * 5 + ["discriminator"] * 5
    assert rows[0]["shape"] == "(1, 1, 8) -> (7, 7, 8)"  # z reshaped to 1x1
    for row in rows:
        assert row["forward_ms"] > 0 and row["train_ms"] > 0
    # GFLOP/s are the layer's counted FLOPs over its time.
    flops = 2 * 8 * 49 * 8 * 4  # the 7x7 projection: each z value scatters 7x7x8
    assert rows[0]["forward_gflops"] == pytest.approx(flops / (rows[0]["forward_ms"] / 1e3) / 1e9)
    assert "total" in layer_profile.format_rows(rows)
