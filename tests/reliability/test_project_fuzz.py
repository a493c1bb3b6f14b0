"""The manifest loader under generated and mutated manifests: only the project's own errors, nothing written outside."""

from __future__ import annotations

import copy
import json
import shutil

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from project_helpers import make_project

from gusa_core.errors import GusaError
from gusa_core.project import Project

FUZZ = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])

HOSTILE = [
    "../../outside/victim.png", "../../../outside/pwned", "/etc/passwd", "masks/../../outside/victim.png",
    "..", ".", "", "/", "\\\\server\\share\\x.png", "C:\\x.png", "masks/\x00.png", "a/b", ".hidden",
    "masks/img0.png", "x" * 300, "ünï", "masks/../masks/img0.png", "images/img1.png", "~/x",
]  # fmt: skip
scalars = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True), st.text(max_size=20),
    st.sampled_from(HOSTILE),
)  # fmt: skip
json_values = st.recursive(
    scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4), max_leaves=12
)
IMAGE_KEYS = ["id", "path", "label", "mask", "notes", "suggested"]
TOP_KEYS = ["format", "version", "classes", "class_colors", "reinhard_reference", "images", "created", "modified"]


def _setup(tmp_path):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    return folder, json.loads((folder / "gusa-project.json").read_text(encoding="utf-8"))


def _reset(folder, template, manifest_bytes: bytes) -> None:
    shutil.copytree(template, folder, dirs_exist_ok=True)
    for p in folder.rglob("*"):
        if p.is_file() and not (template / p.relative_to(folder)).exists():
            p.unlink()
    (folder / "gusa-project.json").write_bytes(manifest_bytes)


def _exercise(folder) -> None:
    """Open, then read, clear and save every mask: each step may only raise GusaError."""
    try:
        project = Project.open(folder, lock="fuzz")
    except GusaError:
        return
    try:
        for rec in list(project.images):
            for step in (
                lambda: project.mask_path(rec.id),
                lambda: project.load_mask(rec.id),
                lambda: project.save_mask(rec.id, np.full((12, 16), 255, np.uint8)),
                lambda: project.save_mask(rec.id, None),
                lambda: project.image_path(rec.id),
            ):
                try:
                    step()
                except GusaError:
                    pass
        try:
            project.save()
        except GusaError:
            pass
    finally:
        project.close()


def _mutate(data: dict, draw) -> dict:
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 4))):
        where = draw(st.sampled_from(["top", "image", "drop"]))
        if where == "top":
            data[draw(st.sampled_from(TOP_KEYS))] = draw(json_values)
        elif where == "image" and isinstance(data.get("images"), list) and data["images"]:
            rec = data["images"][draw(st.integers(0, len(data["images"]) - 1))]
            if isinstance(rec, dict):
                rec[draw(st.sampled_from(IMAGE_KEYS))] = draw(st.sampled_from(HOSTILE) | json_values)
        else:
            data.pop(draw(st.sampled_from(TOP_KEYS)), None)
    return data


def test_mutated_manifests(tmp_path, outside_snapshot):
    folder, base = _setup(tmp_path)
    template = tmp_path / "template"
    shutil.copytree(folder, template)
    check = outside_snapshot(folder)

    @FUZZ
    @given(st.data())
    def run(data):
        mutated = _mutate(base, data.draw)
        _reset(folder, template, json.dumps(mutated).encode("utf-8", "surrogatepass"))
        _exercise(folder)
        check()

    run()


def test_generated_manifest_bytes(tmp_path, outside_snapshot):
    folder, base = _setup(tmp_path)
    template = tmp_path / "template"
    shutil.copytree(folder, template)
    check = outside_snapshot(folder)
    text = json.dumps(base)

    @FUZZ
    @given(st.one_of(
        st.binary(max_size=200),
        st.builds(lambda cut, junk: text[:cut].encode() + junk, st.integers(0, len(text)), st.binary(max_size=8)),
        st.just(b"[" * 100000),
        st.builds(lambda v: json.dumps(v).encode(), json_values),
    ))  # fmt: skip
    def run(raw):
        _reset(folder, template, raw)
        _exercise(folder)
        check()

    run()
