"""How long the training panel's "Quick look" preset takes on the demo project, measured so that it survives a busy machine.

The preset's text promises a duration, so the promise is measured here. Wall
time on a shared machine says little (other processes take the cores), so
the figure is the **CPU time** of this process (``time.process_time``: every
thread of it), with the network run on ``--threads`` threads (default 1).
With one thread, CPU time is the work itself: an idle machine runs it in
about that wall time on one core, and in no more than that on two (a second
thread only helps). With more threads, OpenMP's spinning counts as CPU time
on a busy machine, so one thread gives the most faithful figure.

Runs the real trainer (``gusa_core.training.Trainer``) with the preset's
settings (taken from ``app.training.training_job.TRAINING_PRESETS``) on the
demo project the app writes for ``gusa-studio --demo`` (``write_demo_project``
defaults), for ``--epochs`` epochs (default 2), and extrapolates to the
preset's epochs: setup + first epoch + (epochs - 1) x the mean later epoch.

    OMP_NUM_THREADS=1 python benchmarks/bench_quick_preset.py [--epochs 2] [--threads 1]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from gusa_core.engines import cpu_info


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--epochs", type=int, default=2, help="epochs to measure (the rest are extrapolated)")
    ap.add_argument("--threads", type=int, default=1, help="torch threads (1: CPU time is the work itself)")
    args = ap.parse_args()
    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))

    import torch

    from app.training.training_job import TRAINING_PRESETS, parse_input_size
    from gusa_core.demo import write_demo_project
    from gusa_core.project import Project
    from gusa_core.training import TrainCallbacks, Trainer, TrainConfig

    torch.set_num_threads(args.threads)
    label, _tip, preset = next(p for p in TRAINING_PRESETS if p[0].startswith("Quick"))
    with tempfile.TemporaryDirectory() as tmp:
        write_demo_project(Path(tmp) / "demo")
        project = Project.open(Path(tmp) / "demo")
        marks: list[tuple[str, float, float]] = []

        class Clock(TrainCallbacks):
            def on_run_start(self, info):
                marks.append(("start", time.process_time(), time.perf_counter()))

            def on_epoch_end(self, rec):
                marks.append((f"epoch {rec['epoch']}", time.process_time(), time.perf_counter()))

        config = TrainConfig(variant="fa-gusa", folds=int(preset["folds"]), epochs=args.epochs,
                             input_size=parse_input_size(preset["input_size"]), batch_size=int(preset["batch_size"]),
                             lr=float(preset["lr"]), pretrained="none", device="cpu")
        cpu0, wall0 = time.process_time(), time.perf_counter()
        Trainer(project, Path(tmp) / "runs" / "bench", config, callbacks=Clock()).run()
        cpu1, wall1 = time.process_time(), time.perf_counter()

    epochs = [m for m in marks if m[0].startswith("epoch")]
    setup_cpu = marks[0][1] - cpu0
    first_cpu = epochs[0][1] - marks[0][1]
    later = [b[1] - a[1] for a, b in zip(epochs, epochs[1:])] or [first_cpu]
    later_cpu = sum(later) / len(later)
    n = int(preset["epochs"])
    estimate = setup_cpu + first_cpu + (n - 1) * later_cpu + (cpu1 - epochs[-1][1])
    print(f"CPU: {cpu_info().model} ({os.cpu_count()} logical CPUs), torch {torch.__version__}, threads {torch.get_num_threads()}")
    print(f"load average during the run: {os.getloadavg()[0]:.1f} (wall times below are inflated by it; CPU times are not)")
    print(f"preset: {label}: {preset}, demo project of {len(project.labelled())} labelled images")
    print(f"measured {len(epochs)} epoch(s): setup {setup_cpu:.1f} s CPU, first epoch {first_cpu:.1f} s CPU, "
          f"later epochs {later_cpu:.1f} s CPU each; total {cpu1 - cpu0:.1f} s CPU in {wall1 - wall0:.1f} s wall")
    print(f"estimate for the preset's {n} epochs: {estimate:.0f} s CPU = {estimate / 60:.1f} min "
          f"(an idle machine: about this long on one core, no longer on two)")


if __name__ == "__main__":
    main()
