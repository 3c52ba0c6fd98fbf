"""Release tooling, outside inference: export a finished run's generator as the kit's default model
(``export``: fp16 safetensors + JSON sidecar) and write its model card (``card``: card fields from the run's
config.json and metrics.jsonl, scores measured on the exported file, MODEL_CARD.md). Loading a release is
plain inference: ``agan.infer.shipped``. Nothing here imports ``agan.accel``.

    from agan.release import export_release, measure_release, render_model_card, run_card_fields
"""

from agan.release.card import (
    machine_description,
    measure_release,
    render_model_card,
    reproduce_command,
    run_card_fields,
)
from agan.release.export import MAX_BYTES, export_release

__all__ = ["MAX_BYTES", "export_release", "machine_description", "measure_release", "render_model_card",
           "reproduce_command", "run_card_fields"]
