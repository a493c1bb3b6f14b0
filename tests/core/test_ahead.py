"""OneAhead: the next batch is queued on the engine before the current one is collected."""

from __future__ import annotations

import contextlib

import pytest

from gusa_core.inference.ahead import OneAhead


class Engine:
    """Records the order of queueing, pulling and collecting; a batch's predictions are its inputs doubled."""

    def __init__(self):
        self.log: list[tuple[str, str]] = []

    def batches(self, n: int):
        for k in range(n):
            self.log.append(("pull", f"b{k}"))
            yield f"b{k}", [k, k + 10]

    def submit(self, payload, inputs):
        self.log.append(("submit", payload))

        def wait():
            self.log.append(("collect", payload))
            return [2 * v for v in inputs]

        return wait


def test_every_batch_comes_back_in_order_with_the_next_one_already_queued():
    eng = Engine()
    out = list(OneAhead(eng.batches(3), eng.submit))
    assert out == [("b0", [0, 20]), ("b1", [2, 22]), ("b2", [4, 24])]
    assert eng.log == [
        ("pull", "b0"), ("submit", "b0"),
        ("pull", "b1"), ("submit", "b1"), ("collect", "b0"),  # b1 is on the engine before b0 is collected
        ("pull", "b2"), ("submit", "b2"), ("collect", "b1"),
        ("collect", "b2"),
    ]


def test_no_batches():
    eng = Engine()
    ahead = OneAhead(eng.batches(0), eng.submit)
    assert list(ahead) == [] and not ahead.stopped


def test_a_stop_is_checked_before_every_batch_and_the_batch_in_flight_is_waited_for():
    eng = Engine()
    ahead = OneAhead(eng.batches(5), eng.submit, should_stop=lambda: len([e for e in eng.log if e[0] == "collect"]) >= 1)
    out = list(ahead)
    assert [p for p, _ in out] == ["b0"]
    assert ahead.stopped
    submitted = {p for e, p in eng.log if e == "submit"}
    assert submitted == {"b0", "b1"}  # nothing pulled or queued after the stop
    assert submitted == {p for e, p in eng.log if e == "collect"}  # b1 was waited for, not yielded


def test_a_stop_before_the_last_collection():
    eng = Engine()
    calls = []

    def should_stop():
        calls.append(1)
        return len(calls) > 2  # true once both batches are queued, before the last one is collected

    ahead = OneAhead(eng.batches(2), eng.submit, should_stop)
    assert [p for p, _ in ahead] == ["b0"]
    assert ahead.stopped
    assert eng.log[-1] == ("collect", "b1")


@pytest.mark.parametrize("how", ["close", "raise"])
def test_a_consumer_that_leaves_early_still_frees_the_engine(how):
    eng = Engine()
    it = iter(OneAhead(eng.batches(4), eng.submit))
    if how == "close":
        with contextlib.closing(it) as results:
            next(results)
    else:
        with pytest.raises(RuntimeError):
            for _ in it:
                raise RuntimeError("consumer failed")
        it.close()
    assert {p for e, p in eng.log if e == "submit"} == {p for e, p in eng.log if e == "collect"} == {"b0", "b1"}
