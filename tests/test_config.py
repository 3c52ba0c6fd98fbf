import re

import pytest

from agan.config import PRESETS, Config


def test_paper_preset_has_spec_constants():
    c = Config.preset("paper")
    assert ((c.theta, c.lambdas, c.gamma, c.adv_weight, c.steps, c.width)
            == (0.8, (0.6, 0.8, 1.0), 0.05, 0.01, 4, 1.0))
    assert c.crop_size == 224 and c.vgg_weights == "imagenet" and c.variant == "AA+AD"
    assert c.keep_weight == 0 and c.clean_fraction == 0  # the paper's L_G and data: no "do no harm" additions


def test_presets_roundtrip_json(tmp_path):
    for name in PRESETS:
        c = Config.preset(name)
        c.save(tmp_path / f"{name}.json")
        assert Config.load(tmp_path / f"{name}.json") == c


def test_override_strings_and_errors():
    c = Config.preset("cpu").override(["lr_g=1e-4", "variant=A+D", "lambdas=[1, 1, 1]", "flip=false"])
    assert c.lr_g == 1e-4 and c.variant == "A+D" and c.lambdas == (1, 1, 1) and c.flip is False
    with pytest.raises(ValueError, match="unknown config key 'lrg'"):
        c.override(["lrg=1"])
    with pytest.raises(ValueError, match="key=value"):
        c.override(["lr_g"])
    with pytest.raises(ValueError, match="variant must be one of"):
        c.override(["variant=B"])
    with pytest.raises(ValueError, match="unknown preset"):
        Config.preset("gpu")
    with pytest.raises(ValueError, match="perceptual_weight must be >= 0"):
        Config.preset("cpu", perceptual_weight=-1)
    with pytest.raises(ValueError, match=r"keep_weight must be >= 0 \(0 = no L_keep\), got -0.5"):
        Config.preset("cpu", keep_weight=-0.5)
    with pytest.raises(ValueError, match="divisible by 4"):
        Config.preset("cpu", crop_size=65)
    with pytest.raises(ValueError, match=r"num_workers must be >= 0, or -1 \(auto\), got -2"):
        c.override(["num_workers=-2"])


@pytest.mark.parametrize("item, words", [
    ("width=abc", "'width' expects a number, got 'abc'"),
    ("arn_width=abc", "'arn_width' expects a number or null"),
    ("iterations=1.5", "'iterations' expects an integer, got 1.5"),
    ("seed=true", "'seed' expects an integer, got True"),
    ("flip=1", "'flip' expects true or false, got 1"),
    ("optimizer=3", "'optimizer' expects a string, got 3"),
    ("deterministic=1", "'deterministic' expects true or false, got 1"),
])
def test_override_rejects_values_of_the_wrong_kind(item, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        Config.preset("cpu").override([item])


def test_override_accepts_ints_for_floats_and_null_arn_width():
    cfg = Config.preset("cpu").override(["width=1", "arn_width=null", "lr_g=1"])
    assert cfg.width == 1 and cfg.arn_width is None and cfg.lr_g == 1
