"""Data-parallel training: two CPU processes on gloo, launched by torchrun, train one model."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

WORKER = textwrap.dedent(
    """
    import hashlib, os, sys
    import torch
    torch.set_num_threads(1)
    from gusa_core.project import Project
    from gusa_core.training import TrainCallbacks, TrainConfig, Trainer

    class Count(TrainCallbacks):
        batches = 0
        def on_batch_end(self, rec):
            Count.batches += 1

    cfg = TrainConfig(folds=1, epochs=1, batch_size=2, input_size=(64, 48), device="cpu", pretrained="none", workers=0)
    trainer = Trainer(Project.open(sys.argv[1]), sys.argv[2], cfg, callbacks=Count())
    summary = trainer.run()
    h = hashlib.sha256()
    for k, v in sorted(trainer.last_model.state_dict().items()):
        h.update(k.encode()); h.update(v.detach().cpu().contiguous().numpy().tobytes())
    print(f"RESULT rank={os.environ['RANK']} status={summary['status']} batches={Count.batches} sha={h.hexdigest()}", flush=True)
    """
)


def _checksum(path) -> str:
    import hashlib

    from safetensors.torch import load_file

    h = hashlib.sha256()
    for k, v in sorted(load_file(str(path)).items()):
        h.update(k.encode())
        h.update(v.contiguous().numpy().tobytes())
    return h.hexdigest()


@pytest.mark.timeout(180)
def test_two_process_gloo_training(tmp_path):
    import torch.distributed as dist

    from gusa_core.checkpoint import load_model
    from gusa_core.runs import Run
    from gusa_core.demo import write_demo_project

    if not dist.is_available() or not dist.is_gloo_available():
        pytest.skip("torch.distributed with gloo is not available")
    project = write_demo_project(tmp_path / "demo", seed=0, per_class=2, unlabelled=0, size=(64, 48))
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "demo" / "runs" / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=os.pathsep.join([str(os.getcwd()), os.environ.get("PYTHONPATH", "")]))
    proc = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(script), str(project.folder), str(out)],
        capture_output=True, text=True, timeout=170, env=env,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {}
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            fields = dict(kv.split("=", 1) for kv in line.split()[1:])
            results[int(fields["rank"])] = fields
    assert sorted(results) == [0, 1]
    assert results[0]["status"] == results[1]["status"] == "finished"
    assert results[0]["sha"] == results[1]["sha"]  # identical weights on both ranks
    assert int(results[0]["batches"]) > 0 and int(results[1]["batches"]) == 0  # only rank 0 reports progress
    run = Run(out)
    assert run.status == "finished" and run.meta["world_size"] == 2
    assert [d.name for d in run.fold_dirs()] == ["fold-0"]
    assert _checksum(out / "fold-0" / "last" / "model.safetensors") == results[0]["sha"]
    _, meta = load_model(out / "fold-0")
    assert meta["world_size"] == 2 and len(meta["history"]) == 1
