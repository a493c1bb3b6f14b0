"""An honest remaining-time estimate for a training run, from measured batch and validation times.

The first batches of a fold are slow for reasons that do not recur: the model
is built, the first forward pass allocates its buffers, data-loading workers
and the thread pool spin up. An estimate extrapolated from them over-promises
badly (a one-minute run announced as twenty). :class:`EtaEstimator` therefore

- keeps the first batch of each fold and the next ``warmup_batches`` out of
  the rate, and charges what they cost beyond the steady rate to each fold
  still to start;
- takes the steady time of a batch as the mean of the recent measured ones,
  each capped at three times their median (one long stall does not dominate);
- measures a validation when an epoch ends, and the extra cost of the first
  batch of the next epoch (data loaders restarting), and charges both to
  every epoch left;
- counts the remaining epochs of the remaining folds;
- says "estimating…" until it has ``min_batches`` steady batches.

It is plain Python so that both the desktop panel and a terminal display can
use it.
"""

from __future__ import annotations

from statistics import median

__all__ = ["EtaEstimator", "format_remaining"]


def format_remaining(seconds: float) -> str:
    """Round a remaining time the way a person says it.

    ``"less than a minute left"``, ``"about 4 min left"`` (nearest minute
    below 10 min), ``"about 25 min left"`` (nearest 5 min below an hour),
    ``"about 1 h 20 min left"`` (nearest 10 min).
    """
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return "less than a minute left"
    minutes = seconds / 60.0
    if minutes < 9.5:
        return f"about {max(1, round(minutes))} min left"
    if minutes < 57.5:
        return f"about {max(10, 5 * round(minutes / 5))} min left"
    tens = int(round(minutes / 10))
    hours, rest = divmod(tens * 10, 60)
    return f"about {hours} h left" if rest == 0 else f"about {hours} h {rest} min left"


class EtaEstimator:
    """Remaining time of a run from measured batch and validation times.

    Feed it every training batch (:meth:`add_batch`, with the wall time since
    the previous trainer event) and every epoch end (:meth:`add_validation`,
    with the time since the epoch's last batch).

    Parameters
    ----------
    folds, epochs : int
        Size of the run (may be updated as attributes when the trainer tells).
    batches : int
        Training batches per epoch (updated from the records).
    batch_size : int
    val_images : int
        Validation images per epoch (0 when unknown); used only to guess a
        validation's cost before the first one has been measured.
    warmup_batches : int
        Batches after the first of a fold that are kept out of the rate.
    min_batches : int
        Steady batches needed before a number is shown.
    window : int
        Recent steady batches whose (capped) mean is the rate.
    """

    def __init__(self, folds: int = 1, epochs: int = 1, batches: int = 1, batch_size: int = 1,
                 val_images: int = 0, *, warmup_batches: int = 2, min_batches: int = 5, window: int = 50):
        self.folds = int(folds)
        self.epochs = int(epochs)
        self.batches = max(1, int(batches))
        self.batch_size = max(1, int(batch_size))
        self.val_images = int(val_images)
        self.warmup_batches = int(warmup_batches)
        self.min_batches = int(min_batches)
        self.window = int(window)
        self._steady: list[float] = []       # recent steady batch times
        self._warm: list[float] = []         # times of the current fold's warm-up batches
        self._fold_warm: list[float] = []    # warm-up times of the last completed warm-up
        self._epoch_first: list[float] = []  # first batch of an epoch that is not a fold's first
        self._val_times: list[float] = []
        self._warm_left = 0
        self._done_batches = 0
        self._done_vals = 0

    # ------------------------------------------------------------- feeding
    def add_batch(self, done_batches: int, seconds: float | None, *, batches: int | None = None,
                  fold_start: bool = False) -> None:
        """A training batch ended.

        Parameters
        ----------
        done_batches : int
            Training batches done in the whole run so far, this one included
            (a resumed run starts past zero).
        seconds : float or None
            Wall time since the previous trainer event; ``None`` when not
            measurable.
        batches : int, optional
            Batches per epoch, when the record tells it.
        fold_start : bool
            This is the first batch of a fold (or of a resumed run): its time
            includes building the model, and the next ``warmup_batches`` are
            warm-up too.
        """
        if batches:
            self.batches = max(1, int(batches))
        self._done_batches = int(done_batches)
        measured = seconds is not None and seconds > 0
        if fold_start:
            self._warm = [float(seconds)] if measured else []
            self._warm_left = self.warmup_batches
            return
        if not measured:
            return
        if self._warm_left > 0:
            self._warm.append(float(seconds))
            self._warm_left -= 1
            if self._warm_left == 0:
                self._fold_warm = list(self._warm)
            return
        if self.batches > 1 and (self._done_batches - 1) % self.batches == 0:
            self._epoch_first.append(float(seconds))  # the loaders restarted after a validation
            del self._epoch_first[:-5]
            return
        self._steady.append(float(seconds))
        del self._steady[: -self.window]

    def add_validation(self, done_vals: int, seconds: float | None) -> None:
        """An epoch's validation ended; ``done_vals`` validations are done in the run so far."""
        if seconds is not None and seconds > 0:
            self._val_times.append(float(seconds))
            del self._val_times[:-5]
        self._done_vals = int(done_vals)

    # ------------------------------------------------------------ estimate
    @property
    def measured_batches(self) -> int:
        """Steady batches measured (warm-up and epoch-start batches excluded)."""
        return len(self._steady)

    @property
    def batch_seconds(self) -> float | None:
        """Steady time of a training batch: the mean of the recent ones, each capped at 3x their median.

        Occasional slow batches are real time and stay in the mean; the cap
        keeps one long stall (a laptop waking up) from dominating it.
        """
        if not self._steady:
            return None
        cap = 3.0 * median(self._steady)
        return sum(min(t, cap) for t in self._steady) / len(self._steady)

    @property
    def validation_seconds(self) -> float:
        """Measured (or, before the first validation, guessed) time of one validation.

        The guess prices a validation image at a third of a training image (a
        forward pass without a backward pass).
        """
        if self._val_times:
            return median(self._val_times[-3:])
        return self.val_images * (self.batch_seconds or 0.0) / self.batch_size / 3.0

    @property
    def epoch_overhead_seconds(self) -> float:
        """Extra time of an epoch's first batch over a steady batch (loaders restarting)."""
        rate = self.batch_seconds or 0.0
        return max(0.0, median(self._epoch_first) - rate) if self._epoch_first else 0.0

    @property
    def fold_overhead_seconds(self) -> float:
        """Extra time of a fold's start (model build and warm-up batches) over steady batches."""
        rate = self.batch_seconds or 0.0
        return max(0.0, sum(t - rate for t in self._fold_warm))

    @property
    def total_batches(self) -> int:
        return self.folds * self.epochs * self.batches

    def remaining_seconds(self) -> float | None:
        """Estimated seconds left in the whole run, or ``None`` while there is too little to go on."""
        rate = self.batch_seconds
        if rate is None or self.measured_batches < self.min_batches:
            return None
        left_batches = max(0, self.total_batches - self._done_batches)
        epochs_total = self.folds * self.epochs
        left_vals = max(0, epochs_total - self._done_vals)
        # Every epoch not yet begun restarts its loaders, except those that begin a fold.
        epochs_begun = -(-self._done_batches // self.batches)
        left_epoch_starts = max(0, epochs_total - epochs_begun)
        folds_begun = -(-epochs_begun // self.epochs) if self.epochs else 0
        left_folds = max(0, self.folds - folds_begun)
        left_epoch_starts = max(0, left_epoch_starts - left_folds)
        # The current fold's warm-up batches still to come cost what the last fold's did.
        warm_ahead = self._fold_warm[len(self._fold_warm) - self._warm_left:] if self._warm_left else []
        return (left_batches * rate + left_vals * self.validation_seconds
                + left_epoch_starts * self.epoch_overhead_seconds + left_folds * self.fold_overhead_seconds
                + sum(max(0.0, t - rate) for t in warm_ahead))

    def text(self) -> str:
        """``"about 4 min left"`` or ``"estimating…"``."""
        left = self.remaining_seconds()
        return "estimating…" if left is None else format_remaining(left)
