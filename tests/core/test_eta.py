"""The training time estimate: warm-up excluded, robust rate, validations, epoch and fold starts counted."""

from __future__ import annotations

import random

import pytest

from gusa_core.training.eta import EtaEstimator, format_remaining


def _simulate(folds=3, epochs=4, batches=20, *, seed=0, build=8.0, warmup=(3.0, 2.0), steady=0.5,
              val=4.0, epoch_start=1.5):
    """Events of a synthetic run: ("batch", done, seconds, fold_start) and ("val", done_vals, seconds).

    Batch times are steady ± 15 % with an occasional 2x one; each fold begins with a model
    build and two warm-up batches; every later epoch's first batch restarts the loaders.
    """
    rng = random.Random(seed)
    events, done, vals = [], 0, 0
    for _fold in range(folds):
        for epoch in range(epochs):
            for b in range(batches):
                if epoch == 0 and b == 0:
                    t = build
                elif epoch == 0 and b <= len(warmup):
                    t = warmup[b - 1]
                elif b == 0:
                    t = epoch_start
                else:
                    t = steady * rng.uniform(0.85, 1.15) * (2.0 if rng.random() < 0.02 else 1.0)
                done += 1
                events.append(("batch", done, t, epoch == 0 and b == 0))
            vals += 1
            events.append(("val", vals, val * rng.uniform(0.95, 1.05), False))
    return events


def _feed(est, event):
    kind, done, seconds, fold_start = event
    if kind == "batch":
        est.add_batch(done, seconds, fold_start=fold_start)
    else:
        est.add_validation(done, seconds)


@pytest.mark.parametrize("seed", [0, 1, 2, 3])
@pytest.mark.parametrize("folds,epochs,batches", [(3, 4, 20), (1, 6, 12), (5, 2, 30)])
def test_estimate_is_within_ten_percent_after_the_first_epoch(seed, folds, epochs, batches):
    events = _simulate(folds, epochs, batches, seed=seed)
    est = EtaEstimator(folds=folds, epochs=epochs, batches=batches, batch_size=4, val_images=16)
    remaining = sum(e[2] for e in events)
    first_val = next(i for i, e in enumerate(events) if e[0] == "val")
    checked = 0
    for i, event in enumerate(events[:-1]):
        _feed(est, event)
        remaining -= event[2]
        if i > first_val:  # the first epoch, its validation and the next epoch's restart measured
            left = est.remaining_seconds()
            assert left is not None
            # 10 %; near the end, where a single slow batch is more than that, 3 s
            assert left == pytest.approx(remaining, rel=0.10, abs=3.0), (i, event)
            checked += 1
    assert checked > 0


def test_warm_up_is_not_extrapolated():
    """A naive mean of the first batches would predict many times the truth."""
    events = _simulate(3, 4, 20)
    est = EtaEstimator(folds=3, epochs=4, batches=20)
    for event in events[:9]:
        _feed(est, event)
    truth = sum(e[2] for e in events[9:])
    naive = sum(e[2] for e in events[:9]) / 9 * (240 - 9)
    assert naive > 1.5 * truth
    # Before the first validation the estimate lacks the validations, but never over-promises
    # from the warm-up.
    assert est.remaining_seconds() < truth


def test_never_a_number_before_enough_steady_batches():
    est = EtaEstimator(folds=2, epochs=3, batches=10, warmup_batches=2, min_batches=5)
    assert est.text() == "estimating…"
    est.add_batch(1, 9.0, fold_start=True)
    for done in (2, 3):  # warm-up
        est.add_batch(done, 3.0)
    for done in range(4, 8):  # four steady batches
        est.add_batch(done, 0.5)
        assert est.remaining_seconds() is None
        assert est.text() == "estimating…"
    est.add_batch(8, 0.5)
    assert est.remaining_seconds() is not None
    assert est.text().startswith("about") or est.text().startswith("less")


def test_unmeasured_batches_are_not_data():
    est = EtaEstimator(folds=1, epochs=1, batches=100, warmup_batches=0, min_batches=3)
    est.add_batch(1, None, fold_start=True)
    for done in range(2, 10):
        est.add_batch(done, None)
    assert est.remaining_seconds() is None


def test_remaining_folds_are_counted_with_their_set_up():
    est = EtaEstimator(folds=3, epochs=1, batches=10, warmup_batches=1, min_batches=3)
    est.add_batch(1, 5.0, fold_start=True)   # build: 4.0 over the rate
    est.add_batch(2, 2.0)                    # warm-up: 1.0 over the rate
    for done in range(3, 11):
        est.add_batch(done, 1.0)
    est.add_validation(1, 3.0)
    # two folds left: 20 batches, 2 validations, 2 fold set-ups of 5 s
    assert est.remaining_seconds() == pytest.approx(20 * 1.0 + 2 * 3.0 + 2 * 5.0)


@pytest.mark.parametrize("seconds,text", [
    (0, "less than a minute left"), (59, "less than a minute left"), (60, "about 1 min left"),
    (150, "about 2 min left"), (9 * 60 + 10, "about 9 min left"), (12 * 60, "about 10 min left"),
    (23 * 60, "about 25 min left"), (58 * 60, "about 1 h left"), (80 * 60, "about 1 h 20 min left"),
    (3 * 3600 + 4 * 60, "about 3 h left"),
])
def test_format_remaining_rounds_like_a_person(seconds, text):
    assert format_remaining(seconds) == text
