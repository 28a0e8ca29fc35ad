"""The CPU this process runs on, by the instruction sets that decide speed here (no TensorFlow).

`cpu_kind` names one of the kinds the project's benchmarks and automatic choices distinguish,
from the best instruction set the CPU reports:
- "amx": Intel AMX tiles for bfloat16 (amx_bf16; Sapphire Rapids and later Xeons);
- "avx512_bf16": AVX-512 with bfloat16 dot products but no AMX (e.g. AMD EPYC Zen 4/5);
- "avx512": AVX-512 (avx512f) without bfloat16 instructions;
- "avx2": AVX2 without AVX-512;
- "other": none of these (older x86, ARM, or no /proc/cpuinfo).

>>> cpu_kind({"avx2", "fma", "avx512f", "avx512_bf16", "amx_bf16", "amx_int8"})
'amx'
>>> cpu_kind({"avx2", "avx512f", "avx512_bf16"})
'avx512_bf16'
>>> cpu_kind({"avx2", "avx512f"}), cpu_kind({"avx2", "fma"}), cpu_kind(set())
('avx512', 'avx2', 'other')
"""

import os

CPU_KINDS = ("amx", "avx512_bf16", "avx512", "avx2", "other")  # best first
_REQUIRED = {"amx": "amx_bf16", "avx512_bf16": "avx512_bf16", "avx512": "avx512f", "avx2": "avx2"}
BENCH_FEATURES = ("avx512", "amx", "avx2", "fma")  # prefixes of the flags a benchmark records


def cpu_flags(cpuinfo_path: str = "/proc/cpuinfo") -> set:
    """The first CPU's flags in /proc/cpuinfo (empty where there is no such file)."""
    if not os.path.exists(cpuinfo_path):
        return set()
    with open(cpuinfo_path) as f:
        for line in f:
            if line.startswith("flags"):
                return set(line.split(":", 1)[1].split())
    return set()


def cpu_model(cpuinfo_path: str = "/proc/cpuinfo") -> str | None:
    """The first CPU's model name in /proc/cpuinfo, or None."""
    if not os.path.exists(cpuinfo_path):
        return None
    with open(cpuinfo_path) as f:
        for line in f:
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    return None


def cpu_kind(flags=None) -> str:
    """The kind (CPU_KINDS) of a CPU with these flags (None: this machine's)."""
    flags = cpu_flags() if flags is None else set(flags)
    return next((kind for kind in CPU_KINDS[:-1] if _REQUIRED[kind] in flags), "other")


def describe(flags=None, model: str | None = None, cores: int | None = None) -> str:
    """One line for a benchmark table's header, e.g. "CPU kind avx512_bf16: AMD EPYC, 2 cores"."""
    flags = cpu_flags() if flags is None else set(flags)
    model = cpu_model() if model is None else model
    cores = os.cpu_count() if cores is None else cores
    return f"CPU kind {cpu_kind(flags)}: {model or 'unknown CPU'}, {cores} cores"
