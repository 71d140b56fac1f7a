import json
import os

import pytest
import tensorflow as tf
from tensorflow.python.framework.convert_to_constants import (
    convert_variables_to_constants_v2)

from conftest import MNIST_DIR, REPO, needs_mnist, slow
from trainer import bench, data, model, time_to_quality
from trainer.hardware import Hardware
from trainer.train_config import TrainConfig


def profiler_flops(net, input_shape) -> int:
    """TensorFlow's own count of a forward pass's floating-point operations."""
    forward = tf.function(lambda x: net(x, training=False)).get_concrete_function(
        tf.TensorSpec(input_shape))
    options = tf.compat.v1.profiler.ProfileOptionBuilder.float_operation()
    options["output"] = "none"
    return tf.compat.v1.profiler.profile(
        graph=convert_variables_to_constants_v2(forward).graph,
        options=options).total_float_ops


def test_conv_flops_agree_with_tensorflows_profiler():
    # The profiler also counts bias adds, batch norm and activations, which layer_flops
    # leaves out: a fraction of a percent here.
    net = model.build_discriminator(64)
    assert bench.layer_flops(net) == pytest.approx(profiler_flops(net, [1, 28, 28, 1]),
                                                   rel=0.01)


def test_transposed_conv_flops_count_each_input_pixels_patch():
    # 2 x (1*1*100 * 7*7*128  +  7*7*128 * 4*4*64  +  14*14*64 * 4*4*1): the adjoint
    # convolutions' counts (the profiler counts zeros of the dilated input instead).
    assert bench.layer_flops(model.build_generator(100, 64)) == 2 * (
        100 * 49 * 128 + 49 * 128 * 16 * 64 + 196 * 64 * 16)


def test_training_flops_are_three_forward_passes_plus_the_extra_d_passes():
    config = TrainConfig(generator_width=8, discriminator_width=8, r1_interval=4)
    flops = bench.train_flops_per_image(config)
    g, d = flops["generator_forward"], flops["discriminator_forward"]
    assert flops["train"] == int(3 * g + 7 * d + d)  # R1: 4 F_D every 4 steps
    no_r1 = bench.train_flops_per_image(TrainConfig(generator_width=8,
                                                    discriminator_width=8, r1_gamma=0.0))
    assert no_r1["train"] == 3 * g + 7 * d


def test_matmul_peak_is_positive_and_finite():
    assert 0 < bench.matmul_peak_gflops(size=256, seconds=0.2) < 1e6


def test_train_throughput_runs_the_real_step(blob_images):
    config = TrainConfig(generator_width=4, discriminator_width=4, batch_size=8,
                         r1_interval=2)
    assert bench.train_images_per_sec(config, blob_images, cycles=2, repeats=1) > 0


@slow  # trains the default-size network
@needs_mnist
def test_benchmark_prints_a_table_and_every_figure_as_json(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(bench, "SAMPLE_COUNT", 200)
    monkeypatch.setattr(bench, "MATMUL_SIZE", 512)
    monkeypatch.setattr(bench, "PEAK_SECONDS", 0.3)
    assert bench.main(["--data-dir", str(MNIST_DIR), "--train-steps", "5", "--cycles", "1",
                       "--repeats", "1"]) == 0
    table, line = capsys.readouterr().out.strip().rsplit("\n", 1)
    figures = json.loads(line)
    for key in ("train_images_per_sec", "flops_per_image", "achieved_gflops", "peak_gflops",
                "peak_fraction", "sample_images_per_sec", "sample16_seconds",
                "train_peak_rss_mb"):
        assert figures[key] > 0, key
    assert figures["peak_fraction"] == pytest.approx(
        figures["achieved_gflops"] / figures["peak_gflops"])
    assert figures["achieved_gflops"] == pytest.approx(
        figures["train_images_per_sec"] * figures["flops_per_image"] / 1e9)
    assert 100 < figures["train_peak_rss_mb"] < 24_000  # a real process's megabytes
    assert "training images/s" in table
    assert "--precision auto: " + figures["auto_precision"] in table
    assert figures["precision"] == figures["auto_precision"]  # the defaults, resolved


@pytest.mark.parametrize("flag", ["--cycles", "--repeats", "--train-steps"])
def test_bench_counts_must_be_at_least_one(flag, capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main([flag, "0"])
    assert exit_info.value.code == 2
    assert f"{flag} must be at least 1, got 0" in capsys.readouterr().err


def test_time_to_quality_rejects_a_non_positive_budget(capsys):
    with pytest.raises(SystemExit) as exit_info:
        bench.main(["--time-to-quality", "0"])
    assert exit_info.value.code == 2
    assert "--time-to-quality must be a positive number of minutes, got 0" in (
        capsys.readouterr().err)


def test_quality_events_are_read_back_with_their_times(tmp_path):
    from trainer.summaries import Summaries
    summaries = Summaries(str(tmp_path))
    for step, value in ((468, 40.0), (936, 12.5)):
        summaries.scalars(step, {"eval/frechet_distance": value, "d_loss": 1.0})
    summaries.close()
    events = time_to_quality.scalar_events(str(tmp_path), "eval/frechet_distance")
    assert [(step, value) for _, step, value in events] == [(468, 40.0), (936, 12.5)]
    assert events[0][0] <= events[1][0]  # wall times, in order
    assert time_to_quality.scalar_events(str(tmp_path), "no/such/tag") == []


def test_crossing_minutes_are_the_first_below_each_ratio():
    rows = [{"minutes": 1.0, "over_floor": 40.0}, {"minutes": 2.0, "over_floor": 25.0},
            {"minutes": 3.0, "over_floor": 31.0}, {"minutes": 4.0, "over_floor": 9.0}]
    assert time_to_quality.minutes_below(rows, 30) == 2.0
    assert time_to_quality.minutes_below(rows, 10) == 4.0
    assert time_to_quality.minutes_below(rows, 5) is None


@slow
@needs_mnist
def test_time_to_quality_reads_the_runs_own_probe_and_keeps_the_run(tmp_path):
    # Tiny, shallow nets and large batches: epochs of 60 steps end within the budget
    # even on a loaded 2-core AVX2 machine (half a minute and 120 steps were too few).
    tiny = ["--batch-size", "1000", "--generator-width", "4", "--discriminator-width", "4",
            "--generator-depth", "0", "--discriminator-depth", "0", "--eval-samples", "200",
            "--log-freq", "1000"]
    results = time_to_quality.measure(str(MNIST_DIR), 1.0, str(tmp_path), extra_flags=tiny)
    rows = results["epochs"]
    assert rows, "no epoch ended within the budget"
    steps = [row["step"] for row in rows]  # each epoch end (60 steps), then the stop
    assert steps[0] == 60 and all(a < b for a, b in zip(steps, steps[1:]))
    assert all(step % 60 == 0 for step in steps[:-1])
    assert all(a["minutes"] < b["minutes"] for a, b in zip(rows, rows[1:]))
    for row in rows:
        assert row["over_floor"] == pytest.approx(row["frechet_distance"] / results["floor"])
    assert 0 < results["floor"] < 5 and results["final_frechet_distance_10k"] > 0
    assert os.path.exists(tmp_path / "ckpt" / "checkpoint")  # stopped, saved, resumable
    assert "below 30x the floor" in time_to_quality.format_table(results)


def test_variants_measure_each_option_against_the_defaults(monkeypatch, blob_images):
    monkeypatch.setattr(bench, "VARIANTS", [
        ("defaults", {"generator_width": 4, "discriminator_width": 4, "batch_size": 8}),
        ("float32", {"generator_width": 4, "discriminator_width": 4, "batch_size": 8,
                     "precision": "float32"})])
    monkeypatch.setattr(data, "load_mnist", lambda *args: (blob_images, None))
    rows = bench.variants(None, Hardware(cpu_flags=frozenset({"avx2"})), cycles=1)
    assert [r["variant"] for r in rows] == ["defaults", "float32"]
    assert rows[0]["vs_defaults"] == 1.0 and rows[1]["vs_defaults"] > 0
    assert "x defaults" in bench.format_variants(rows)


@pytest.mark.parametrize("cpu_flags, precision", [
    (frozenset({"avx2", "fma", "sse4_2"}), "float32"),
    (frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}), "bfloat16")])
def test_figures_name_their_hardware_and_the_precision_auto_chose(cpu_flags, precision):
    machine = Hardware(cpu_name="Some CPU", cpu_flags=cpu_flags, isa_cap="AVX2")
    described = bench.describe(Hardware(cpu_name="Some CPU", cpu_flags=cpu_flags))
    assert described["cpu"] == "Some CPU" and described["auto_precision"] == precision
    assert described["cpu_flags"] == [f for f in bench.FLAGS_SHOWN if f in cpu_flags]
    assert bench.resolved(Hardware(cpu_flags=cpu_flags)).compute_precision == precision
    # Capped at AVX2, the same CPU trains in float32, and the header says why.
    header = bench.format_machine({**bench.describe(machine), "cores": 2})
    assert header.startswith("Some CPU, 2 cores, flags: avx2")
    assert "ONEDNN_MAX_CPU_ISA=AVX2" in header
    assert "--precision auto: float32" in header.splitlines()[1]


def test_variants_resolve_an_explicit_precision_as_asked():
    machine = Hardware(cpu_flags=frozenset({"avx2"}))
    assert bench.resolved(machine, precision="bfloat16").compute_precision == "bfloat16"
    assert bench.resolved(machine).compute_precision == "float32"
