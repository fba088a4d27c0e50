"""A torch module's weights <-> the named numpy arrays of a self-describing model file
(the torch hashers' `arrays` / `from_arrays`). Only the torch hashers import this module,
so the others (and their jobs' code) never depend on torch."""

from __future__ import annotations

import numpy as np


def state_arrays(module, prefix: str) -> dict[str, np.ndarray]:
    """Every tensor of the module's state_dict as an array named `prefix` + its key."""
    return {prefix + k: v.detach().numpy() for k, v in module.state_dict().items()}


def load_state_arrays(module, arrays: dict, prefix: str):
    """Load the arrays named `prefix` + key (as written by state_arrays) into the module;
    returns the module."""
    import torch

    module.load_state_dict({k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in arrays.items()
                            if k.startswith(prefix)})
    return module
