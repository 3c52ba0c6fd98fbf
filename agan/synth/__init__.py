"""The physically based raindrop synthesiser (beyond the paper, whose Sec. 3 gives only the image model
I = (1 - M) * B + R): drop shapes and optics (``renderer``), the clean backgrounds it draws on
(``backgrounds``) and the statistics that compare its drops with real ones (``calibrate``)."""

from agan.synth.renderer import SynthParams, SynthResult, make_pair, render

__all__ = ["SynthParams", "SynthResult", "make_pair", "render"]
