"""trainer.tools.layer_profile: one timed row per conv, transposed-conv and dense layer."""

import pytest

from trainer.tools import layer_profile
from trainer.train_config import TrainConfig

# Multiply-adds per image of each weighted layer at latent_dim 8, width 4 (8 channels at
# 7x7), depth 1, counted by hand: a convolution does k*k*Cin per output value,
# a transposed convolution scatters a k*k*Cout patch per input value.
HAND_COUNTED_MACS = [
    ("(1, 1, 8) -> (7, 7, 8)", 1 * 1 * 8 * (7 * 7 * 8)),  # projection: z scatters 7x7x8
    ("(7, 7, 8) -> (7, 7, 8)", 7 * 7 * 8 * (3 * 3 * 8)),  # 3x3 at 7x7
    ("(7, 7, 8) -> (14, 14, 4)", 7 * 7 * 8 * (4 * 4 * 4)),  # up to 14x14
    ("(14, 14, 4) -> (14, 14, 4)", 14 * 14 * 4 * (3 * 3 * 4)),  # 3x3 at 14x14
    ("(14, 14, 4) -> (28, 28, 1)", 14 * 14 * 4 * (4 * 4 * 1)),  # up to 28x28
    ("(28, 28, 1) -> (14, 14, 4)", 14 * 14 * 4 * (4 * 4 * 1)),  # down to 14x14
    ("(14, 14, 4) -> (14, 14, 4)", 14 * 14 * 4 * (3 * 3 * 4)),  # 3x3 at 14x14
    ("(14, 14, 4) -> (7, 7, 8)", 7 * 7 * 8 * (4 * 4 * 4)),  # down to 7x7
    ("(7, 7, 8) -> (7, 7, 8)", 7 * 7 * 8 * (3 * 3 * 8)),  # 3x3 at 7x7
    ("(7, 7, 8) -> (1, 1, 1)", 1 * 1 * 1 * (7 * 7 * 8)),  # the 7x7 logit
]


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
    assert [r["layer"].split("/")[0] for r in rows] == ["generator"] * 5 + ["discriminator"] * 5
    assert [r["shape"] for r in rows] == [shape for shape, _ in HAND_COUNTED_MACS]
    for row, (_, macs) in zip(rows, HAND_COUNTED_MACS):
        assert row["forward_ms"] > 0 and row["train_ms"] > 0
        # GFLOP/s: 2 FLOPs per multiply-add, for the whole batch, over the layer's time;
        # training is the forward pass and a backward pass costing twice it.
        flops = 2 * macs * config.batch_size
        assert row["forward_gflops"] == pytest.approx(flops / (row["forward_ms"] / 1e3) / 1e9)
        assert row["train_gflops"] == pytest.approx(3 * flops / (row["train_ms"] / 1e3) / 1e9)
    assert "total" in layer_profile.format_rows(rows)
