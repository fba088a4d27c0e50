"""Loading the datasets' pickle files without running arbitrary code.

CIFAR-10's batches and the Oxford/Paris `gnd_*.pkl` files are pickles. A pickle can
call any importable function, so they are read with an unpickler that only builds
plain containers and numpy arrays; anything else is refused with a clear error.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path

from ...io import PseudosupError

# (module, name) pairs a numpy array pickle needs, for numpy 1.x and 2.x writers
_ALLOWED = {
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    ("builtins", "bytearray"), ("_codecs", "encode"),
}


class _Restricted(pickle.Unpickler):
    def find_class(self, module, name):
        if (module, name) in _ALLOWED:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(f"refusing to load {module}.{name} (only numpy arrays and plain data)")


def loads(data: bytes, where: str, encoding: str = "ASCII"):
    try:
        return _Restricted(io.BytesIO(data), encoding=encoding).load()
    except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, ImportError,
            IndexError, KeyError) as e:
        raise PseudosupError(f"{where}: not a readable pickle of plain data ({e}); the file is corrupt "
                             "or not the expected one") from None


def load_pickle(path: str | Path, encoding: str = "ASCII"):
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise PseudosupError(f"{path}: file not found") from None
    return loads(data, str(path), encoding)
