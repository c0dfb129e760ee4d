"""flywheel.encoding: the one way feature values become LightGBM's float matrix."""

from __future__ import annotations

import math

import numpy as np

from flywheel.encoding import FeatureEncoding, codes_from
from flywheel.tasks import FeatureType

COLUMNS = [
    ("n", FeatureType.INT),
    ("flag", FeatureType.BOOL),
    ("kind", FeatureType.CATEGORY),
    ("x", FeatureType.FLOAT),
]


def test_rows_follow_column_order_and_the_stored_codes() -> None:
    encoding = FeatureEncoding(COLUMNS, codes_from({"kind": ["a", "b"]}))
    matrix, unknown = encoding.encode_rows(
        [
            {"x": 0.5, "kind": "b", "flag": True, "n": 3},
            {"n": None, "flag": False, "kind": "never-seen"},
        ]
    )
    np.testing.assert_array_equal(
        matrix, [[3.0, 1.0, 1.0, 0.5], [math.nan, 0.0, math.nan, math.nan]]
    )
    assert unknown == [[], ["kind"]]


def test_columns_encode_exactly_like_rows() -> None:
    encoding = FeatureEncoding(COLUMNS, codes_from({"kind": ["a", "b"]}))
    rows = [
        {"n": 1, "flag": True, "kind": "a", "x": None},
        {"n": 2, "flag": None, "kind": "z", "x": -1.25},
        {"n": 7, "flag": False, "kind": None},
    ]
    by_rows, _ = encoding.encode_rows(rows)
    columns = {name: [row.get(name) for row in rows] for name, _ in COLUMNS if name != "x"}
    np.testing.assert_array_equal(
        encoding.encode_columns(columns | {"x": [None, -1.25, None]}, 3), by_rows
    )
    # A column absent from the batch is missing throughout.
    assert np.isnan(encoding.encode_columns(columns, 3)[:, 3]).all()


def test_a_category_feature_without_a_mapping_sees_every_value_as_unseen() -> None:
    matrix, unknown = FeatureEncoding(COLUMNS, {}).encode_rows([{"kind": "a"}])
    assert math.isnan(matrix[0, 2]) and unknown == [["kind"]]


def test_codes_are_applied_as_given_so_a_grown_table_takes_effect() -> None:
    codes = codes_from({"kind": ["a"]})
    encoding = FeatureEncoding(COLUMNS, codes)
    codes["kind"]["new"] = 1  # what the trainer does when it learns a category
    matrix, unknown = encoding.encode_rows([{"kind": "new"}])
    assert matrix[0, 2] == 1.0 and unknown == [[]]
