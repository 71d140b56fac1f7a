"""What this machine computes fast: the precision `--precision auto` resolves to.

bfloat16 pays only where the hardware computes it natively: on x86 CPUs with
AVX512-BF16 or AMX, and on GPUs of compute capability 8.0 or newer. Elsewhere TensorFlow
falls back to kernels many times slower than float32 (on a 2-core AVX2-only CPU the
backward convolutions ran 12 to 17 times slower, a whole training step about 10 times).

`choose_precision` is pure, so tests fake the hardware both ways; `detect` reads it.
"""

import dataclasses
import logging
from typing import Optional

import tensorflow as tf

from trainer.errors import TrainerError

# /proc/cpuinfo flags of the x86 instructions oneDNN computes bfloat16 with.
BFLOAT16_CPU_FLAGS = ("avx512_bf16", "amx_bf16")
# ONEDNN_MAX_CPU_ISA values (oneDNN's CPU dispatcher control) that stop oneDNN below
# those instructions; any other known value leaves them usable.
ISA_CAPS_WITHOUT_BFLOAT16 = (
    "SSE41",
    "AVX",
    "AVX2",
    "AVX2_VNNI",
    "AVX2_VNNI_2",
    "AVX512_CORE",
    "AVX512_CORE_VNNI",
)
GPU_BFLOAT16_CAPABILITY = (8, 0)  # Ampere: the first GPUs with bfloat16 tensor cores.


@dataclasses.dataclass(frozen=True)
class Hardware:
    """What the precision choice depends on."""

    cpu_name: str = "unknown CPU"
    cpu_flags: frozenset = frozenset()  # /proc/cpuinfo "flags", lower case
    isa_cap: Optional[str] = None  # ONEDNN_MAX_CPU_ISA, if set
    gpu_capabilities: tuple[tuple[int, int], ...] = ()  # (major, minor) per visible GPU


def choose_precision(asked: str, hardware: Hardware) -> tuple[str, str, bool]:
    """Resolves `asked` ("auto", "float32" or "bfloat16") on `hardware`.

    Returns:
      (precision, reason, native): the precision the networks compute in, a phrase that
      says why, and whether the hardware computes bfloat16 natively.
    """
    native, why = bfloat16_support(hardware)
    if asked == "auto":
        return ("bfloat16" if native else "float32"), why, native
    return asked, f"asked for with --precision ({why})", native


def bfloat16_support(hardware: Hardware) -> tuple[bool, str]:
    """(whether bfloat16 is native here, the reason in words)."""
    if hardware.gpu_capabilities:  # the networks run on the GPU: its capability decides
        oldest = min(hardware.gpu_capabilities)
        name = f"GPU compute capability {oldest[0]}.{oldest[1]}"
        if oldest >= GPU_BFLOAT16_CAPABILITY:
            return True, f"{name} computes bfloat16 natively"
        return False, f"{name} has no bfloat16 tensor cores (8.0 or newer has)"
    found = [flag for flag in BFLOAT16_CPU_FLAGS if flag in hardware.cpu_flags]
    if not found:
        return False, "this CPU has no bfloat16 instructions (avx512_bf16 or amx_bf16)"
    if hardware.isa_cap and hardware.isa_cap.upper() in ISA_CAPS_WITHOUT_BFLOAT16:
        return False, (
            f"ONEDNN_MAX_CPU_ISA={hardware.isa_cap} caps oneDNN below this "
            f"CPU's bfloat16 instructions ({', '.join(found)})"
        )
    return True, f"this CPU computes bfloat16 natively ({', '.join(found)})"


def bfloat16_kernels_fail(hardware: Hardware) -> bool:
    """Whether TensorFlow's bfloat16 ops fail here: the CPU has bfloat16 instructions
    but ONEDNN_MAX_CPU_ISA caps oneDNN below them. TensorFlow sends bfloat16 to oneDNN
    by what the CPU has, and the capped oneDNN cannot build the kernel (with
    ONEDNN_MAX_CPU_ISA=AVX2 on an AMX Xeon, convolutions and matmuls abort)."""
    found = any(flag in hardware.cpu_flags for flag in BFLOAT16_CPU_FLAGS)
    capped = bool(hardware.isa_cap) and hardware.isa_cap.upper() in ISA_CAPS_WITHOUT_BFLOAT16
    return found and capped and not hardware.gpu_capabilities


def log_choice(asked: str, hardware: Hardware) -> str:
    """Resolves `asked` on `hardware`, logs the choice in one line (a warning when an
    explicit bfloat16 will be slow here) and returns the precision."""
    precision, reason, native = choose_precision(asked, hardware)
    if precision == "bfloat16" and bfloat16_kernels_fail(hardware):
        raise TrainerError(
            f"--precision bfloat16 cannot run here: ONEDNN_MAX_CPU_ISA="
            f"{hardware.isa_cap} caps oneDNN below this CPU's bfloat16 "
            "instructions, and TensorFlow's bfloat16 kernels fail then; "
            "pass --precision float32 or unset ONEDNN_MAX_CPU_ISA"
        )
    if precision == "bfloat16" and not native:
        logging.warning(
            "precision bfloat16: %s; expect training many times slower than "
            "with --precision float32 (about 10x on an AVX2-only CPU)",
            reason,
        )
    else:
        logging.info("precision %s: %s", precision, reason)
    return precision


def detect(environ, cpuinfo_path: str = "/proc/cpuinfo") -> Hardware:
    """Reads the CPU's name and flags, the ONEDNN_MAX_CPU_ISA cap from `environ`, and
    the visible GPUs' compute capabilities."""
    name, cpu_flags = parse_cpuinfo(_read(cpuinfo_path))
    capabilities = []
    for device in tf.config.list_physical_devices("GPU"):
        capability = tf.config.experimental.get_device_details(device).get("compute_capability")
        capabilities.append(tuple(capability) if capability else (0, 0))
    return Hardware(
        cpu_name=name,
        cpu_flags=cpu_flags,
        isa_cap=environ.get("ONEDNN_MAX_CPU_ISA") or None,
        gpu_capabilities=tuple(capabilities),
    )


def parse_cpuinfo(text: str) -> tuple[str, frozenset]:
    """(model name, flags) of the first processor in /proc/cpuinfo's text; ("unknown
    CPU", empty) where the file says nothing (not Linux, or not x86)."""
    name, cpu_flags = "unknown CPU", frozenset()
    for line in text.splitlines():
        key, _, value = line.partition(":")
        key = key.strip()
        if key == "model name" and name == "unknown CPU":
            name = value.strip()
        elif key == "flags" and not cpu_flags:
            cpu_flags = frozenset(value.lower().split())
    return name, cpu_flags


def _read(path: str) -> str:
    try:
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.read()
    except OSError:
        return ""
