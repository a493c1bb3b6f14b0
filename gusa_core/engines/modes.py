"""How OpenVINO spends the cores on one call: one stream over all of them, or several streams side by side.

OpenVINO's CPU plugin runs a compiled model as *streams*. With the LATENCY
hint there is one stream and every core works on each image together; with
THROUGHPUT there are ``N`` streams (OpenVINO picks ``N`` from the cores and
the model; 2 on a 2-core machine) of a share of the cores each, and one
request runs on one stream. Neither wins everywhere. Measured on a 2-core AMD
EPYC (Zen 4, AVX-512 BF16), ``fa-gusa`` at 512x384, bf16, quiet machine
(``benchmarks/bench_engines.py``):

=========  ===========  ============
batch      LATENCY      THROUGHPUT
=========  ===========  ============
1          13.5 img/s   7.7 img/s
4          12.4 img/s   13.3 img/s
=========  ===========  ============

One image on THROUGHPUT runs on one stream while the other streams' cores
wait: ``N`` times fewer cores. A batch that fills every stream equally runs
without the barrier that joins all the cores after each layer in LATENCY
mode, and a stream slowed by other work on its core does not hold the others
back (each image is its own request, taken by whichever stream is free).

The same machine shared with other work turns this round: at a load average
of 15 on its 2 cores, batch 1 ran 2.9 img/s on THROUGHPUT and 2.1 on LATENCY
(``bench_engines.py``, same process). LATENCY's threads meet after every
layer, so one of them descheduled by another process holds the other; a
stream of one thread waits for nobody.

The rule (:func:`choose_mode`), the same on any CPU: THROUGHPUT when the
batch is a multiple of the stream count ``N`` (every stream gets the same
number of images), LATENCY otherwise (fewer images than streams, or a
remainder that would leave streams idle at the end); THROUGHPUT for any batch
while the machine is oversubscribed (1-minute load average above
:data:`OVERSUBSCRIBED` runnable threads per core: this process's own
threads alone stay below it); always LATENCY on one core or when OpenVINO
runs one stream anyway.
"""

from __future__ import annotations

import os

__all__ = ["LATENCY", "THROUGHPUT", "HINTS", "OVERSUBSCRIBED", "choose_mode", "describe_rule", "machine_load"]

LATENCY = "LATENCY"
THROUGHPUT = "THROUGHPUT"
#: ``"auto"`` applies :func:`choose_mode` per call; the others fix one hint.
HINTS = ("auto", LATENCY, THROUGHPUT)
#: Load average per core above which the machine counts as oversubscribed.
OVERSUBSCRIBED = 2.0


def machine_load() -> float | None:
    """The 1-minute load average (runnable threads), or None where the OS does not report one (Windows)."""
    try:
        return float(os.getloadavg()[0])
    except (AttributeError, OSError):
        return None


def choose_mode(batch: int, *, cores: int, streams: int | None, load: float | None = None) -> tuple[str, str]:
    """The hint to run a call of ``batch`` images with, and why.

    Parameters
    ----------
    batch : int
        Images in the call.
    cores : int
        Cores the engine may use (its inference threads).
    streams : int or None
        Streams the THROUGHPUT-compiled model runs (``NUM_STREAMS``); None
        when it is not compiled yet: the rule then asks for it whenever it
        could help (two cores or more and two images or more, or an
        oversubscribed machine).
    load : float, optional
        The machine's 1-minute load average (:func:`machine_load`); None: not known.

    Returns
    -------
    hint : {"LATENCY", "THROUGHPUT"}
    reason : str
    """
    batch, cores = int(batch), int(cores)
    if cores < 2:
        return LATENCY, "one core: one stream"
    busy = load is not None and load > OVERSUBSCRIBED * cores
    if batch < 2 and not busy:
        return LATENCY, "one image: one stream over every core"
    if streams is None:
        return THROUGHPUT, f"{batch} image(s): several streams may share them"
    if streams < 2:
        return LATENCY, "OpenVINO runs one stream on this CPU"
    if busy:
        return THROUGHPUT, (f"load average {load:.1f} on {cores} cores: streams of their own threads, "
                            "none waiting for a descheduled one")
    if batch % streams:
        return LATENCY, (f"{batch} images are not a multiple of {streams} streams: "
                         "one stream over every core")
    return THROUGHPUT, f"{batch} images fill {streams} streams equally"


def describe_rule(cores: int, streams: int | None = None) -> str:
    """The rule in one sentence for the user (``gusa predict --json``, About, the Review panel)."""
    if int(cores) < 2:
        return "one stream on the one core"
    n = f"{streams}" if streams else "N"
    return (f"one stream over all {cores} cores for a batch that is not a multiple of the "
            f"{n} streams OpenVINO's throughput hint runs here, those streams otherwise "
            f"(and for every batch while the load average is above {OVERSUBSCRIBED:g} per core)")
