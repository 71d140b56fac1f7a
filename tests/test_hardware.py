"""--precision auto: the choice on faked hardware, both ways; no test depends on this
machine's kind."""

import json
import logging

import pytest
from helpers import TINY_FLAGS, needs_bfloat16_kernels, slow

from trainer import hardware, task
from trainer.errors import TrainerError
from trainer.hardware import Hardware, choose_precision

AMX = frozenset({"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"})
AVX512_BF16 = frozenset({"avx2", "avx512f", "avx512_bf16"})
AVX2 = frozenset({"avx2", "fma"})
AVX512 = frozenset({"avx2", "avx512f", "avx512bw"})
TINY = [*TINY_FLAGS, "--generator-depth", "0", "--discriminator-depth", "0"]


@pytest.mark.parametrize("cpu_flags", [AMX, AVX512_BF16])
def test_auto_picks_bfloat16_where_the_cpu_computes_it(cpu_flags):
    precision, reason, native = choose_precision("auto", Hardware(cpu_flags=cpu_flags))
    assert (precision, native) == ("bfloat16", True)
    assert "natively" in reason and "bf16" in reason


@pytest.mark.parametrize("cpu_flags", [AVX2, AVX512, frozenset()])
def test_auto_picks_float32_on_a_cpu_without_bfloat16_instructions(cpu_flags):
    precision, reason, native = choose_precision("auto", Hardware(cpu_flags=cpu_flags))
    assert (precision, native) == ("float32", False)
    assert reason == "this CPU has no bfloat16 instructions (avx512_bf16 or amx_bf16)"


@pytest.mark.parametrize("cap", ["AVX2", "avx2", "SSE41", "AVX512_CORE", "AVX512_CORE_VNNI"])
def test_an_isa_cap_below_bfloat16_counts_as_not_having_it(cap):
    precision, reason, _ = choose_precision("auto", Hardware(cpu_flags=AMX, isa_cap=cap))
    assert precision == "float32"
    assert f"ONEDNN_MAX_CPU_ISA={cap} caps oneDNN below" in reason


@pytest.mark.parametrize("cap", ["AVX512_CORE_BF16", "AVX512_CORE_AMX", "ALL"])
def test_an_isa_cap_at_or_above_bfloat16_keeps_it(cap):
    assert choose_precision("auto", Hardware(cpu_flags=AMX, isa_cap=cap))[0] == "bfloat16"


@pytest.mark.parametrize(
    "capabilities, expected",
    [
        (((8, 0),), "bfloat16"),
        (((9, 0), (8, 6)), "bfloat16"),
        (((7, 5),), "float32"),
        (((8, 0), (7, 0)), "float32"),
    ],
)
def test_a_gpu_decides_by_its_compute_capability_whatever_the_cpu(capabilities, expected):
    # The oldest GPU decides: a replica on it would run the slow kernels.
    for cpu_flags in (AVX2, AMX):
        found = choose_precision(
            "auto", Hardware(cpu_flags=cpu_flags, gpu_capabilities=capabilities)
        )
        assert found[0] == expected


@pytest.mark.parametrize("asked", ["float32", "bfloat16"])
@pytest.mark.parametrize("cpu_flags", [AVX2, AMX])
def test_an_explicit_precision_is_kept_on_any_hardware(asked, cpu_flags):
    assert choose_precision(asked, Hardware(cpu_flags=cpu_flags))[0] == asked


def test_explicit_bfloat16_without_the_instructions_runs_with_a_warning(caplog):
    with caplog.at_level(logging.INFO):
        assert hardware.log_choice("bfloat16", Hardware(cpu_flags=AVX2)) == "bfloat16"
    (record,) = caplog.records
    assert record.levelno == logging.WARNING
    assert "many times slower than with --precision float32" in record.getMessage()


@pytest.mark.parametrize(
    "cpu_flags, cap, fails",
    [
        (AMX, "AVX2", True),
        (AVX512_BF16, "avx512_core", True),
        (AMX, None, False),
        (AMX, "AVX512_CORE_AMX", False),
        (AVX2, "AVX2", False),
    ],
)
def test_bfloat16_kernels_fail_only_under_a_cap_below_the_cpus_own(cpu_flags, cap, fails):
    assert hardware.bfloat16_kernels_fail(Hardware(cpu_flags=cpu_flags, isa_cap=cap)) is fails


def test_explicit_bfloat16_where_its_kernels_fail_is_one_clear_error():
    with pytest.raises(
        TrainerError,
        match="ONEDNN_MAX_CPU_ISA=AVX2 caps oneDNN below .*pass --precision float32 or unset",
    ):
        hardware.log_choice("bfloat16", Hardware(cpu_flags=AMX, isa_cap="AVX2"))
    assert hardware.log_choice("auto", Hardware(cpu_flags=AMX, isa_cap="AVX2")) == "float32"


def test_the_choice_is_one_info_line_naming_the_reason(caplog):
    with caplog.at_level(logging.INFO):
        assert hardware.log_choice("auto", Hardware(cpu_flags=AVX2)) == "float32"
    assert [r.getMessage() for r in caplog.records] == [
        "precision float32: this CPU has no bfloat16 instructions (avx512_bf16 or amx_bf16)"
    ]
    assert caplog.records[0].levelno == logging.INFO


def test_cpuinfo_gives_the_first_processors_name_and_flags():
    text = (
        "processor\t: 0\nmodel name\t: AMD EPYC 7B13\nflags\t\t: fpu AVX2 fma\n\n"
        "processor\t: 1\nmodel name\t: other\nflags\t\t: amx_bf16\n"
    )
    assert hardware.parse_cpuinfo(text) == (
        "AMD EPYC 7B13",
        frozenset({"fpu", "avx2", "fma"}),
    )
    assert hardware.parse_cpuinfo("") == ("unknown CPU", frozenset())


def test_detect_reads_the_cap_from_the_environment_it_is_given(tmp_path):
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text("model name\t: Xeon\nflags\t\t: avx2 amx_bf16\n")
    found = hardware.detect({"ONEDNN_MAX_CPU_ISA": "AVX2"}, str(cpuinfo))
    assert (found.cpu_name, found.isa_cap) == ("Xeon", "AVX2")
    assert "amx_bf16" in found.cpu_flags
    assert hardware.detect({}, str(tmp_path / "missing")).cpu_flags == frozenset()


@pytest.mark.parametrize(
    "cpu_flags, resolved",
    [(AVX2, "float32"), pytest.param(AMX, "bfloat16", marks=needs_bfloat16_kernels)],
)
def test_config_json_keeps_what_was_asked_and_what_was_resolved(
    cpu_flags, resolved, tmp_path, idx_dir, monkeypatch
):
    monkeypatch.setattr(hardware, "detect", lambda environ: Hardware(cpu_flags=cpu_flags))
    argv = [
        "--data-dir",
        idx_dir,
        "--train-steps",
        "2",
        "--checkpoint-dir",
        str(tmp_path / "ckpt"),
        "--log-dir",
        str(tmp_path / "logs"),
        *TINY,
    ]
    assert task.main(argv) == 0
    saved = json.loads((tmp_path / "ckpt" / "config.json").read_text())
    assert (saved["training"]["precision"], saved["training"]["resolved_precision"]) == (
        "auto",
        resolved,
    )


@slow
@needs_bfloat16_kernels
def test_a_resume_resolves_precision_again_on_the_machine_it_runs_on(
    tmp_path, idx_dir, monkeypatch
):
    # Not locked: float32 and bfloat16 networks load each other's float32 weights.
    folder = tmp_path / "ckpt"
    monkeypatch.setattr(hardware, "detect", lambda environ: Hardware(cpu_flags=AMX))
    assert (
        task.main(
            [
                "--data-dir",
                idx_dir,
                "--train-steps",
                "2",
                "--checkpoint-dir",
                str(folder),
                "--log-dir",
                str(tmp_path / "logs"),
                *TINY,
            ]
        )
        == 0
    )
    monkeypatch.setattr(hardware, "detect", lambda environ: Hardware(cpu_flags=AVX2))
    assert (
        task.main(
            [
                "--continue-train",
                "True",
                "--train-steps",
                "3",
                "--data-dir",
                idx_dir,
                "--checkpoint-dir",
                str(folder),
                "--log-dir",
                str(tmp_path / "logs"),
            ]
        )
        == 0
    )
    saved = json.loads((folder / "config.json").read_text())["training"]
    assert (saved["precision"], saved["resolved_precision"]) == ("auto", "float32")
