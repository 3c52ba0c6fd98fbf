import re

import pytest

from agan.config import PRESETS, Config, implied_by


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
    ("device=3", "'device' expects a string, got 3"),
    ("deterministic=1", "'deterministic' expects true or false, got 1"),
])
def test_override_rejects_values_of_the_wrong_kind(item, words):
    with pytest.raises(ValueError, match=re.escape(words)):
        Config.preset("cpu").override([item])


def test_override_accepts_ints_for_floats_and_null_arn_width():
    cfg = Config.preset("cpu").override(["width=1", "arn_width=null", "lr_g=1"])
    assert cfg.width == 1 and cfg.arn_width is None and cfg.lr_g == 1


@pytest.mark.parametrize("item, words", [
    ("optimizer=sgd", "optimizer must be one of adam | rmsprop, got 'sgd'"),
    ("optimizer=3", "optimizer must be one of adam | rmsprop, got 3"),
    ("precision=fp8", "precision must be one of auto | fp32 | bf16 | fp16, got 'fp8'"),
    ("derain_blend=mean", "derain_blend must be one of none | attention, got 'mean'"),
])
def test_a_choice_is_checked_against_its_literal_type_in_one_line(item, words):
    with pytest.raises(ValueError, match=re.escape(words)) as e:
        Config.preset("cpu").override([item])
    assert "\n" not in str(e.value)


def test_replace_and_override_change_only_what_they_name():
    paper, cpu = Config.preset("paper"), Config.preset("cpu")
    for cfg in (paper.replace(optimizer="rmsprop"), paper.override(["optimizer=rmsprop"])):
        assert (cfg.optimizer, cfg.lr_g, cfg.lr_d, cfg.pretrain_steps) == ("rmsprop", 5e-4, 5e-4, 0)
    assert cpu.replace(vgg_weights="imagenet").perceptual_weight == 0.0


def test_preset_overrides_bring_what_a_choice_implies():
    cfg = Config.preset("paper", optimizer="rmsprop", iterations=1000)
    assert (cfg.lr_g, cfg.lr_d, cfg.pretrain_steps) == (2e-5, 1e-5, 100)
    cfg = Config.preset("paper", optimizer="rmsprop", lr_g=1e-4, pretrain_steps=0)  # a value set wins
    assert (cfg.lr_g, cfg.lr_d, cfg.pretrain_steps) == (1e-4, 1e-5, 0)
    assert Config.preset("cpu", optimizer="adam").lr_g == 1e-3  # the preset's optimiser: nothing implied
    assert Config.preset("cpu", vgg_weights="imagenet").perceptual_weight == 1.0
    assert Config.preset("cpu", vgg_weights="imagenet", perceptual_weight=0.5).perceptual_weight == 0.5
    assert implied_by(Config.preset("cpu"), {"optimizer": "rmsprop", "vgg_weights": "random"}) == {
        "optimizer": {"lr_g": 2e-5, "lr_d": 1e-5, "pretrain_steps": 200},
        "vgg_weights": {"perceptual_weight": 1.0}}


def test_cli_flags_bring_what_they_imply_and_say_so(tmp_path, capsys):
    import argparse

    from agan.cli.train import add_arguments, build_config

    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg, _ = build_config(p.parse_args(["--preset", "paper", "--optimizer", "rmsprop", "--iterations", "1000",
                                        "--vgg-weights", "random", "--out", str(tmp_path / "a")]))
    assert (cfg.lr_g, cfg.lr_d, cfg.pretrain_steps, cfg.perceptual_weight) == (2e-5, 1e-5, 100, 1.0)
    assert capsys.readouterr().out.splitlines() == [
        "--optimizer rmsprop: lr_g=2e-05, lr_d=1e-05, pretrain_steps=100"]  # paper: L_P is on already
    cfg, _ = build_config(p.parse_args(["--vgg-weights", "random", "--set", "optimizer=rmsprop",
                                        "--out", str(tmp_path / "b")]))
    assert (cfg.name, cfg.lr_g, cfg.pretrain_steps, cfg.perceptual_weight) == ("cpu", 2e-5, 200, 1.0)
    assert capsys.readouterr().out.splitlines() == [
        "--vgg-weights random: perceptual_weight=1.0",
        "--set optimizer=rmsprop: lr_g=2e-05, lr_d=1e-05, pretrain_steps=200"]


def _old_layout(cfg: Config) -> dict:
    """``cfg`` as runs saved it before the synthesiser's and the baselines' settings were fields."""
    moved = ("synth", "backgrounds", "l1_weight", "unet_depth", "pix2pix_norm")
    d = cfg.to_dict()
    return {**{k: v for k, v in d.items() if k not in moved}, "extra": {k: d[k] for k in moved}}


def test_an_old_saved_config_loads_through_the_checkpoint_function(tmp_path):
    import json

    import torch

    from agan.checkpoint import CHECKPOINT_FORMAT, config_from_saved, load_saved_config
    from agan.train.runstate import prepare_run_dir

    cfg = Config.preset("cpu", l1_weight=50.0)
    old = _old_layout(cfg)
    with pytest.raises(ValueError, match=re.escape("unknown config keys: ['extra']")):
        Config.from_dict(old)  # current keys only
    assert config_from_saved(old) == cfg
    (tmp_path / "config.json").write_text(json.dumps(old))
    assert load_saved_config(tmp_path / "config.json") == cfg
    with pytest.raises(ValueError, match=re.escape("unknown config keys: ['lr']")):
        config_from_saved({**cfg.to_dict(), "lr": 1})
    (tmp_path / "checkpoints").mkdir()  # a resumed run of the old layout is the same run
    torch.save({"format": CHECKPOINT_FORMAT, "config": old}, tmp_path / "checkpoints" / "last.pt")
    assert prepare_run_dir(tmp_path, cfg, resume=True, overwrite=False, is_main=True)["config"] == old


def test_a_bad_saved_config_is_one_line_naming_the_file(tmp_path):
    """config.json that is not JSON, not an object, or has an unknown key: one ValueError naming the file."""
    from agan.checkpoint import load_saved_config

    for text in ("{not json", "[1, 2]", '{"no_such_field": 1}', '{"extra": [1]}'):
        path = tmp_path / "config.json"
        path.write_text(text)
        with pytest.raises(ValueError) as e:
            load_saved_config(path)
        assert str(e.value).startswith(f"{path}: ") and "\n" not in str(e.value)
