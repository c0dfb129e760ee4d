"""One row through LightGBM's single-row fast path (``…SingleRowFastInit``/``…Fast``).

``Booster.predict`` rebuilds its predictor on every call (parameters copied and
formatted, arrays converted, result buffers sized): ~25 µs around ~2 µs of tree
walking for one row. LightGBM's C API has a path made for exactly this: the
parameters are parsed once into a *fast config*, and each row is then scored with one
call into the library. The python package does not wrap it, so it is called through
the same ctypes handle (``lightgbm.basic._LIB``) the package itself uses.

The answer is the one ``Booster.predict(row, num_threads=1)`` gives: the same
transformed output (probabilities for classification), the same iterations (the
best iteration when the model has one, else all), on the calling thread.
"""

from __future__ import annotations

import ctypes
import weakref

import lightgbm as lgb
import numpy as np
import numpy.typing as npt
from lightgbm import basic

__all__ = ["SingleRowScorer"]

Matrix = npt.NDArray[np.float64]

# The library handle lightgbm.basic itself calls through (not re-exported by it).
_LIB: ctypes.CDLL = basic._LIB  # type: ignore[attr-defined]

# lightgbm/c_api.h: C_API_PREDICT_NORMAL, C_API_DTYPE_FLOAT64.
_PREDICT_NORMAL = 0
_FLOAT64 = 1


def _free(handle: ctypes.c_void_p) -> None:
    basic._safe_call(_LIB.LGBM_FastConfigFree(handle))


class SingleRowScorer:
    """Scores one row at a time with a fast config made once for ``booster``.

    Not for concurrent use: like the predictor's event loop, one caller at a time.
    """

    def __init__(self, booster: lgb.Booster) -> None:
        # Kept so the booster outlives the fast config that points into it.
        self._booster = booster
        self._width = booster.num_feature()
        num_iteration = booster.best_iteration if booster.best_iteration > 0 else -1
        handle = ctypes.c_void_p()
        basic._safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFastInit(
                booster._handle,
                ctypes.c_int(_PREDICT_NORMAL),
                ctypes.c_int(0),  # start iteration
                ctypes.c_int(num_iteration),
                ctypes.c_int(_FLOAT64),
                ctypes.c_int32(self._width),
                basic._c_str("num_threads=1"),
                ctypes.byref(handle),
            )
        )
        self._handle = handle
        weakref.finalize(self, _free, handle)
        # Input and output buffers (and the ctypes views of them) made once: building
        # them per call would cost more than the library call itself.
        self._row = np.empty(self._width, dtype=np.float64)
        self._row_ptr = self._row.ctypes.data_as(ctypes.c_void_p)
        self._out = np.empty(booster.num_model_per_iteration(), dtype=np.float64)
        self._out_ptr = self._out.ctypes.data_as(ctypes.POINTER(ctypes.c_double))
        self._out_len = ctypes.c_int64()
        self._out_len_ref = ctypes.byref(self._out_len)

    def scores(self, matrix: Matrix) -> Matrix:
        """The model's output for a 1-row ``matrix``: shape (1,) or (1, classes)."""
        if matrix.shape != (1, self._width):
            raise ValueError(f"expected one row of {self._width} features, got {matrix.shape}")
        self._row[:] = matrix[0]
        basic._safe_call(
            _LIB.LGBM_BoosterPredictForMatSingleRowFast(
                self._handle, self._row_ptr, self._out_len_ref, self._out_ptr
            )
        )
        out = self._out.copy()
        return out if len(out) == 1 else out.reshape(1, -1)
