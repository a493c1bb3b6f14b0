"""Property-based tests of model.json and run.json parsing: mutated files raise only the project's own
errors (gusa_core.errors), and nothing outside the test's temporary folder changes."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from _models import untrained_run
from _snapshot import outside_snapshot  # noqa: F401 - a fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gusa_core.checkpoint import META_FILE, MODEL_FILE, load_model, read_model_meta
from gusa_core.errors import GusaError
from gusa_core.runs import Run, model_folders

pytestmark = pytest.mark.usefixtures("outside_snapshot")

FUZZ = dict(deadline=None, database=None, derandomize=True,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def seed_run(tmp_path_factory):
    return untrained_run(tmp_path_factory.mktemp("fuzz_models") / "run")


@pytest.fixture
def scratch(tmp_path):
    return tmp_path


_json_value = st.recursive(
    st.one_of(st.none(), st.booleans(), st.integers(-2**70, 2**70), st.floats(), st.text(max_size=8)),
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=6), inner, max_size=4)),
    max_leaves=8,
)


def _edits(keys):
    """Replace, delete or add keys of a JSON object."""
    return st.lists(
        st.tuples(st.sampled_from(sorted(keys) + ["extra"]), st.one_of(st.just("<delete>"), _json_value)), min_size=1, max_size=3
    )


def _edit(obj: dict, edits) -> dict:
    obj = dict(obj)
    for key, value in edits:
        if value == "<delete>":
            obj.pop(key, None)
        else:
            obj[key] = value
    return obj


def _bytes_mutation():
    return st.tuples(st.lists(st.tuples(st.integers(0, 2**16), st.integers(0, 7)), max_size=6),
                     st.one_of(st.none(), st.floats(0.0, 1.0)))


def _mutate(data: bytes, flips, cut) -> bytes:
    buf = bytearray(data)
    for pos, bit in flips:
        buf[pos % len(buf)] ^= 1 << bit
    return bytes(buf[: max(1, int(len(buf) * cut))] if cut is not None else buf)


def _copy_model(seed_run: Path, scratch: Path, *, link_weights: bool = True) -> Path:
    """A copy of the seed model folder; the weights hard-linked (never written) unless ``link_weights`` is False."""
    folder = Path(tempfile.mkdtemp(dir=scratch)) / "fold-0"
    folder.mkdir()
    shutil.copy2(seed_run / "fold-0" / META_FILE, folder / META_FILE)
    if link_weights:
        os.link(seed_run / "fold-0" / MODEL_FILE, folder / MODEL_FILE)
    else:
        shutil.copy2(seed_run / "fold-0" / MODEL_FILE, folder / MODEL_FILE)
    return folder


def _meta(seed_run):
    return json.loads((seed_run / "fold-0" / META_FILE).read_text(encoding="utf-8"))


@settings(max_examples=50, **FUZZ)
@given(data=st.data())
def test_read_model_meta_of_edited_json(seed_run, scratch, data):
    meta = _meta(seed_run)
    folder = _copy_model(seed_run, scratch)
    edited = _edit(meta, data.draw(_edits(meta)))
    (folder / META_FILE).write_text(json.dumps(edited))
    try:
        got = read_model_meta(folder)
    except GusaError as exc:
        assert str(folder / META_FILE) in str(exc)
        return
    assert got["class_names"] and isinstance(got["variant"], str)


@settings(max_examples=20, **FUZZ)
@given(data=st.data())
def test_load_model_of_edited_json(seed_run, scratch, data):
    """Anything load_model accepts must describe the weights exactly as they were saved."""
    meta = _meta(seed_run)
    folder = _copy_model(seed_run, scratch)
    edits = data.draw(_edits({k for k in meta if k not in ("history", "training", "metrics")}))
    edited = _edit(meta, edits)
    (folder / META_FILE).write_text(json.dumps(edited))
    try:
        _, got = load_model(folder)
    except GusaError:
        return
    for key in ("variant", "class_names", "input_size", "mean", "std", "reinhard"):
        assert got.get(key) == meta.get(key)
    assert got.get("weights_sha256") in (None, meta["weights_sha256"])  # an old model.json has none


@settings(max_examples=20, **FUZZ)
@given(mutation=_bytes_mutation(), which=st.sampled_from([META_FILE, MODEL_FILE]))
def test_load_model_of_damaged_bytes(seed_run, scratch, mutation, which):
    folder = _copy_model(seed_run, scratch, link_weights=False)
    path = folder / which
    original = path.read_bytes()
    path.write_bytes(_mutate(original, *mutation))
    try:
        load_model(folder)
    except GusaError:
        return
    assert path.read_bytes() == original or which == META_FILE  # damaged weights never load


@settings(max_examples=50, **FUZZ)
@given(data=st.data())
def test_run_json_of_edited_content(seed_run, scratch, data):
    run_meta = json.loads((seed_run / "run.json").read_text(encoding="utf-8"))
    folder = Path(tempfile.mkdtemp(dir=scratch)) / "run"
    shutil.copytree(seed_run, folder, copy_function=os.link)  # weights shared, never written
    (folder / "run.json").unlink()  # a new file, not the seed's inode
    (folder / "run.json").write_text(json.dumps(_edit(run_meta, data.draw(_edits(run_meta)))))
    try:
        run = Run(folder)
        run.summary(), run.input_size, run.folds, run.class_names, run.status
        model_folders(folder)
    except GusaError:
        return
