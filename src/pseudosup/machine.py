"""What machine and software computed a result: recorded in run files and sidecars.

Float results (faiss k-means, BLAS products, torch convolutions) can differ in the last
bits between CPUs and instruction sets, so every output says where it was computed:
the CPU model, the ISA torch actually dispatches to, the environment variables that
override such choices, the thread settings and the library versions.

`machine()` never imports torch or faiss itself: importing torch alone takes ~1.5 s,
which stages that do not use it (evaluate, report, mine) should not pay. Their ISA
fields are null with the reason; versions come from the installed packages' metadata.
"""

from __future__ import annotations

import os
import platform
import sys
from functools import lru_cache

# environment variables that change which kernels run (and so, possibly, the low bits)
ISA_OVERRIDES = ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA", "MKL_ENABLE_INSTRUCTIONS", "OPENBLAS_CORETYPE",
                 "FAISS_SIMD_LEVEL", "FAISS_OPT_LEVEL", "MKL_CBWR")
THREAD_VARS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")
NOT_LOADED = "not loaded by this stage"


def machine() -> dict:
    """The record (JSON-ready). Call it when the work is done: torch/faiss are then
    loaded if the stage used them, and their settings are the ones that applied."""
    return {"cpu": cpu_model(), "logical_cpus": os.cpu_count(), "platform": platform.platform(),
            "torch_cpu_capability": _torch_capability(), "faiss_compile_options": _faiss_options(),
            "env": {k: os.environ.get(k) for k in ISA_OVERRIDES},
            "threads": {**{k: os.environ.get(k) for k in THREAD_VARS}, "torch": _torch_threads()},
            "versions": _versions()}


@lru_cache(maxsize=None)
def cpu_model() -> str | None:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or None


def _torch_capability() -> str:
    torch = sys.modules.get("torch")
    if torch is None:
        return NOT_LOADED
    return str(torch.backends.cpu.get_cpu_capability())


def _torch_threads() -> int | str:
    torch = sys.modules.get("torch")
    return torch.get_num_threads() if torch is not None else NOT_LOADED


def _faiss_options() -> str:
    faiss = sys.modules.get("faiss")
    if faiss is None:
        return NOT_LOADED
    return str(faiss.get_compile_options()).strip()


@lru_cache(maxsize=None)
def _versions() -> dict:
    from importlib import metadata

    import numpy

    out = {"python": platform.python_version(), "numpy": numpy.__version__}
    for name, dists in (("torch", ("torch",)), ("faiss", ("faiss-cpu", "faiss-gpu", "faiss"))):
        out[name] = None
        for dist in dists:
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out
