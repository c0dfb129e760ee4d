"""Ensemble versions: how members' texts travel and how their scores combine.

The trainer builds ensemble versions and the predictor serves them; both go through
this module, so a row scores identically on either side (tests/unit/contract).

* :func:`pack_members` / :func:`member_texts` - an ensemble's ``model_text`` is one JSON
  document ``{"members": {name: lightgbm_text, ...}}`` (JSON, never a pickle); its
  sha256 is the version's ``model_sha256`` and each member text is checked against its
  own ``EnsembleMemberRecord.model_sha256`` when unpacked.
* :func:`member_version` - one member as a stand-alone :class:`ModelVersion` (the
  trainer resumes member learners from it).
* :func:`combine_raw` and :func:`link` - the combiner. Members are combined in *raw
  score* space (LightGBM ``raw_score``: log-odds, class logits, or values)::

      z = bias + sum_i weights[i] * raw_i          then   p = link(z)

  with link = sigmoid (binary), softmax (multiclass) or identity (regression,
  ranking); ``ModelVersion.calibration`` then applies to ``p`` as for one model.
  Combining raw scores (a weighted logarithmic opinion pool) rather than
  probabilities keeps explanations exact: the members' SHAP values, weighted the same
  way, sum to ``z``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final, Literal

import numpy as np
import numpy.typing as npt
import orjson

from flywheel.errors import ModelError, ModelIntegrityError
from flywheel.events import EnsembleParameters, ModelVersion
from flywheel.tasks import Objective

__all__ = [
    "ENSEMBLE_FORMAT",
    "combine_raw",
    "ensemble_of",
    "link",
    "member_texts",
    "member_version",
    "pack_members",
]

Array = npt.NDArray[np.float64]

ENSEMBLE_FORMAT: Final[Literal["lightgbm-ensemble"]] = "lightgbm-ensemble"


def pack_members(texts: Sequence[tuple[str, str]]) -> str:
    """The ``model_text`` of an ensemble: member texts in member order, as JSON."""
    return orjson.dumps({"members": dict(texts)}).decode("utf-8")


def ensemble_of(version: ModelVersion) -> EnsembleParameters:
    if version.ensemble is None:
        raise ModelError(f"{version.registry_key()}: not an ensemble version")
    return version.ensemble


def member_texts(version: ModelVersion) -> list[tuple[str, str]]:
    """``(name, lightgbm_text)`` per member, in member order, every hash checked."""
    params = ensemble_of(version)
    key = version.registry_key()
    if ModelVersion.hash_text(version.model_text) != version.model_sha256:
        raise ModelIntegrityError(f"{key}: ensemble text does not match its hash")
    try:
        doc = orjson.loads(version.model_text)
        texts = doc["members"]
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        raise ModelError(f"{key}: model_text is not an ensemble document ({exc})") from exc
    if not isinstance(texts, dict) or list(texts) != [m.name for m in params.members]:
        raise ModelError(
            f"{key}: model_text members {list(texts) if isinstance(texts, dict) else '?'} "
            f"do not match ensemble.members {[m.name for m in params.members]}"
        )
    out: list[tuple[str, str]] = []
    for member in params.members:
        text = texts[member.name]
        if not isinstance(text, str) or ModelVersion.hash_text(text) != member.model_sha256:
            raise ModelIntegrityError(f"{key}: member {member.name} does not match its hash")
        out.append((member.name, text))
    return out


def member_version(version: ModelVersion, name: str) -> ModelVersion:
    """Member ``name`` of an ensemble version as a single-model version of the same task."""
    params = ensemble_of(version)
    records = {m.name: m for m in params.members}
    if name not in records:
        raise ModelError(f"{version.registry_key()}: no member named {name!r}")
    member = records[name]
    text = dict(member_texts(version))[name]
    return ModelVersion(
        task=version.task,
        version=version.version,
        parent_version=version.parent_version,
        created_at=version.created_at,
        objective=version.objective,
        model_text=text,
        model_sha256=member.model_sha256,
        feature_schema=version.feature_schema,
        category_mappings=version.category_mappings,
        label_classes=version.label_classes,
        calibration=member.calibration,
        strategy=member.strategy,
        trees=member.trees,
        events_trained=member.events_trained,
        metrics=member.metrics,
    )


def combine_raw(raw: Sequence[Array], weights: Sequence[float], bias: float) -> Array:
    """``bias + sum(weights[i] * raw[i])``; each ``raw[i]`` is (n,) or (n, classes)."""
    if len(raw) != len(weights) or not raw:
        raise ModelError(f"ensemble: {len(raw)} member scores for {len(weights)} weights")
    z: Array = np.full_like(raw[0], bias, dtype=np.float64)
    for w, r in zip(weights, raw, strict=True):
        z += w * r
    return z


def link(objective: Objective, z: Array) -> Array:
    """Raw score -> the model's output: P(true), class probabilities, or the value."""
    if objective is Objective.BINARY:
        # The logistic function without overflow: exp of a negative number only.
        e = np.exp(-np.abs(z))
        out: Array = np.where(z >= 0, 1.0 / (1.0 + e), e / (1.0 + e))
        return out
    if objective is Objective.MULTICLASS:
        shifted = z - z.max(axis=-1, keepdims=True)
        e = np.exp(shifted)
        probs: Array = e / e.sum(axis=-1, keepdims=True)
        return probs
    return z
