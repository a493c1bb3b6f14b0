"""The progress half of the training panel: bars, ETA, live curves and the log, fed by the trainer's events.

A mixin of :class:`~app.training.training_panel.TrainingPanel`. The trainer's
callbacks arrive here as ``(kind, payload, time)`` events delivered in the GUI
thread by the job's bridge (:mod:`app.training.training_job`).
"""

from __future__ import annotations

from datetime import datetime

from PySide6.QtWidgets import QLabel, QPlainTextEdit, QProgressBar

from app.training.training_plots import TrainingCurvesWidget, format_duration

__all__ = ["TrainingProgressMixin"]


class TrainingProgressMixin:
    """Progress bars, ETA, curves and log (see :class:`~app.training.training_panel.TrainingPanel`)."""

    def _build_progress(self) -> None:
        self.status_label = QLabel("Ready")
        self.status_label.setWordWrap(True)
        self.epoch_bar = QProgressBar()
        self.epoch_bar.setFormat("epoch: %v / %m batches")
        self.epoch_bar.setValue(0)
        self.overall_bar = QProgressBar()
        self.overall_bar.setFormat("overall: %p%")
        self.overall_bar.setValue(0)
        self.eta_label = QLabel("")

        self.curves = TrainingCurvesWidget()
        self.curves.setMinimumHeight(160)
        self.log_view = QPlainTextEdit()
        self.log_view.setReadOnly(True)
        self.log_view.setMaximumBlockCount(5000)
        self.log_view.setPlaceholderText("Training messages and epoch summaries appear here.")

    # --------------------------------------------------- trainer → GUI
    def _reset_progress_state(self) -> None:
        self._t_last = None           # time of the last trainer event
        self._last_kind = None
        self._folds = 1
        self._fold = 0
        self._epoch_key = None        # (fold, epoch) of the batches being counted
        self._batch_in_epoch = 0
        self._epochs_done = 0         # epochs completed in this session (for the overall bar)
        self._batches_done = 0
        self._vals_done = 0
        self._batches = 0
        self._epochs = 1
        self._last_epoch_rec: dict | None = None
        self.batch_count = 0          # batch records received in this session (tests read it)
        self.summary: dict | None = None

    def _on_trainer_event(self, event) -> None:
        kind, payload, t = event
        handler = getattr(self, f"_on_trainer_{kind}", None)
        if handler is not None:
            handler(payload, t)
        if kind != "log":  # a message between two batches does not split the batch's time
            self._t_last = t
            self._last_kind = kind

    def _on_trainer_run_start(self, info: dict, t: float) -> None:
        self._folds = int(info.get("folds") or self._config.get("folds") or 1)
        if self._estimator is not None:
            self._estimator.folds = self._folds
            n_val = info.get("n_val")
            if isinstance(n_val, (list, tuple)) and n_val:
                n_val = sum(n_val) / len(n_val)
            if isinstance(n_val, (int, float)) and n_val > 0:
                self._estimator.val_images = int(round(n_val))
        device = info.get("device")
        if "n_labelled" in info:
            self._log(f"training {info.get('variant', '')} on {device}: {info['n_labelled']} labelled images "
                      f"({info.get('n_masked', '?')} with RoI masks), {self._folds} fold(s), "
                      f"{info.get('epochs', '?')} epochs")
        if device:
            self._set_status(f"Training on {device}…")

    def _on_trainer_fold_start(self, payload, t: float) -> None:
        fold, folds = payload
        self._fold, self._folds = fold, folds
        if self._estimator is not None:
            self._estimator.folds = folds
        self._log(f"fold {fold + 1} of {folds}")

    def _position(self, rec: dict) -> tuple[int, int]:
        """(epochs completed in the run before this record's epoch, epochs per fold).

        Records count folds from 0 and epochs from 1 (as ``gusa train`` prints them).
        """
        fold = int(rec.get("fold", self._fold))
        epochs = int(rec.get("epochs", self._epochs) or 1)
        epoch_index = max(0, int(rec.get("epoch", 1)) - 1)
        return fold * epochs + epoch_index, epochs

    def _on_trainer_batch_end(self, rec: dict, t: float) -> None:
        self.batch_count += 1
        key = (rec.get("fold"), rec.get("epoch"))
        if key != self._epoch_key:
            self._epoch_key = key
            self._batch_in_epoch = 0
        self._batch_in_epoch += 1
        batches = int(rec.get("batches") or max(1, self._batch_in_epoch))
        self._batches = batches
        self._epochs = int(rec.get("epochs") or self._config.get("epochs", 1))
        epochs_before, epochs = self._position(rec)
        done = epochs_before * batches + self._batch_in_epoch
        # The first batch after the run (or a fold) began includes building the model:
        # the estimator keeps it and the warm-up after it out of the rate.
        seconds = t - self._t_last if self._t_last is not None else None
        fold_start = self._last_kind not in ("batch_end", "epoch_end")
        est = self._estimator
        if est is not None:
            est.epochs = epochs
            est.add_batch(done, seconds, batches=batches, fold_start=fold_start)
            est.add_validation(epochs_before, None)  # a resumed run starts with validations done
        self.epoch_bar.setRange(0, batches)
        self.epoch_bar.setValue(min(self._batch_in_epoch, batches))
        self.epoch_bar.setFormat(f"fold {int(rec.get('fold', 0)) + 1}/{self._folds}, "
                                 f"epoch {epochs_before % epochs + 1}/{epochs}: %v / %m batches")
        total = max(1, self._folds * epochs * batches)
        self.overall_bar.setRange(0, total)
        self.overall_bar.setValue(min(done, total))
        self._update_eta()
        loss = rec.get("loss")
        if loss is not None:
            self._set_status(f"Training: batch {self._batch_in_epoch}/{batches}, loss {float(loss):.4f}")
        self.batch_finished.emit(rec)
        if self._batch_in_epoch >= batches:
            self.epoch_bar.setFormat("validating…")

    def _on_trainer_epoch_end(self, rec: dict, t: float) -> None:
        self._last_epoch_rec = rec
        seconds = None
        if self._t_last is not None and self._last_kind == "batch_end":
            seconds = t - self._t_last
        epochs_before, epochs = self._position(rec)
        if self._estimator is not None:
            self._estimator.add_validation(epochs_before + 1, seconds)
        self.curves.add_epoch(rec)
        self._log(self._epoch_summary(rec, epochs_before % epochs + 1, epochs))
        self._update_eta()
        self.epoch_finished.emit(rec)

    def _epoch_summary(self, rec: dict, epoch: int, epochs: int) -> str:
        def fmt(key, spec=".3f"):
            v = rec.get(key)
            return "–" if v is None else format(float(v), spec)

        text = (f"fold {int(rec.get('fold', 0)) + 1} epoch {epoch}/{epochs}: "
                f"train loss {fmt('train_loss')} acc {fmt('train_acc')} | "
                f"val loss {fmt('val_loss')} acc {fmt('val_acc')} AUC {fmt('val_auc')} RoI IoU {fmt('val_miou')}")
        if rec.get("seconds") is not None:
            text += f" | {format_duration(float(rec['seconds']))}"
        if rec.get("best"):
            text += " ★ best, saved"
        return text

    def _on_trainer_fold_end(self, payload, t: float) -> None:
        fold, metrics = payload
        acc = metrics.get("val_acc") if isinstance(metrics, dict) else None
        best = metrics.get("best") if isinstance(metrics, dict) else None
        if acc is None and isinstance(best, dict):
            acc = best.get("val_acc")
        self._log(f"fold {fold + 1} finished" + (f": best val acc {float(acc):.3f}" if acc is not None else ""))

    def _on_trainer_log(self, message: str, t: float) -> None:
        self._log(message)

    def _on_trainer_run_end(self, summary: dict, t: float) -> None:
        pass  # reported when the worker returns (after every other event)

    def _update_eta(self) -> None:
        if self._estimator is not None:
            self.eta_label.setText(self._estimator.text())

    def _set_status(self, text: str) -> None:
        self.status_label.setText(text)

    def _log(self, text: str) -> None:
        self.log_view.appendPlainText(f"{datetime.now():%H:%M:%S}  {text}")

