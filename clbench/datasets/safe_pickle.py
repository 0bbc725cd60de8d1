"""Reading pickled dataset files without running code from them.

``pickle.load`` calls whatever callable a file names, so a ``cifar-100-python/train`` placed on a shared disk by
someone else could run anything. :func:`load` resolves only the globals that plain data needs: a few builtin
containers and the numpy functions that rebuild arrays and scalars. Anything else (``os.system``,
``builtins.eval``, ``subprocess.Popen`` ...) stops the load before it is called.
"""

from __future__ import annotations

import io
import pickle
from pathlib import Path
from typing import Any

ALLOWED_GLOBALS = frozenset({
    # numpy arrays and scalars: pickle protocols 2-4 (_reconstruct + __setstate__), 5 (_frombuffer)
    ("numpy", "ndarray"), ("numpy", "dtype"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
    # bytes pickled by Python 3 at protocol <= 2; builtin containers without an opcode of their own
    ("_codecs", "encode"),
    *((module, name) for module in ("builtins", "__builtin__")  # __builtin__: Python 2 names, as in CIFAR's files
      for name in ("set", "frozenset", "bytearray", "complex")),
})


class ForbiddenGlobal(pickle.UnpicklingError):
    """The file names a callable that plain data does not need."""

    def __init__(self, module: str, name: str) -> None:
        super().__init__(f"the pickle calls {module}.{name}, which a data file never needs")
        self.qualname = f"{module}.{name}"


class _DataUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED_GLOBALS:
            raise ForbiddenGlobal(module, name)
        return super().find_class(module, name)

    def persistent_load(self, pid: Any) -> Any:
        raise pickle.UnpicklingError("persistent ids are not data")


def loads(data: bytes, encoding: str = "latin1") -> Any:
    """Unpickle ``data``, refusing every global outside :data:`ALLOWED_GLOBALS`.

    ``encoding="latin1"`` reads the Python 2 pickles of the CIFAR release, as torchvision does.
    """
    return _DataUnpickler(io.BytesIO(data), encoding=encoding).load()


def load(path: str | Path, encoding: str = "latin1") -> Any:
    """:func:`loads` of a file."""
    return loads(Path(path).read_bytes(), encoding)
