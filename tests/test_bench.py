import json
import os
import sys

import numpy as np
import pytest
from helpers import MNIST_DIR, REPO, needs_mnist, slow

from trainer import data, train_step
from trainer.hardware import Hardware
from trainer.tools import bench, child, flops, time_to_quality
from trainer.train_config import TrainConfig


class FakeClock:
    """time.perf_counter advancing `tick` seconds at each reading."""

    def __init__(self, tick):
        self.now, self.tick = 0.0, tick

    def __call__(self):
        self.now += self.tick
        return self.now


def test_train_throughput_times_whole_r1_cycles_of_the_real_step(monkeypatch, blob_images):
    config = TrainConfig(generator_width=4, discriminator_width=4, batch_size=8, r1_interval=2)
    calls = []
    real_factory = train_step.make_train_step

    def counting_factory(state, config, pair_bounds=None):
        step = real_factory(state, config, pair_bounds=pair_bounds)

        def counted(batch, regularize, labels=None):
            calls.append((int(batch.shape[0]), bool(regularize)))
            return step(batch, regularize, labels=labels)

        return counted

    monkeypatch.setattr(train_step, "make_train_step", counting_factory)
    timed = bench.throughput_timer(config, blob_images, cycles=3)
    warm_up = len(calls)
    monkeypatch.setattr(bench.time, "perf_counter", FakeClock(0.5))
    rate = timed()
    # 3 cycles of 2 steps of 8 images between two clock readings 0.5 s apart.
    assert rate == pytest.approx(3 * 2 * 8 / 0.5)
    assert calls[warm_up:] == [(8, True), (8, False)] * 3  # R1 on each cycle's first step
    assert (8, True) in calls[:warm_up] and (8, False) in calls[:warm_up]  # both compiled


def test_a_conditional_configs_timer_trains_on_the_images_digits(monkeypatch, blob_images):
    config = TrainConfig(
        generator_width=4,
        discriminator_width=4,
        batch_size=8,
        r1_interval=2,
        conditional=True,
        mode_seeking=1.0,
        mode_seeking_bound="real",
    )
    digits, bounds = [], []
    real_factory = train_step.make_train_step

    def recording_factory(state, config, pair_bounds=None):
        bounds.append(pair_bounds)
        step = real_factory(state, config, pair_bounds=pair_bounds)

        def recorded(batch, regularize, labels=None):
            digits.append(labels.numpy())
            return step(batch, regularize, labels=labels)

        return recorded

    monkeypatch.setattr(train_step, "make_train_step", recording_factory)
    labels = (np.arange(len(blob_images)) % 10).astype(np.uint8)
    assert bench.throughput_timer(config, blob_images, 1, labels)() > 0
    order = np.random.default_rng([config.seed, 0]).permutation(len(blob_images))
    np.testing.assert_array_equal(digits[0], labels[order[:8]])  # the batch's own digits
    # The step timed is the run's: capped by the digits' real pair distances.
    np.testing.assert_array_equal(
        bounds[0], data.pair_distances(blob_images, labels, seed=config.seed)
    )


def test_matmul_peak_is_the_matmuls_flops_over_their_time(monkeypatch):
    # Each timing reads the clock twice around 4 matmuls of 256 x 256: 0.25 s apart.
    monkeypatch.setattr(flops.time, "perf_counter", FakeClock(0.25))
    assert flops.matmul_peak_gflops(size=256, seconds=1.0) == pytest.approx(
        4 * 2 * 256**3 / 0.25 / 1e9
    )


@slow  # a training child and a sampling child
@needs_mnist
def test_benchmark_prints_a_table_and_every_figure_as_json(capsys, monkeypatch, tmp_path):
    monkeypatch.chdir(REPO)
    monkeypatch.setattr(bench, "SAMPLE_COUNT", 200)
    monkeypatch.setattr(flops, "MATMUL_SIZE", 512)
    monkeypatch.setattr(flops, "PEAK_SECONDS", 0.3)
    # The in-process throughput timing on small nets: this test checks how the figures
    # are measured and reported, not the default network's speed.
    resolved = bench.resolved
    monkeypatch.setattr(
        bench,
        "resolved",
        lambda machine, **changes: resolved(
            machine,
            generator_width=8,
            discriminator_width=8,
            generator_depth=0,
            discriminator_depth=0,
            **changes,
        ),
    )
    # The training child too: its peak memory is measured and reported the same way.
    small = [
        "--generator-width",
        "8",
        "--discriminator-width",
        "8",
        "--generator-depth",
        "0",
        "--discriminator-depth",
        "0",
        "--eval-samples",
        "0",
    ]
    run_child = bench.run_child
    monkeypatch.setattr(
        bench,
        "run_child",
        lambda args, **kwargs: run_child(
            args + small if "--train-steps" in args else args, **kwargs
        ),
    )
    assert (
        bench.main(
            [
                "--data-dir",
                str(MNIST_DIR),
                "--train-steps",
                "5",
                "--cycles",
                "1",
                "--repeats",
                "1",
            ]
        )
        == 0
    )
    table, line = capsys.readouterr().out.strip().rsplit("\n", 1)
    figures = json.loads(line)
    for key in (
        "train_images_per_sec",
        "flops_per_image",
        "achieved_gflops",
        "peak_gflops",
        "peak_fraction",
        "sample_images_per_sec",
        "sample16_seconds",
        "train_peak_rss_mb",
    ):
        assert figures[key] > 0, key
    assert figures["peak_fraction"] == pytest.approx(
        figures["achieved_gflops"] / figures["peak_gflops"]
    )
    assert figures["achieved_gflops"] == pytest.approx(
        figures["train_images_per_sec"] * figures["flops_per_image"] / 1e9
    )
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
        capsys.readouterr().err
    )


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
    rows = [
        {"minutes": 1.0, "over_floor": 40.0},
        {"minutes": 2.0, "over_floor": 25.0},
        {"minutes": 3.0, "over_floor": 31.0},
        {"minutes": 4.0, "over_floor": 9.0},
    ]
    assert time_to_quality.minutes_below(rows, 30) == 2.0
    assert time_to_quality.minutes_below(rows, 10) == 4.0
    assert time_to_quality.minutes_below(rows, 5) is None


@slow
@needs_mnist
def test_time_to_quality_reads_the_runs_own_probe_and_keeps_the_run(tmp_path, monkeypatch):
    # The final judgement on 2,000 samples instead of 10,000: the same code, a quarter of
    # the suite's time for it.
    monkeypatch.setattr(time_to_quality.evaluate, "FLOOR_IMAGES", 2000)
    # Tiny, shallow nets and large batches: epochs of 60 steps. Two epochs end the run
    # by its step budget; the time budget is only a cap, so a loaded machine takes
    # longer but measures the same epochs (the SIGINT at the time budget is
    # test_a_child_past_its_time_budget_is_stopped_with_sigint's).
    tiny = [
        "--batch-size",
        "1000",
        "--generator-width",
        "4",
        "--discriminator-width",
        "4",
        "--generator-depth",
        "0",
        "--discriminator-depth",
        "0",
        "--eval-samples",
        "200",
        "--log-freq",
        "1000",
        "--train-steps",
        "120",
    ]
    results = time_to_quality.measure(str(MNIST_DIR), 30.0, str(tmp_path), extra_flags=tiny)
    rows = results["epochs"]
    assert [row["step"] for row in rows] == [60, 120]  # each epoch end's probe
    assert rows[0]["minutes"] < rows[1]["minutes"]
    for row in rows:
        assert row["over_floor"] == pytest.approx(row["frechet_distance"] / results["floor"])
    assert 0 < results["floor"] < 5 and results["final_frechet_distance_10k"] > 0
    assert os.path.exists(tmp_path / "ckpt" / "checkpoint")  # stopped, saved, resumable
    assert "below 30x the floor" in time_to_quality.format_table(results)


def test_a_child_past_its_time_budget_is_stopped_with_sigint(tmp_path, monkeypatch):
    # A stand-in for the trainer: it exits 130 on SIGINT, as the trainer does once saved
    # (3 s lets it install its handler before the signal even on a loaded machine).
    marker = tmp_path / "interrupted"
    script = (
        "import signal, sys, time\n"
        "def stop(*_):\n"
        f"    open({str(marker)!r}, 'w').close()\n"
        "    sys.exit(130)\n"
        "signal.signal(signal.SIGINT, stop)\n"
        "time.sleep(600)\n"
    )
    popen = child.subprocess.Popen
    monkeypatch.setattr(
        child.subprocess,
        "Popen",
        lambda args, **kwargs: popen([sys.executable, "-c", script], **kwargs),
    )
    result = child.run_child(["--data-dir", "x"], timeout=3.0)
    assert marker.exists()  # stopped by SIGINT, not by its own end 600 s later
    assert result["seconds"] >= 3.0 and result["peak_rss_mb"] > 0


def test_variants_keep_each_options_best_timing_against_the_defaults(monkeypatch, blob_images):
    small = {"generator_width": 4, "discriminator_width": 4, "batch_size": 8}
    monkeypatch.setattr(
        bench, "VARIANTS", [("defaults", small), ("batch 16", {**small, "batch_size": 16})]
    )
    monkeypatch.setattr(data, "load_mnist", lambda *args: (blob_images, None))
    timings = {8: iter([100.0, 300.0, 200.0]), 16: iter([50.0, 60.0, 450.0])}
    monkeypatch.setattr(
        bench,
        "throughput_timer",
        lambda config, images, cycles, labels: lambda: next(timings[config.batch_size]),
    )
    rows = bench.variants(None, Hardware(cpu_flags=frozenset({"avx2"})), repeats=3)
    assert [r["variant"] for r in rows] == ["defaults", "batch 16"]
    assert [r["train_images_per_sec"] for r in rows] == [300.0, 450.0]  # best of 3
    assert [r["vs_defaults"] for r in rows] == [1.0, 1.5]
    assert rows[1]["achieved_gflops"] == pytest.approx(
        450.0
        * flops.train_flops_per_image(
            bench.resolved(Hardware(cpu_flags=frozenset({"avx2"})), **small)
        )["train"]
        / 1e9
    )
    assert "x defaults" in bench.format_variants(rows)


def test_where_bfloat16_kernels_fail_no_bfloat16_figure_is_measured(monkeypatch, blob_images):
    capped = Hardware(cpu_flags=frozenset({"avx2", "amx_bf16"}), isa_cap="AVX2")
    monkeypatch.setattr(bench, "matmul_peak_gflops", lambda dtype: 7.0)
    assert bench.bfloat16_peak_gflops(capped) is None
    assert bench.bfloat16_peak_gflops(Hardware(cpu_flags=frozenset({"amx_bf16"}))) == 7.0
    assert bench._shown("{:.1f}", None) == "n/a" and bench._shown("{:.1f}", 7) == "7.0"
    monkeypatch.setattr(bench, "VARIANTS", [("defaults", {}), ("bf16", {"precision": "bfloat16"})])
    monkeypatch.setattr(data, "load_mnist", lambda *args: (blob_images, None))
    monkeypatch.setattr(
        bench, "throughput_timer", lambda config, images, cycles, labels: lambda: 10.0
    )
    assert [row["variant"] for row in bench.variants(None, capped, repeats=1)] == ["defaults"]


@pytest.mark.parametrize(
    "cpu_flags, precision",
    [
        (frozenset({"avx2", "fma", "sse4_2"}), "float32"),
        (frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}), "bfloat16"),
    ],
)
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


def test_sizes_time_each_image_size_at_its_default_networks(monkeypatch):
    shapes = {}

    def timer(config, images, cycles):
        shapes[(config.image.shape, config.generator_width, config.generator_depth)] = images.shape
        rate = 1000.0 / config.image.height  # a stand-in: larger images train slower
        return lambda: rate

    monkeypatch.setattr(bench, "throughput_timer", timer)
    rows = bench.sizes(Hardware(cpu_flags=frozenset({"avx2"})), repeats=2)
    assert [r["size"] for r in rows] == [label for label, *_ in bench.SIZES]
    # MNIST's networks at 28x28; a folder's own defaults at 32 and 64, colour or grey,
    # each timed on images of its shape.
    assert shapes == {
        ((28, 28, 1), 96, 1): (bench.SIZE_IMAGES, 28, 28),
        ((32, 32, 1), 64, 1): (bench.SIZE_IMAGES, 32, 32),
        ((32, 32, 3), 64, 1): (bench.SIZE_IMAGES, 32, 32, 3),
        ((64, 64, 1), 64, 0): (bench.SIZE_IMAGES, 64, 64),
        ((64, 64, 3), 64, 0): (bench.SIZE_IMAGES, 64, 64, 3),
    }
    assert rows[4]["minutes_per_10k_images"] == pytest.approx(10_000 / (1000 / 64) / 60)
    assert rows[0]["flops_per_image"] < rows[4]["flops_per_image"]
    assert rows[0]["precision"] == "float32"  # AVX2 alone: no bfloat16
    table = bench.format_sizes(rows).splitlines()
    assert table[5].split()[:2] == ["64x64", "colour"] and len(table) == 6
