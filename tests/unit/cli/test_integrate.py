"""``flywheel integrate``: what it writes, what it refuses, and that the code is clean.

Generated code is checked the way a client project would check it: ruff with this
repository's rules, ``mypy --strict`` without any configuration, and the generated
test run with pytest (its live test deselected: unit tests need nothing running).
"""

from __future__ import annotations

import ast
import importlib
import sys
import textwrap
from pathlib import Path
from types import ModuleType

import pytest

from flywheel.prediction_batches import BatchError, PredictionBatchResult
from flywheel.tasks import load_task_file
from flywheel_cli.__main__ import main
from flywheel_cli.codegen import IntegrationError, module_name, render_integration
from flywheel_cli.integrate import write_integration
from tests.unit.cli.integrate_helpers import TEMPLATES, lint_and_typecheck, run_tool

SUCCESS = TEMPLATES / "daisy-chain.task-success.yaml"

# Names a Python model cannot use as they are, quotes in classes, an int multiclass
# label, nullable features, a ranking task: what the templates do not exercise.
AWKWARD = """\
- name: 9lives.odd-names
  objective: multiclass
  label: {type: category, classes: [low, 'say "hi"', high]}
  features:
    - {name: x, type: int}
    - {name: y.z, type: float, nullable: true}
    - {name: class, type: category}
    - {name: _private, type: bool}
    - {name: model_dump, type: int}
    - {name: y_z, type: int}
    - {name: "a:b-c", type: category, nullable: true}
- name: zz.int-classes
  objective: multiclass
  label: {type: int}
  features:
    - {name: level, type: int}
    - {name: ratio, type: float}
- name: zz.rank
  objective: ranking
  label: {type: float}
  features:
    - {name: "is-on", type: bool, nullable: true}
"""


def _awkward(tmp_path: Path) -> Path:
    path = tmp_path / "awkward.yaml"
    path.write_text(AWKWARD)
    return path


def test_writes_module_test_and_guide(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "gen"
    code = main(["integrate", "daisy_chain", "--schema", str(SUCCESS), "--out", str(out)])
    assert code == 0
    assert sorted(p.name for p in out.iterdir()) == [
        "daisy_chain_task_success.md",
        "daisy_chain_task_success.py",
        "test_daisy_chain_task_success.py",
    ]
    assert f"wrote {out / 'daisy_chain_task_success.py'}" in capsys.readouterr().out

    module = (out / "daisy_chain_task_success.py").read_text()
    tree = ast.parse(module)
    classes = {n.name: n for n in tree.body if isinstance(n, ast.ClassDef)}
    assert {"Features", "PartialFeatures", "Prediction", "Client", "AsyncClient"} <= set(classes)
    fields = {
        stmt.target.id: ast.unparse(stmt.annotation)
        for stmt in classes["Features"].body
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)
    }
    assert fields == {"steps": "int", "retries": "float", "agent": "Category"}
    assert 'TASK: Final = "daisy-chain.task-success"' in module
    assert "Label: TypeAlias = bool" in module
    guide = (out / "daisy_chain_task_success.md").read_text()
    assert f"flywheel tasks apply {SUCCESS.as_posix()}" in guide
    assert "prediction_id" in guide


def test_default_output_directory_is_named_after_the_service(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    written = write_integration("oracle", SUCCESS, None)
    assert {p.parent for p in written} == {Path("oracle_flywheel")}
    assert all((tmp_path / p).is_file() for p in written)


def test_generation_is_deterministic(tmp_path: Path) -> None:
    (task,) = load_task_file(SUCCESS)
    first = render_integration(task, "daisy_chain", schema_path="x.yaml")
    second = render_integration(task, "daisy_chain", schema_path="x.yaml")
    assert first == second
    write_integration("daisy_chain", SUCCESS, None, tmp_path / "a")
    write_integration("daisy_chain", SUCCESS, None, tmp_path / "b")
    for path in (tmp_path / "a").iterdir():
        assert path.read_bytes() == (tmp_path / "b" / path.name).read_bytes()


def test_refuses_to_overwrite_without_force(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = ["integrate", "daisy_chain", "--schema", str(SUCCESS), "--out", str(tmp_path)]
    assert main(args) == 0
    module = tmp_path / "daisy_chain_task_success.py"
    module.write_text("# edited by hand\n")
    capsys.readouterr()
    assert main(args) == 2
    err = capsys.readouterr().err
    assert "refusing to overwrite" in err and "--force" in err
    assert module.read_text() == "# edited by hand\n"
    assert main([*args, "--force"]) == 0
    assert module.read_text().startswith('"""Flywheel client')


@pytest.mark.parametrize(
    ("argv_tail", "message"),
    [
        (["--task", "oracle.nope"], "--task 'oracle.nope': not in"),
        ([], "holds 3 tasks (9lives.odd-names, zz.int-classes, zz.rank); pick one with --task"),
    ],
)
def test_task_selection_errors_name_the_problem(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], argv_tail: list[str], message: str
) -> None:
    schema = _awkward(tmp_path)
    code = main(
        ["integrate", "svc", "--schema", str(schema), "--out", str(tmp_path / "o"), *argv_tail]
    )
    assert code == 2
    assert message in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize("service", ["daisy-chain", "9lives", "class", "", "naïve"])
def test_service_must_be_a_python_identifier(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], service: str
) -> None:
    code = main(["integrate", service, "--schema", str(SUCCESS), "--out", str(tmp_path / "o")])
    assert code == 2
    assert f"service name {service!r} is not a Python identifier" in capsys.readouterr().err


def test_an_invalid_schema_is_refused_naming_the_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(SUCCESS.read_text().replace("type: float", "type: decimal"))
    assert main(["integrate", "svc", "--schema", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert "features.1.type" in err
    assert main(["integrate", "svc", "--schema", str(tmp_path / "missing.yaml")]) == 2
    assert "missing.yaml" in capsys.readouterr().err


def test_module_names_are_identifiers() -> None:
    assert module_name("daisy-chain.task-success") == "daisy_chain_task_success"
    assert module_name("9lives.odd-names") == "task_9lives_odd_names"
    assert module_name("class") == "class_"


def _declared_fields(module: str) -> dict[str, tuple[str, dict[str, object]]]:
    """``Features``' fields: attribute -> (annotation, keyword arguments of ``Field``)."""
    (features,) = [
        n for n in ast.parse(module).body if isinstance(n, ast.ClassDef) and n.name == "Features"
    ]
    fields = {}
    for stmt in features.body:
        if isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            call = stmt.value
            keywords = (
                {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg}
                if isinstance(call, ast.Call)
                else {}
            )
            fields[stmt.target.id] = (ast.unparse(stmt.annotation), keywords)
    return fields


def test_awkward_names_keep_their_wire_names(tmp_path: Path) -> None:
    out = tmp_path / "o"
    write_integration("svc", _awkward(tmp_path), "9lives.odd-names", out)
    module = (out / "task_9lives_odd_names.py").read_text()

    # A usable name keeps itself; the others get an attribute no feature is named.
    def aliased(wire: str, *, optional: bool = False) -> dict[str, object]:
        default: dict[str, object] = {"default": None} if optional else {}
        return {**default, "validation_alias": wire, "serialization_alias": wire}

    assert _declared_fields(module) == {
        "x": ("int", {}),
        "y_z_2": ("float | None", aliased("y.z", optional=True)),
        "class_": ("Category", aliased("class")),
        "f_private": ("bool", aliased("_private")),
        "model_dump_": ("int", aliased("model_dump")),
        "y_z": ("int", {}),
        "a_b_c": ("Category | None", aliased("a:b-c", optional=True)),
    }
    assert """Literal["low", 'say "hi"', "high"]""" in module


def test_generated_code_passes_ruff_mypy_and_its_own_tests(tmp_path: Path) -> None:
    """Every template, plus the awkward schemas, in one ruff/mypy/pytest run each."""
    schemas = sorted(TEMPLATES.glob("*.yaml"))
    assert len(schemas) >= 8
    awkward = _awkward(tmp_path)
    jobs = [(s, None) for s in schemas] + [(awkward, t.name) for t in load_task_file(awkward)]
    for i, (schema, task) in enumerate(jobs):
        write_integration("svc", schema, task, tmp_path / "out" / f"g{i}")
    root = tmp_path / "out"
    lint_and_typecheck(root)
    tests = sorted(str(p.relative_to(root)) for p in root.rglob("test_*.py"))
    offline = ["-k", "not predicts_the_example_row"]
    summary = run_tool(["pytest", "-q", "-p", "no:cacheprovider", *offline, *tests], root)
    # 6 offline tests per task; the live one needs a platform and is deselected.
    assert f"{6 * len(jobs)} passed" in summary, summary


def test_a_task_file_holding_one_task_needs_no_task_option(tmp_path: Path) -> None:
    schema = tmp_path / "one.yaml"
    schema.write_text(
        textwrap.dedent(
            """\
            name: one.task
            objective: regression
            label: {type: float}
            features: [{name: x, type: float}]
            """
        )
    )
    module, test, guide = write_integration("svc", schema, None, tmp_path / "o")
    assert (module.name, test.name, guide.name) == (
        "one_task.py",
        "test_one_task.py",
        "one_task.md",
    )
    assert "def value(self) -> float | None:" in module.read_text()
    with pytest.raises(IntegrationError, match="not in"):
        write_integration("svc", schema, "two.task", tmp_path / "p")


def _import_generated(directory: Path, module: str) -> ModuleType:
    sys.path.insert(0, str(directory))
    try:
        return importlib.import_module(module)
    finally:
        sys.path.remove(str(directory))
        sys.modules.pop(module, None)


def test_generated_helpers_refuse_what_cannot_work(tmp_path: Path) -> None:
    path = write_integration("svc", SUCCESS, None, tmp_path)[0]
    gen = _import_generated(tmp_path, path.stem)
    with pytest.raises(ValueError, match="FLYWHEEL_TIMEOUT_S='soon'"):
        gen.Client.from_env({"FLYWHEEL_TIMEOUT_S": "soon"})
    with pytest.raises(ValueError, match="FLYWHEEL_TIMEOUT_S='0'"):
        gen.Client.from_env({"FLYWHEEL_TIMEOUT_S": "0"})

    # An entity prediction has no full row: feedback must be given one.
    result = gen.PredictionResult(prediction_id="1" * 32, task=gen.TASK)
    entity = gen.Prediction(result, None, "player-7")
    with pytest.raises(ValueError, match="pass features="):
        gen.feedback_event(entity, True)
    row = gen.Features(steps=3, retries=0.5, agent="planner")
    event = gen.feedback_event(entity, True, features=row)
    assert (event.entity_id, event.prediction_id) == ("player-7", "1" * 32)

    # Offline batches: the request is the Kafka contract, the answer becomes typed.
    request = gen.batch_request([row, row], request_id="r1")
    assert request.task == gen.TASK and request.rows == [row.row(), row.row()]
    answer = PredictionBatchResult(
        request_id="r1",
        task=gen.TASK,
        model_version=4,
        predictions=[
            {"prediction_id": "a" * 32, "score": 0.9, "probability": 0.8, "label": True},
            {"prediction_id": "b" * 32, "score": 0.2, "probability": 0.1, "label": False},
        ],
    )
    first, second = gen.predictions_from_batch(answer, [row, row])
    assert (first.label, first.probability, first.model_version) == (True, 0.8, 4)
    assert second.label is False and second.features == row
    refused = PredictionBatchResult(
        request_id="r2",
        task=gen.TASK,
        error=BatchError(reason="no_model", message="no model yet"),
    )
    with pytest.raises(ValueError, match="batch r2 refused: no model yet"):
        gen.predictions_from_batch(refused, [row])
    online = gen.entity_features("player-7", gen.PartialFeatures(steps=3))
    assert (online.task, online.entity_id, online.features) == (gen.TASK, "player-7", {"steps": 3})
