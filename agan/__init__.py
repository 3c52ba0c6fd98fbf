"""agan: an open kit for Attentive GAN raindrop removal (Qian et al., CVPR 2018).

Public API (lower floors never import higher ones):
    agan.config       Config, presets "cpu" and "paper"
    agan.models       Generator (A_1..A_N, S1, S2, O), AttentiveDiscriminator, PlainDiscriminator,
                      the authors' checkpoint importer (agan.models.authors)
    agan.losses       L_ATT, L_M, L_P, L_GAN, L_D (+ L_map)
    agan.cpu          what this CPU can do (bf16, VNNI, AMX; AGAN_CPU_CAP=avx2 acts as an AVX2-only CPU)
    agan.precision    what precision "auto" means, for training and inference
    agan.checkpoint   safe (weights_only) and atomic checkpoint files
    agan.synth        the raindrop synthesiser;  agan.data: Raindrop folders and synthetic pairs
    agan.train        the GAN step and the training loop
    agan.infer        derain (the plain path: Generator.forward itself), the shipped model
    agan.accel        faster forwards of G for agan derain: fast fp32/bf16, int8, agan tune
    agan.release      exporting a run as the shipped model, and its model card
    agan.evaluation   the authors' metric protocol;  agan.experiments: Table 1, figures, agan bench
    agan.viz          plots and the explorer;  agan.cli: the agan command
"""

from agan.cpu import apply_cap_env

apply_cap_env()  # AGAN_CPU_CAP=avx2 caps oneDNN and ATen too: before anything imports torch

from agan.config import PRESETS, Config  # noqa: E402

__version__ = "0.1.0"
__all__ = ["Config", "PRESETS", "__version__", "pick_device"]


def pick_device(device: str = "auto"):
    """``"auto"`` -> CUDA when present, else CPU; anything else is passed to torch.device."""
    import torch

    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)
