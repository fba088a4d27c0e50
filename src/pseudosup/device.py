"""Which device a stage computes on, and a small record of it for sidecars and metrics.

Rules that can use a GPU (CNN pre-training and features, large kNN / pair mining) call
`torch_device()` / `faiss_gpus()`: CUDA when torch sees a GPU, faiss on the GPU when the
installed faiss build has GPU support and a GPU is visible, otherwise the CPU. On a SLURM
GPU job the visible GPUs are the allocated ones (SLURM sets CUDA_VISIBLE_DEVICES).

The environment variable PSEUDOSUP_DEVICE overrides the choice: `cpu` forces the CPU
(e.g. to reproduce CPU numbers exactly on a GPU node: GPU kernels round differently),
`cuda` demands a GPU and fails clearly without one, `auto` (default) picks as above.

`describe()` returns a small dict that depends only on the hardware used, never on the
host or the job (no hostnames, job ids, times), so identical runs keep identical outputs.
"""

from __future__ import annotations

import os
from typing import Any

from .io import PseudosupError

ENV = "PSEUDOSUP_DEVICE"
CHOICES = ("auto", "cpu", "cuda")


def preference(value: str | None = None) -> str:
    """The requested device policy: `value`, else $PSEUDOSUP_DEVICE, else auto."""
    choice = (value if value is not None else os.environ.get(ENV, "auto")).strip().lower() or "auto"
    if choice not in CHOICES:
        raise PseudosupError(f"{ENV}={choice!r}: expected one of {', '.join(CHOICES)} "
                             f"(or unset it to pick CUDA when available, else the CPU)")
    return choice


def torch_device(prefer: str | None = None):
    """torch.device to compute on: cuda:0 (the first visible GPU) or cpu."""
    import torch

    choice = preference(prefer)
    if choice != "cpu" and torch.cuda.is_available():
        return torch.device("cuda", 0)
    if choice == "cuda":
        raise PseudosupError(f"{ENV}=cuda but torch {torch.__version__} sees no CUDA GPU "
                             f"(CUDA build: {torch.version.cuda or 'none'}, "
                             f"CUDA_VISIBLE_DEVICES={os.environ.get('CUDA_VISIBLE_DEVICES', 'unset')}); "
                             "request a GPU for the job (params `gpus`) or unset the variable")
    return torch.device("cpu")


def faiss_gpus(prefer: str | None = None) -> int:
    """Number of GPUs faiss can use (0: CPU build or no GPU visible, or forced CPU)."""
    import faiss

    choice = preference(prefer)
    n = faiss.get_num_gpus() if choice != "cpu" and hasattr(faiss, "get_num_gpus") else 0
    if choice == "cuda" and n == 0:
        raise PseudosupError(f"{ENV}=cuda but faiss {faiss.__version__} has no GPU available "
                             "(faiss-cpu build, or no GPU visible); install a GPU build of faiss "
                             "on GPU nodes or unset the variable")
    return int(n)


def faiss_index(index, prefer: str | None = None):
    """The index itself on the CPU, or a copy spread over all visible GPUs."""
    if faiss_gpus(prefer) == 0:
        return index
    import faiss

    return faiss.index_cpu_to_all_gpus(index)


def describe(torch_dev=None, faiss_gpu_count: int | None = None) -> dict[str, Any]:
    """What a stage computed on, for its sidecar/metrics. Pass what was actually used:
    the torch device (or None if torch was not used) and the number of GPUs faiss used
    (or None if faiss was not used). `kind` is "cuda" when either ran on a GPU, else
    "cpu" (also for stages that use neither: numpy/scipy/OpenCV run on the CPU)."""
    on_gpu = (torch_dev is not None and str(torch_dev).startswith("cuda")) or bool(faiss_gpu_count)
    out: dict[str, Any] = {"kind": "cuda" if on_gpu else "cpu"}
    if torch_dev is not None:
        out["torch"] = str(torch_dev)
        if out["torch"].startswith("cuda"):
            import torch

            out["gpu"] = torch.cuda.get_device_name(torch.device(out["torch"]))
    if faiss_gpu_count is not None:
        out["faiss"] = f"gpu x{faiss_gpu_count}" if faiss_gpu_count else "cpu"
    return out
