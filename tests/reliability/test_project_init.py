"""``gusa init`` lists what would harm the results: unreadable files, contradicting labels."""

from __future__ import annotations

import os

from project_helpers import write_png

from gusa_core.cli.main import main
from gusa_core.project import Project
from gusa_core.project.lock import LOCK_NAME


def test_init_lists_unreadable_files_and_contradicting_labels(tmp_path, outside_snapshot, capsys):
    src = tmp_path / "case" / "Photos"
    write_png(src / "Benign" / "b001.png")
    write_png(src / "Normal" / "n001.png")
    (src / "Normal" / "empty.tif").write_bytes(b"")
    (src / "Benign" / "notes.tif").write_text("this is a text file renamed .tif\n" * 20)
    os.symlink(src / "Normal" / "n001.png", src / "Benign" / "n001-link.png")  # one file, two class folders
    (tmp_path / "case" / "microscopy_ground_truth.csv").write_text("b001.png,Benign\nb001.png,Invasive\n")
    folder = tmp_path / "case" / "project"
    check = outside_snapshot(folder)
    assert main(["init", str(folder), "--images", str(src)]) == 0
    out, err = capsys.readouterr()
    assert "5 images" in out
    assert "4 problem(s)" in err
    assert f"{src / 'Normal' / 'empty.tif'}: empty file (0 bytes)" in err
    assert f"{src / 'Benign' / 'notes.tif'}: unreadable" in err
    assert "b001.png is labelled Invasive but an earlier line says Benign" in err
    assert "n001.png" in err and "labels contradict (Normal vs Benign)" in err
    assert not (folder / LOCK_NAME).exists()
    project = Project.open(folder)
    assert project.image("b001").label == "Invasive"
    check()


def test_init_of_a_clean_folder_warns_nothing(tmp_path, outside_snapshot, capsys):
    src = tmp_path / "case" / "flat"
    write_png(src / "a.png")
    write_png(src / "b.png")
    folder = tmp_path / "case" / "project"
    check = outside_snapshot(folder)
    assert main(["init", str(folder), "--images", str(src)]) == 0
    assert capsys.readouterr().err == ""
    check()
