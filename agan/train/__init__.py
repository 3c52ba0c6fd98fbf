"""Training (paper Sec. 4): the GAN step (``step``), what each model kind computes in it (``recipes``,
``baselines``, ``registry``), the loop (``loop``) with what it watches (``monitor``) and measures
(``validation``), run folders and resuming (``runstate``), several GPUs (``distributed``).
``torchrun --nproc_per_node=K -m agan.train <agan train options>`` runs ``__main__``."""

from agan.train.loop import Trainer, TrainResult, train

__all__ = ["TrainResult", "Trainer", "train"]
