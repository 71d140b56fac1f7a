import glob
import itertools
import os
import signal

import helpers
import numpy as np
import pytest
import tensorflow as tf
from helpers import replace, slow
from tensorboard.backend.event_processing import event_accumulator

from trainer import (
    data,
    generation,
    latent,
    loaders,
    losses,
    model,
    sample,
    train,
    train_state,
    train_step,
)
from trainer import images as image_utils
from trainer.errors import TrainerError


def event_tags(log_dir):
    """tag -> TensorBoard plugin ('scalars', 'images', 'text') of every summary written."""
    tags = {}
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                plugin = value.metadata.plugin_data.plugin_name
                tags[value.tag] = plugin or tags.get(value.tag)
    return tags


def generator_weights(checkpoint_dir):
    generator, _ = loaders.load_sampler(checkpoint_dir)
    return generator.get_weights()


def test_end_to_end_on_real_mnist_leaves_checkpoints_events_and_config(tiny_config, mnist_subset):
    result = train.run(replace(tiny_config, train_steps=8), images=mnist_subset)
    assert result["step"] == 8 and result["interrupted"] is None
    assert all(np.isfinite(result[k]) for k in ("d_loss", "g_loss", "d_real", "d_fake"))
    ckpt = tiny_config.checkpoint_dir
    assert tf.train.latest_checkpoint(ckpt).endswith("ckpt-8")
    assert os.path.exists(os.path.join(ckpt, "ckpt-4.index"))  # --checkpoint-freq 4
    assert os.path.exists(os.path.join(ckpt, "config.json"))
    tags = event_tags(tiny_config.log_dir)
    for scalar in (
        "d_loss",
        "g_loss",
        "d_real",
        "d_fake",
        "images_per_sec",
        "pixels/generated_mean",
        "pixels/generated_std",
        "pixels/real_mean",
        "pixels/real_std",
    ):
        assert tags.get(scalar) == "scalars", scalar
    assert tags["histograms/d_real"] == tags["histograms/d_fake"] == "histograms"
    assert tags["generated_images"] == "images" and tags["real_images"] == "images"
    assert tags["config"] == "text"


def test_epoch_ends_write_a_checkpoint_and_a_grid(tiny_config, blob_images):
    # 160 images / 16 = 10 steps an epoch; 25 steps cross two epoch ends.
    config = replace(tiny_config, train_steps=25, checkpoint_freq=1000)
    result = train.run(config, images=blob_images)
    assert result["epoch"] == 2
    steps = sorted(
        int(p.split("-")[-1].split(".")[0])
        for p in glob.glob(os.path.join(config.checkpoint_dir, "ckpt-*.index"))
    )
    assert steps == [10, 20, 25]
    grid_steps = set()
    for path in glob.glob(os.path.join(config.log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            if any(v.tag == "generated_images" for v in event.summary.value):
                grid_steps.add(event.step)
    assert grid_steps == {10, 20, 25}


@slow
def test_resume_is_bit_identical_to_an_uninterrupted_run(tiny_config, blob_images, tmp_path):
    # R1 every 4th step: both kinds of step before and after the resume at step 7.
    config = replace(
        tiny_config, deterministic=True, train_steps=14, checkpoint_freq=100, r1_interval=4
    )
    whole = replace(config, checkpoint_dir=str(tmp_path / "whole"))
    train.run(whole, images=blob_images)
    split = replace(config, checkpoint_dir=str(tmp_path / "split"))
    first = train.run(replace(split, train_steps=7), images=blob_images)
    assert first["step"] == 7  # mid-epoch: 10 steps an epoch
    resumed = train.run(replace(split, continue_train=True), images=blob_images)
    assert resumed["step"] == 14 and resumed["epoch"] == 1
    for a, b in zip(
        generator_weights(whole.checkpoint_dir), generator_weights(split.checkpoint_dir)
    ):
        np.testing.assert_array_equal(a, b)


@slow
def test_resume_logs_the_step_and_epoch(tiny_config, blob_images, caplog):
    train.run(replace(tiny_config, train_steps=13), images=blob_images)
    with caplog.at_level("INFO"):
        train.run(replace(tiny_config, train_steps=15, continue_train=True), images=blob_images)
    assert "resumed from step 13 (epoch 2)" in caplog.text


def test_fresh_run_refuses_to_replace_checkpoints(tiny_config, blob_images):
    train.run(tiny_config, images=blob_images)
    before = sorted(os.listdir(tiny_config.checkpoint_dir))
    with pytest.raises(TrainerError, match="--continue-train True.*--checkpoint-dir.*--overwrite"):
        train.run(tiny_config, images=blob_images)
    assert sorted(os.listdir(tiny_config.checkpoint_dir)) == before


@slow
def test_overwrite_replaces_checkpoints(tiny_config, blob_images):
    train.run(replace(tiny_config, train_steps=8), images=blob_images)
    result = train.run(replace(tiny_config, train_steps=3, overwrite=True), images=blob_images)
    assert result["step"] == 3
    assert not glob.glob(os.path.join(tiny_config.checkpoint_dir, "ckpt-8*"))


def test_continue_without_checkpoint_is_a_clear_error(tiny_config, blob_images):
    with pytest.raises(TrainerError, match="no checkpoint in .* to resume"):
        train.run(replace(tiny_config, continue_train=True), images=blob_images)


def test_continue_with_other_architecture_names_the_field(tiny_config, blob_images):
    train.run(tiny_config, images=blob_images)
    with pytest.raises(TrainerError, match=r"generator_width \(checkpoint 4, flags 6\)"):
        train.run(replace(tiny_config, continue_train=True, generator_width=6), images=blob_images)


def test_nan_loss_stops_with_the_step_and_keeps_the_last_good_checkpoint(
    tiny_config, blob_images, monkeypatch
):
    train.run(replace(tiny_config, train_steps=4), images=blob_images)
    poisoned = tf.Variable(False)
    real_loss = losses.discriminator_loss
    monkeypatch.setattr(
        losses,
        "discriminator_loss",
        lambda *args: real_loss(*args) * tf.where(poisoned, np.float32("nan"), np.float32(1.0)),
    )
    poisoned.assign(True)
    with pytest.raises(TrainerError, match=r"non-finite loss at step 5 .*ckpt-4"):
        train.run(replace(tiny_config, train_steps=8, continue_train=True), images=blob_images)
    assert tf.train.latest_checkpoint(tiny_config.checkpoint_dir).endswith("ckpt-4")
    assert all(np.isfinite(w).all() for w in generator_weights(tiny_config.checkpoint_dir))


def test_unwritable_log_dir_is_named(tiny_config, blob_images, tmp_path):
    blocker = tmp_path / "a-file"
    blocker.write_text("")
    with pytest.raises(TrainerError, match="--log-dir"):
        train.run(replace(tiny_config, log_dir=str(blocker / "logs")), images=blob_images)


def test_weight_average_ramps_up_then_holds_its_decay():
    assert float(train_step.ema_decay_at(0, 0.999)) == pytest.approx(0.1)  # (1 + 0) / (10 + 0)
    assert float(train_step.ema_decay_at(90, 0.999)) == pytest.approx(91 / 100)
    assert float(train_step.ema_decay_at(10**6, 0.999)) == pytest.approx(0.999)


def test_first_step_moves_the_average_nine_tenths_toward_the_new_weights(tiny_config, blob_images):
    state = train_state.build_state(tiny_config)
    before = [w.numpy() for w in state.ema_generator.trainable_variables]
    step = train_step.make_train_step(state, tiny_config)
    step(tf.convert_to_tensor(blob_images[:16, :, :, None] / 127.5 - 1, tf.float32), True)
    for old, new, average in zip(
        before, state.generator.trainable_variables, state.ema_generator.trainable_variables
    ):
        np.testing.assert_allclose(
            average.numpy(), 0.1 * old + 0.9 * new.numpy(), rtol=1e-5, atol=1e-7
        )


@slow
def test_lazy_r1_penalizes_only_when_asked(tiny_config, blob_images):
    real = tf.convert_to_tensor(blob_images[:16, :, :, None] / 127.5 - 1, tf.float32)

    def d_weights_after(regularize, gamma):
        config = replace(tiny_config, r1_gamma=gamma, precision="float32")
        tf.keras.utils.set_random_seed(0)
        state = train_state.build_state(config)
        train_step.make_train_step(state, config)(real, regularize)
        return [w.numpy() for w in state.discriminator.trainable_variables]

    def same(a, b):
        return all(np.array_equal(x, y) for x, y in zip(a, b))

    assert same(d_weights_after(False, 10.0), d_weights_after(False, 0.0))
    assert same(d_weights_after(True, 0.0), d_weights_after(False, 0.0))
    assert not same(d_weights_after(True, 10.0), d_weights_after(False, 10.0))


@slow
def test_mlp_baseline_trains_resumes_and_samples(tiny_config, blob_images):
    config = replace(tiny_config, arch="mlp")
    assert train.run(config, images=blob_images)["step"] == 6
    generator, saved = loaders.load_sampler(config.checkpoint_dir)
    assert saved.arch == "mlp" and generator.name == "mlp_generator"
    assert (
        train.run(replace(config, continue_train=True, train_steps=9), images=blob_images)["step"]
        == 9
    )
    with pytest.raises(TrainerError, match=r"arch \(checkpoint mlp, flags dcgan\)"):
        train.run(
            replace(config, continue_train=True, arch="dcgan", train_steps=12),
            images=blob_images,
        )


@slow
def test_deeper_nets_train_resume_and_load_with_their_depths(tiny_config, blob_images):
    config = replace(tiny_config, generator_depth=1, discriminator_depth=2)
    assert train.run(config, images=blob_images)["step"] == 6
    generator, saved = loaders.load_sampler(config.checkpoint_dir)
    discriminator, _ = loaders.load_discriminator(config.checkpoint_dir)
    assert (saved.generator_depth, saved.discriminator_depth) == (1, 2)
    # One extra 3x3 conv per generator resolution, two per discriminator resolution.
    assert [type(layer).__name__ for layer in generator.layers].count("Conv2D") == 2
    assert [type(layer).__name__ for layer in discriminator.layers].count("Conv2D") == 7
    assert (
        train.run(replace(config, continue_train=True, train_steps=9), images=blob_images)["step"]
        == 9
    )
    with pytest.raises(TrainerError, match=r"discriminator_depth \(checkpoint 2, flags 1\)"):
        train.run(
            replace(config, continue_train=True, discriminator_depth=1, train_steps=12),
            images=blob_images,
        )


def test_pixel_statistics_and_d_outputs_match_the_batch(tiny_config, blob_images):
    state = train_state.build_state(tiny_config)
    real = tf.convert_to_tensor(blob_images[:16, :, :, None] / 127.5 - 1, tf.float32)
    out = train_step.make_train_step(state, tiny_config)(real, False)
    assert float(out["pixels/real_mean"]) == pytest.approx(float(tf.reduce_mean(real)), 1e-5)
    assert float(out["pixels/real_std"]) == pytest.approx(float(tf.math.reduce_std(real)), 1e-5)
    assert -1 <= float(out["pixels/generated_mean"]) <= 1
    for name in ("d_real_probs", "d_fake_probs"):
        probs = out[name].numpy()
        assert probs.shape == (16,) and ((probs > 0) & (probs < 1)).all()
    assert float(out["d_real"]) == pytest.approx(out["d_real_probs"].numpy().mean(), 1e-5)


NETWORKS = ("generator", "discriminator", "ema_generator")


@slow  # XLA compiles both variants of the step: about 15 s
def test_xla_compiled_step_matches_the_plain_step(tiny_config, blob_images, monkeypatch):
    # XLA's random generator draws other numbers than TensorFlow's kernels from the same
    # seed, so both steps read their noise from this variable instead.
    z = tf.Variable(tf.zeros([16, tiny_config.latent_dim]))
    monkeypatch.setattr(latent, "draw_tf", lambda noise, shape, distribution: z.value())
    noises = np.random.default_rng(0).standard_normal((4, 16, tiny_config.latent_dim), np.float32)
    batches = [real for real, _ in itertools.islice(data.epoch_batches(blob_images, 16, 0, 0), 4)]
    config = replace(tiny_config, precision="float32")
    plain = train_state.build_state(config)
    compiled = train_state.build_state(replace(config, xla=True))
    for name in NETWORKS:
        getattr(compiled, name).set_weights(getattr(plain, name).get_weights())
    initial = plain.generator.get_weights()
    losses = {}
    for state, xla in ((plain, False), (compiled, True)):
        step = train_step.make_train_step(state, replace(config, xla=xla))
        attrs = step.get_concrete_function(batches[0], True).function_def.attr
        assert attrs["_XlaMustCompile"].b is xla
        losses[xla] = []
        for index, (batch, noise) in enumerate(zip(batches, noises)):
            z.assign(noise)
            out = step(batch, index % 2 == 0)  # R1 at steps 0 and 2: both variants
            state.step.assign_add(1)
            losses[xla].append([float(out["d_loss"]), float(out["g_loss"])])
    # Measured: losses within 1e-7 and weights within 2e-7 of each other. A skipped
    # generator update or a flipped loss sign moved the losses by 6e-4 or more and the
    # weights by about 1e-2.
    np.testing.assert_allclose(losses[True], losses[False], rtol=1e-5)
    for name in NETWORKS:
        for ours, theirs in zip(
            getattr(compiled, name).get_weights(), getattr(plain, name).get_weights()
        ):
            np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-5)
    moved = max(np.abs(a - b).max() for a, b in zip(plain.generator.get_weights(), initial))
    assert moved > 1e-3  # 4 Adam steps of 1e-3: the comparison is of trained weights


def scalar_steps(log_dir, tag):
    """The steps of every `tag` scalar written to log_dir, in order, repeats kept."""
    events = event_accumulator.EventAccumulator(
        log_dir, size_guidance={event_accumulator.TENSORS: 0}
    )
    events.Reload()
    return [event.step for event in events.Tensors(tag)]


def test_the_last_step_is_logged_off_the_cadence(tiny_config, blob_images, caplog):
    # 10 steps an epoch: the epoch end at step 10 is not logged, the budget's end is.
    config = replace(tiny_config, train_steps=13, log_freq=4)
    with caplog.at_level("INFO"):
        train.run(config, images=blob_images)
    assert scalar_steps(config.log_dir, "d_loss") == [4, 8, 12, 13]
    assert scalar_steps(config.log_dir, "images_per_sec") == [4, 8, 12, 13]
    assert scalar_steps(config.log_dir, "histograms/d_real") == [4, 8, 12, 13]
    assert "step 13/13  d_loss" in caplog.text


def test_a_run_shorter_than_log_freq_logs_its_last_step_once(tiny_config, blob_images):
    config = replace(tiny_config, train_steps=5, log_freq=100)
    train.run(config, images=blob_images)
    assert scalar_steps(config.log_dir, "d_loss") == [5]


@pytest.mark.parametrize(
    "signal_after, stopped, logged",
    [
        (4, 5, [3, 5]),  # mid-epoch: the batch being fetched is trained, then the run stops
        (
            10,
            10,
            [3, 6, 9, 10],
        ),  # after the epoch's last batch, before its end's checkpoint
    ],
)
def test_a_stopped_run_logs_the_step_it_stopped_at(
    tiny_config, blob_images, monkeypatch, signal_after, stopped, logged
):
    real_batches = data.epoch_batches
    fetched = itertools.count()

    def batches(*args, **kwargs):  # SIGTERM while the loop asks for the next batch
        for batch in itertools.chain(real_batches(*args, **kwargs), [None]):
            if next(fetched) == signal_after:
                signal.raise_signal(signal.SIGTERM)
            if batch is None:
                return
            yield batch

    monkeypatch.setattr(data, "epoch_batches", batches)
    config = replace(tiny_config, train_steps=20, log_freq=3)
    result = train.run(config, images=blob_images)
    assert (result["step"], result["interrupted"]) == (stopped, "SIGTERM")
    assert scalar_steps(config.log_dir, "d_loss") == logged


def logged_scalars(log_dir, tag):
    """step -> value of every `tag` scalar written to log_dir."""
    values = {}
    for path in glob.glob(os.path.join(log_dir, "events.out.tfevents.*")):
        for event in tf.compat.v1.train.summary_iterator(path):
            for value in event.summary.value:
                if value.tag == tag:
                    values[event.step] = float(tf.make_ndarray(value.tensor))
    return values


def saved_learning_rates(checkpoint_dir):
    reader = tf.train.load_checkpoint(tf.train.latest_checkpoint(checkpoint_dir))
    return tuple(
        float(reader.get_tensor(f"{net}_optimizer/_learning_rate/.ATTRIBUTES/VARIABLE_VALUE"))
        for net in ("g", "d")
    )


def test_learning_rate_scale_is_constant_then_falls_linearly_to_the_budget():
    assert train.learning_rate_scale(95, 100, 0) == 1.0  # no decay
    assert train.learning_rate_scale(0, 100, 20) == 1.0
    assert train.learning_rate_scale(80, 100, 20) == 1.0  # the decay's first update
    assert train.learning_rate_scale(90, 100, 20) == pytest.approx(0.5)
    assert train.learning_rate_scale(99, 100, 20) == pytest.approx(0.05)  # the last update
    # A budget shorter than the decay: it decays over the whole run, from the full rate.
    assert train.learning_rate_scale(0, 100, 400) == 1.0
    assert train.learning_rate_scale(50, 100, 400) == pytest.approx(0.5)


def test_decay_over_the_last_epoch_is_what_each_update_uses(tiny_config, blob_images):
    # 160 images / 16 = 10 steps an epoch: decay over steps 10..19 of a 20-step budget.
    config = replace(
        tiny_config,
        train_steps=20,
        lr_decay_epochs=1,
        learning_rate=1e-3,
        d_learning_rate=4e-4,
    )
    train.run(config, images=blob_images)
    logged = logged_scalars(config.log_dir, "learning_rate")
    # Logged after update s, which ran at step s - 1: scale min(1, (20 - (s - 1)) / 10).
    assert logged == pytest.approx({s: 1e-3 * min(1.0, (21 - s) / 10) for s in range(2, 21, 2)})
    assert saved_learning_rates(config.checkpoint_dir) == pytest.approx((1e-4, 4e-5))


@slow
def test_resume_uses_the_flags_learning_rates_not_the_checkpoints(tiny_config, blob_images):
    train.run(
        replace(tiny_config, train_steps=4, learning_rate=1e-3, d_learning_rate=1e-3),
        images=blob_images,
    )
    assert saved_learning_rates(tiny_config.checkpoint_dir) == pytest.approx((1e-3, 1e-3))
    train.run(
        replace(
            tiny_config,
            train_steps=8,
            continue_train=True,
            learning_rate=3e-4,
            d_learning_rate=1e-4,
        ),
        images=blob_images,
    )
    assert saved_learning_rates(tiny_config.checkpoint_dir) == pytest.approx((3e-4, 1e-4))
    assert logged_scalars(tiny_config.log_dir, "learning_rate")[8] == pytest.approx(3e-4)


def test_a_finished_run_publishes_its_model_where_model_dir_says(
    tiny_config, blob_images, tmp_path
):
    # Vertex AI's AIP_MODEL_DIR: the final checkpoint, in a folder --sample reads.
    model_dir = str(tmp_path / "model")
    train.run(replace(tiny_config, model_dir=model_dir), images=blob_images)
    assert tf.train.latest_checkpoint(model_dir).endswith("ckpt-6")
    assert len(sample.write_samples(model_dir, str(tmp_path / "samples"), 3, 0)) == 3


def two_classes(count=160):
    """uint8 (count, 28, 28) images and their labels: digit 0 blank, digit 1 a bright
    16x16 square (jittered), alternating."""
    rng = np.random.default_rng(0)
    images, labels = np.zeros((count, 28, 28), np.uint8), np.arange(count) % 2
    for image, label, (dy, dx) in zip(images, labels, rng.integers(0, 4, (count, 2))):
        if label == 1:
            image[6 + dy : 22 + dy, 6 + dx : 22 + dx] = 255
    return images, labels.astype(np.uint8)


def conditional_steps(config, steps):
    """`steps` train steps of `config` (conditional) on two_classes, from the initial
    weights of config.seed: the trained state and the last step's metrics."""
    images, labels = two_classes()
    tf.keras.utils.set_random_seed(config.seed)  # the same initial weights every call
    state = train_state.build_state(config)
    step = train_step.make_train_step(state, config)
    for real, digits in itertools.islice(
        itertools.cycle(data.epoch_batches(images, config.batch_size, 0, 0, labels=labels)),
        steps,
    ):
        metrics = step(real, False, labels=digits)
    return state, metrics


def test_a_conditional_run_learns_which_images_go_with_which_digit(tiny_config):
    # 50 steps: with each image's own label the generator's digit 1 is brighter than
    # its digit 0 (measured 0.14 apart in mean pixel); the same run with the labels
    # shuffled against the images has nothing to learn (measured 0.002). A step that
    # paired images with another batch's labels, or none, would look like the second.
    images, labels = two_classes()
    gaps = []
    for name, given in (
        ("ordered", labels),
        ("shuffled", np.random.default_rng(5).permutation(labels)),
    ):
        config = replace(
            tiny_config,
            checkpoint_dir=str(tiny_config.checkpoint_dir) + name,
            conditional=True,
            train_steps=50,
            ema_decay=0.0,
            generator_width=8,
            discriminator_width=8,
            learning_rate=2e-3,
            d_learning_rate=1e-3,
        )
        train.run(config, images=images, labels=given)
        generator, saved = loaders.load_sampler(config.checkpoint_dir)
        means = [
            np.concatenate(
                list(
                    generation.generate(
                        generator, 64, saved.latent_dim, 0, labels=np.full(64, digit)
                    )
                )
            ).mean()
            / 255
            for digit in (0, 1)
        ]
        gaps.append(means[1] - means[0])
    assert gaps[0] > 0.05 and abs(gaps[1]) < gaps[0] / 3, gaps


def test_the_mode_seeking_term_spreads_one_digits_images_apart(tiny_config):
    # 30 steps with a heavy weight against none: the trained generator's term on fixed
    # noise pairs (1 / the images' spread per unit of noise, one digit) ends lower with
    # the weight (measured 6.74 against 10.87), and it is a metric only where it is on.
    rng = np.random.default_rng(0)
    z, paired_z = (latent.draw(rng, 32, tiny_config.latent_dim, "normal") for _ in "zp")
    ones = np.ones(32, np.int32)
    terms = []
    for weight in (0.0, 5.0):
        state, metrics = conditional_steps(
            replace(tiny_config, conditional=True, ema_decay=0.0, mode_seeking=weight), 30
        )
        assert ("mode_seeking" in metrics) == (weight > 0)
        drawn, paired = (
            state.generator(model.inputs(noise, ones), training=True) for noise in (z, paired_z)
        )
        terms.append(float(tf.reduce_mean(losses.mode_seeking_loss(drawn, paired, z, paired_z))))
    assert terms[1] < 0.8 * terms[0], terms


@pytest.mark.parametrize("conditional", [True, False])
def test_each_pairs_bound_is_its_digits(tiny_config, conditional):
    # Bounds far below any pair's image distance bind every pair, so the term is
    # about mean(d_z) / bound, d_z about 1.128 for normal noise: digit 0's bound of
    # 1e-3 gives about 1,115, digit 1's 1e-2 about 112. An unconditional run has one
    # bound for every pair. A step that ignored the bounds, or took the wrong digit's,
    # would read the uncapped term (tens) or the other digit's.
    config = replace(tiny_config, conditional=conditional, mode_seeking=1.0)
    state = train_state.build_state(config)
    bounds = (
        np.array([1e-3, 1e-2] + [1.0] * 8, np.float32)
        if conditional
        else np.array([1e-3], np.float32)
    )
    step = train_step.make_train_step(state, config, pair_bounds=bounds)
    real = tf.zeros([config.batch_size, 28, 28, 1])
    cases = ((0, 1128 / 1.0113), (1, 112.8 / 1.0011)) if conditional else ((0, 1115),)
    for digit, expected in cases:
        labels = tf.fill([config.batch_size], digit) if conditional else None
        term = float(step(real, False, labels=labels)["mode_seeking"])
        assert 0.7 * expected < term < 1.3 * expected, (digit, term)


def test_the_mismatch_term_teaches_the_discriminator_which_digit_an_image_is(tiny_config):
    # 30 steps with and without it, from the same weights: D's logit on real images
    # with their own digit, less its mean over the 9 wrong digits, measured 1.19 with
    # the term (0.83 to 1.49 over seeds 0-2) and -0.34 without (-0.60 to -0.21). A term
    # that drew the right digit as the "wrong" one, or none, would teach nothing.
    images, labels = two_classes()
    real = tf.constant(image_utils.to_model_range(images[:64]))
    digits = labels[:64].astype(np.int32)
    gaps = []
    for weight in (0.0, 1.0):
        state, metrics = conditional_steps(
            replace(
                tiny_config,
                conditional=True,
                ema_decay=0.0,
                mismatch=weight,
                discriminator_width=8,
                d_learning_rate=2e-3,
            ),
            30,
        )
        assert ("d_mismatch" in metrics) == (weight > 0)

        def logits(given, state=state):
            return state.discriminator(model.inputs(real, given), training=False)[:, 0]

        wrong = np.mean([logits((digits + shift) % 10) for shift in range(1, 10)], axis=0)
        gaps.append(float(np.mean(logits(digits) - wrong)))
    assert gaps[1] > 0.5 and gaps[1] > gaps[0] + 0.5, gaps


def test_a_conditional_run_needs_the_labels_of_its_images(tiny_config, blob_images):
    with pytest.raises(ValueError, match="needs the labels"):
        train.run(replace(tiny_config, conditional=True), images=blob_images)
    state = train_state.build_state(replace(tiny_config, conditional=True))
    step = train_step.make_train_step(state, replace(tiny_config, conditional=True))
    with pytest.raises(ValueError, match="needs the batch's labels"):
        step(tf.zeros([16, 28, 28, 1]), False)


def test_a_conditional_run_resumes_exactly_and_grids_a_row_per_digit(tiny_config, tmp_path):
    images, labels = two_classes()
    # deterministic: bit-identical weights are what --deterministic promises; without it
    # oneDNN's op order can vary under load and move them by about 1e-5.
    config = replace(
        tiny_config,
        conditional=True,
        projection=True,
        train_steps=10,
        deterministic=True,
        r1_interval=4,
    )  # both kinds of step on each side
    whole = replace(config, checkpoint_dir=str(tmp_path / "whole"))
    train.run(whole, images=images, labels=labels)
    train.run(replace(config, train_steps=4), images=images, labels=labels)
    resumed = train.run(replace(config, continue_train=True), images=images, labels=labels)
    assert resumed["step"] == 10
    for mine, theirs in zip(
        generator_weights(config.checkpoint_dir), generator_weights(whole.checkpoint_dir)
    ):
        np.testing.assert_array_equal(mine, theirs)
    z, digits, columns = train.fixed_inputs(config)
    assert columns == 10 and len(z) == 100
    np.testing.assert_array_equal(digits, np.repeat(np.arange(10), 10))  # row d: digit d
    np.testing.assert_array_equal(z[:10], z[90:])  # column j: the same noise
    grid = glob.glob(os.path.join(config.log_dir, "grids", "*.png"))[-1]
    from PIL import Image

    assert Image.open(grid).size == (10 * 30 + 2, 10 * 30 + 2)


def test_bad_data_is_refused_before_anything_is_written(tmp_path, monkeypatch):
    def corrupt(*args):
        raise TrainerError("corrupt data")

    monkeypatch.setattr(data, "load", corrupt)
    config = helpers.tiny_config(tmp_path / "run")
    with pytest.raises(TrainerError, match="corrupt data"):
        train.run(config)
    assert not (tmp_path / "run").exists()  # no log, checkpoint or lock folder
