"""Turning a task's raw features and labels into LightGBM's numeric input.

The model owns its category mappings: a category's code is its index in
``ModelVersion.category_mappings[feature]``, codes are stable (new categories are
appended, never reordered) and a category the model never saw is encoded as missing
(NaN), so LightGBM sends it down its missing-value branch. Applying the mappings is
:class:`flywheel.encoding.FeatureEncoding`, the same code the predictor serves with;
what stays here is learning them (appending categories as batches arrive).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from flywheel.encoding import FeatureEncoding, Matrix, Vector, codes_from
from flywheel.tasks import FeatureSpec, FeatureType, LabelType, Objective, TaskDefinition

__all__ = ["FeatureEncoder", "LabelEncoder", "Matrix", "Vector"]

# Beyond this many categories a feature's new values are treated as missing: the
# mapping (and the model's categorical splits) must stay bounded.
MAX_CATEGORIES_PER_FEATURE = 10_000


class FeatureEncoder:
    """Columns or rows of raw feature values -> a float matrix, in schema order."""

    def __init__(
        self,
        schema: Sequence[FeatureSpec],
        mappings: dict[str, list[str]] | None = None,
        *,
        max_categories: int = MAX_CATEGORIES_PER_FEATURE,
    ) -> None:
        self.schema = tuple(schema)
        self._max_categories = max_categories
        self._categories: dict[str, list[str]] = {
            spec.name: list((mappings or {}).get(spec.name, []))
            for spec in self.schema
            if spec.type is FeatureType.CATEGORY
        }
        self._codes = codes_from(self._categories)
        # Shares self._codes: categories learnt below are applied from then on.
        self._encoding = FeatureEncoding([(s.name, s.type) for s in self.schema], self._codes)

    @property
    def names(self) -> list[str]:
        return [spec.name for spec in self.schema]

    @property
    def categorical_indices(self) -> list[int]:
        return [i for i, spec in enumerate(self.schema) if spec.type is FeatureType.CATEGORY]

    def mappings(self) -> dict[str, list[str]]:
        """The category mappings to store with a model version (a copy)."""
        return {name: list(cats) for name, cats in self._categories.items()}

    def encode_columns(
        self, columns: Mapping[str, Sequence[Any]], n_rows: int, *, learn: bool
    ) -> Matrix:
        """Encode columnar values; with ``learn`` unseen categories get new codes first."""
        if learn:
            for name in self._categories:
                values = columns.get(name)
                if values is not None:
                    self._learn(name, values)
        return self._encoding.encode_columns(columns, n_rows)

    def encode_rows(self, rows: Sequence[dict[str, Any]], *, learn: bool = False) -> Matrix:
        if learn:
            for name in self._categories:
                self._learn(name, [row.get(name) for row in rows])
        matrix, _ = self._encoding.encode_rows(rows)
        return matrix

    def _learn(self, name: str, values: Sequence[Any]) -> None:
        codes = self._codes[name]
        categories = self._categories[name]
        for value in values:
            if value is not None and value not in codes and len(categories) < self._max_categories:
                codes[value] = len(categories)
                categories.append(value)


class LabelEncoder:
    """Labels -> LightGBM targets: 0/1 for binary, class index for multiclass, floats else.

    For ``category`` labels the classes are the task's closed set. ``int`` multiclass
    labels are discovered as they arrive (class = ``str(label)``); when a new class
    appears the number of classes grows and the model has to be retrained.
    """

    def __init__(self, task: TaskDefinition, classes: list[str] | None = None) -> None:
        self.objective = task.objective
        self._closed = task.label.type is LabelType.CATEGORY
        if self._closed:
            self.classes = list(task.label.classes)
        else:
            self.classes = list(classes or [])
        self._index = {c: i for i, c in enumerate(self.classes)}

    @property
    def is_classifier(self) -> bool:
        return self.objective in (Objective.BINARY, Objective.MULTICLASS)

    @property
    def num_classes(self) -> int:
        if self.objective is Objective.BINARY:
            return 2
        if self.objective is Objective.MULTICLASS:
            return max(2, len(self.classes))
        return 0

    def encode(self, labels: Sequence[Any], *, learn: bool) -> tuple[Vector, bool]:
        """Targets for ``labels`` and whether the class set grew (multiclass int labels)."""
        if self.objective is Objective.BINARY:
            return np.asarray([1.0 if bool(v) else 0.0 for v in labels]), False
        if self.objective is not Objective.MULTICLASS:
            return np.asarray([float(v) for v in labels], dtype=np.float64), False
        grew = False
        out = np.empty(len(labels), dtype=np.float64)
        for i, value in enumerate(labels):
            key = str(value)
            index = self._index.get(key)
            if index is None:
                if self._closed or not learn:
                    # Ingest already refused labels outside a closed class set.
                    raise ValueError(f"label: {value!r} is not one of {self.classes}")
                index = len(self.classes)
                self.classes.append(key)
                self._index[key] = index
                grew = True
            out[i] = index
        return out, grew
