"""The dtypes the IR and the runtime know: one traits table.

The numeric codes are the ones written into .epk files and mirrored by
`enum class DType` in native/include/edgepack/format.h (a test checks they agree).
Codes are never reused.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

import numpy as np


class DType(enum.IntEnum):
    FLOAT32 = 1
    FLOAT16 = 2
    INT8 = 3
    UINT8 = 4
    INT32 = 5
    INT64 = 6
    BOOL = 7
    INT4 = 8  # two values per byte, low nibble first; weight-only storage

    @property
    def traits(self) -> "DTypeTraits":
        return _TRAITS[self]

    @property
    def numpy(self) -> np.dtype:
        if self.traits.numpy is None:
            raise ValueError(f"{self.name} has no numpy equivalent")
        return np.dtype(self.traits.numpy)

    def nbytes(self, numel: int) -> int:
        """Storage bytes for `numel` elements (int4 packs two per byte)."""
        if self is DType.INT4:
            return (numel + 1) // 2
        return numel * self.traits.size

    @staticmethod
    def from_numpy(dtype) -> "DType":
        dtype = np.dtype(dtype)
        for code, traits in _TRAITS.items():
            if traits.numpy is not None and np.dtype(traits.numpy) == dtype:
                return code
        raise ValueError(f"numpy dtype {dtype} is not supported by edgepack "
                         f"(supported: {', '.join(t.numpy for t in _TRAITS.values() if t.numpy)})")


@dataclass(frozen=True)
class DTypeTraits:
    size: int          # bytes per element (0 for sub-byte types)
    numpy: str | None  # numpy dtype name


_TRAITS = {
    DType.FLOAT32: DTypeTraits(4, "float32"),
    DType.FLOAT16: DTypeTraits(2, "float16"),
    DType.INT8: DTypeTraits(1, "int8"),
    DType.UINT8: DTypeTraits(1, "uint8"),
    DType.INT32: DTypeTraits(4, "int32"),
    DType.INT64: DTypeTraits(8, "int64"),
    DType.BOOL: DTypeTraits(1, "bool"),
    DType.INT4: DTypeTraits(0, None),
}
