"""Containment: a project reads, writes and deletes its own files only inside its folder."""

from __future__ import annotations

import os

import numpy as np
import pytest
from project_helpers import edit_manifest, make_project, write_png

from gusa_core.errors import ProjectError
from gusa_core.project import Project


def _set(index, **values):
    def change(data):
        data["images"][index].update(values)

    return change


@pytest.mark.parametrize(
    "values, named",
    [
        ({"mask": "../../outside/victim.png"}, "'../../outside/victim.png'"),
        ({"mask": "masks/../../../outside/victim.png"}, "masks/../../../outside/victim.png"),
        ({"id": "../../../outside/pwned"}, "'../../../outside/pwned'"),
        ({"id": "sub/dir"}, "'sub/dir'"),
        ({"id": ".."}, "'..'"),
        ({"id": ".hidden"}, "'.hidden'"),
        ({"id": "back\\slash"}, "back"),
    ],
)
def test_hostile_manifest_is_refused_naming_the_entry(tmp_path, outside_snapshot, values, named):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    edit_manifest(folder, _set(0, **values))
    check = outside_snapshot(folder)
    with pytest.raises(ProjectError) as info:
        Project.open(folder)
    assert named in str(info.value)
    assert "malformed manifest" in str(info.value)
    check()


def test_absolute_mask_path_is_refused(tmp_path, outside_snapshot):
    folder = tmp_path / "case" / "project"
    make_project(folder)
    victim = tmp_path / "outside" / "victim.png"
    edit_manifest(folder, _set(0, mask=str(victim)))
    check = outside_snapshot(folder)
    with pytest.raises(ProjectError, match="must be relative to the project folder"):
        Project.open(folder)
    check()


def test_clearing_a_mask_never_deletes_outside_even_if_a_record_is_tampered_in_memory(tmp_path, outside_snapshot):
    folder = tmp_path / "case" / "project"
    project = make_project(folder)
    check = outside_snapshot(folder)
    rec = project.images[0]
    rec.mask = "../../outside/victim.png"  # what a hostile manifest said before opening refused it
    with pytest.raises(ProjectError, match="outside the project folder"):
        project.save_mask(rec.id, None)
    key, rec.id, rec.mask = rec.id, "../../../outside/pwned", None  # today this wrote ../../../outside/pwned.png
    with pytest.raises(ProjectError, match="not allowed"):
        project.save_mask(key, np.full((12, 16), 255, np.uint8))
    check()


def test_symlinked_masks_folder_pointing_outside_is_refused(tmp_path, outside_snapshot):
    folder = tmp_path / "case" / "project"
    project = make_project(folder, masked=0)
    check = outside_snapshot(folder)
    (folder / "masks").rmdir() if (folder / "masks").exists() else None
    os.symlink(tmp_path / "outside", folder / "masks")
    mask = np.full((12, 16), 255, np.uint8)
    with pytest.raises(ProjectError, match="outside the project folder"):
        project.save_mask(project.images[0].id, mask)
    check()


def test_ids_from_unsafe_stems_are_safe_stable_and_unique(tmp_path, outside_snapshot):
    src = tmp_path / "case" / "sources"
    names = [".hidden.png", "a b.png", "a_b.png", "..png", "ünï cöde.png", "x:y;z.png", "-dash.png",
             "L" * 246 + ".png", "L" * 245 + "!.png"]  # long stems: ids are cut, still unique  # fmt: skip
    paths = [write_png(src / n) for n in names]
    folder = tmp_path / "case" / "project"
    check = outside_snapshot(folder)
    first = Project.create(folder)
    ids = [first.add_image(p).id for p in paths]
    again = Project(tmp_path / "case" / "other")
    assert [again.add_image(p).id for p in paths] == ids  # stable: same files, same ids
    assert len({i.casefold() for i in ids}) == len(ids)
    from gusa_core.project.manifest import check_id

    for image_id in ids:
        check_id(image_id)
        assert not image_id.startswith(".")
    first.save()
    for rec in first.images:  # every id names a mask file inside masks/
        assert first.save_mask(rec.id, np.full((12, 16), 255, np.uint8)).parent == folder / "masks"
    reopened = Project.open(folder)
    assert reopened.ids() == ids
    check()  # the source images outside the project were only read


def test_an_image_outside_the_project_is_read_never_written(tmp_path, outside_snapshot):
    src = write_png(tmp_path / "outside" / "slide.png")
    folder = tmp_path / "case" / "project"
    project = Project.create(folder)
    check = outside_snapshot(folder)
    rec = project.add_image(src, label="Benign")
    assert project.image_path(rec.id) == src
    project.save_mask(rec.id, np.full((12, 16), 255, np.uint8))
    project.save_mask(rec.id, None)
    project.remove_image(rec.id)
    project.save()
    check()
