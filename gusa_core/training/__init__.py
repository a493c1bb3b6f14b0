"""Training the GuSA model family with the paper's protocol, cancellable and resumable.

:class:`Trainer` runs the folds of a run (:mod:`.trainer`), each trained by
:class:`~.fold_trainer.FoldTrainer`; :mod:`.setup` checks the settings and
opens the run folder, :mod:`.splits` splits the labelled images, :mod:`.seeding`
owns the random generators. Importing the package does not import torch.
"""

from .config import TrainCallbacks, TrainConfig
from .trainer import Trainer

__all__ = ["TrainConfig", "TrainCallbacks", "Trainer"]
