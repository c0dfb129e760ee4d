"""Applying a model's feature encoding: raw feature values -> LightGBM's float matrix.

The trainer encodes to learn and the predictor encodes on the hot path; both go
through :class:`FeatureEncoding`, so a row is always fed to a booster the way the
model was trained. The rules:

* column ``i`` of the matrix is ``columns[i]`` (the model's feature order);
* a missing feature or ``None`` is NaN (LightGBM's missing-value branch);
* ``int``, ``float`` and ``bool`` become ``float(value)`` (``True`` -> 1.0);
* a category becomes its code, its index in ``ModelVersion.category_mappings[name]``;
  a category the mapping lacks is NaN, and :meth:`FeatureEncoding.encode_rows`
  reports it, so a response can say so rather than hide it.

Learning new categories is the trainer's business (it appends to the code tables
it hands in here); this module only applies a mapping.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt

from flywheel.tasks import FeatureType

__all__ = ["CategoryCodes", "FeatureEncoding", "Matrix", "Vector", "codes_from"]

Matrix = npt.NDArray[np.float64]
Vector = npt.NDArray[np.float64]
# Per category feature: category -> code.
CategoryCodes = dict[str, dict[str, int]]


def codes_from(mappings: Mapping[str, Sequence[str]]) -> CategoryCodes:
    """Code tables for stored mappings: a category's code is its index."""
    return {name: {c: i for i, c in enumerate(cats)} for name, cats in mappings.items()}


class FeatureEncoding:
    """One model's encoding, built once per model (off the hot path).

    ``codes`` is used as given, not copied: the trainer grows it as categories
    arrive and every later encode sees the new codes.
    """

    __slots__ = ("_plan", "columns")

    def __init__(self, columns: Sequence[tuple[str, FeatureType]], codes: CategoryCodes) -> None:
        self.columns = tuple(name for name, _ in columns)
        # Per column: its name and, for a category, its code table (None: numeric).
        # A category feature without a mapping gets an empty table: every value unseen.
        self._plan: tuple[tuple[str, dict[str, int] | None], ...] = tuple(
            (name, codes.setdefault(name, {}) if kind is FeatureType.CATEGORY else None)
            for name, kind in columns
        )

    def encode_rows(self, rows: Sequence[Mapping[str, Any]]) -> tuple[Matrix, list[list[str]]]:
        """Rows -> the matrix, plus the features per row whose category was unseen."""
        matrix = np.empty((len(rows), len(self._plan)), dtype=np.float64)
        unknown: list[list[str]] = []
        for r, row in enumerate(rows):
            row_unknown: list[str] = []
            for c, (name, table) in enumerate(self._plan):
                value = row.get(name)
                if value is None:
                    matrix[r, c] = math.nan
                elif table is not None:
                    code = table.get(value)
                    if code is None:
                        row_unknown.append(name)
                        matrix[r, c] = math.nan
                    else:
                        matrix[r, c] = code
                else:
                    matrix[r, c] = float(value)
            unknown.append(row_unknown)
        return matrix, unknown

    def encode_columns(self, columns: Mapping[str, Sequence[Any]], n_rows: int) -> Matrix:
        """Columnar values (a training batch) -> the matrix, by the same rules as rows."""
        matrix = np.empty((n_rows, len(self._plan)), dtype=np.float64)
        for c, (name, table) in enumerate(self._plan):
            values = columns.get(name)
            if values is None:
                matrix[:, c] = math.nan
            elif table is not None:
                matrix[:, c] = [
                    math.nan if (code := None if v is None else table.get(v)) is None else code
                    for v in values
                ]
            else:
                matrix[:, c] = [math.nan if v is None else float(v) for v in values]
        return matrix
