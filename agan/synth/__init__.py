"""The physically based raindrop synthesiser (beyond the paper, whose Sec. 3 gives only the image model
I = (1 - M) * B + R; docs/paper.md#kit-additions), one concept per module:

    params       SynthParams: the physical parameter ranges, validation, overrides, the per-image draws
    renderer     render (the step-by-step procedure) and make_pair (pair i of a seeded synthetic set)
    camera       the camera, the glass pane, the canvas and the thin-lens defocus blur
    drops        drops on the pane: Boolean-model sampling, footprints, per-pixel coverage
    optics       refraction through each drop, total internal reflection, the drop colour
    backgrounds  the clean backgrounds B it draws on (bundled / scikit-image photos, procedural scenes)
    realism      per-image statistics that compare drops of a (rain, clean) pair with real ones
    calibrate    real vs synthetic reports and the realism table over ../shared/real/train_pairs
"""

from agan.synth.params import SynthParams
from agan.synth.renderer import SynthResult, make_pair, render

__all__ = ["SynthParams", "SynthResult", "make_pair", "render"]
