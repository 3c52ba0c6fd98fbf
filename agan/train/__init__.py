"""Training (paper Sec. 4): the loop (``loop``), what each model kind computes per step (``recipes``,
``baselines``), run folders and resuming (``runstate``), several GPUs (``distributed``).
``torchrun --nproc_per_node=K -m agan.train <agan train options>`` runs ``__main__``."""

from agan.train.loop import Trainer, TrainResult, train

__all__ = ["TrainResult", "Trainer", "train"]
