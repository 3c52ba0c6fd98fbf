"""agan.infer (load_generator, derain, its settings, tiling) and the ``agan derain`` / ``agan eval`` commands.

``derain`` runs G's own forward (the plain path); ``agan derain`` runs the accelerated forward of
``agan.accel``, so tests that compare the command's files with ``derain`` give ``derain`` that same forward
(:func:`cli_forward`)."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image

from agan.checkpoint import CheckpointError, atomic_save
from agan.cli import main
from agan.config import Config
from agan.infer import PAPER, DerainSettings, Loaded, load_generator
from agan.infer.pipeline import _starts, derain, derain_tensor
from agan.models import Generator, GeneratorOutput, build_generator
from agan.models.authors import export_authors_state_dict


def small_cfg(**kw):  # applies G's output as it is (the paper's O), unless a test asks otherwise
    return Config.preset("cpu", **{"width": 0.125, "steps": 2, "derain_size": 0, "derain_smooth": 0.0,
                                   "derain_blend": "none", **kw})


@pytest.fixture(scope="module")
def small():
    torch.manual_seed(0)
    return build_generator(small_cfg()).eval()


@pytest.fixture(scope="module")
def kit_ckpt(tmp_path_factory, small):
    path = tmp_path_factory.mktemp("ckpt") / "small.pt"
    atomic_save({"format": "agan-checkpoint", "config": small_cfg().to_dict(), "G": small.state_dict(),
                 "step": 3}, path)
    return path


def cli_forward(G, precision="fp32"):
    """The forward ``agan derain --precision P`` runs G with (no int8 record in tests: the float path)."""
    from agan.accel import pick_forward

    return pick_forward(G, precision, "cpu")


def same_weights(a, b):
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k].to(sa[k].device)) for k in sa)


# ---------------------------------------------------------------------------------------------- loading
def test_load_kit_checkpoints(tmp_path, small, kit_ckpt):
    loaded = load_generator(kit_ckpt, device="cpu")
    assert isinstance(loaded, Loaded) and loaded.settings == PAPER  # small_cfg: size 0, smooth 0, none
    g, settings = loaded
    assert same_weights(g, small) and g.steps == 2 and not g.training and settings is loaded.settings
    # generator-only format, DDP "module." prefix
    p = tmp_path / "g.pt"
    atomic_save({"format": "agan-generator", "config": small_cfg().to_dict(),
                 "G": {f"module.{k}": v for k, v in small.state_dict().items()}}, p)
    assert same_weights(load_generator(p, "cpu").model, small)
    # ablation A: autoencoder-only generator
    cfg_a = small_cfg(variant="A")
    ga = build_generator(cfg_a)
    atomic_save({"format": "agan-checkpoint", "config": cfg_a.to_dict(), "G": ga.state_dict()}, p)
    assert load_generator(p, "cpu").model.arn is None
    # a baseline generator (returns O only): derained, no attention maps
    cfg_e = small_cfg(model="eigen13")
    atomic_save({"format": "agan-generator", "config": cfg_e.to_dict(),
                 "G": build_generator(cfg_e).state_dict()}, p)
    out, maps = derain(np.zeros((13, 18, 3), np.uint8), weights=p, device="cpu")
    assert out.shape == (13, 18, 3) and maps == []


def test_load_authors_layout_and_bare_state_dicts(tmp_path):
    torch.manual_seed(1)
    paper = Generator()
    p = tmp_path / "gen.pkl"
    torch.save(export_authors_state_dict(paper), p)
    g, settings = load_generator(p, "cpu")
    assert same_weights(g, paper) and settings == PAPER  # no kit config: the paper's protocol
    torch.save(paper.state_dict(), p)  # a bare state dict at paper width
    assert load_generator(p, "cpu").settings == PAPER
    assert same_weights(load_generator(p, "cpu").model, paper)
    narrow = Generator(width=0.125)  # width read from the shapes
    torch.save(narrow.state_dict(), p)
    assert same_weights(load_generator(p, "cpu").model, narrow)
    thin_arn = Generator(width=0.25, arn_width=0.125)  # the ARN's own width too
    torch.save(thin_arn.state_dict(), p)
    assert same_weights(load_generator(p, "cpu").model, thin_arn)


def test_a_release_loads_with_its_settings(tmp_path, small):
    """A kit release (.safetensors + sidecar) loads through load_generator as any other weights file: the
    same ``Loaded(model, settings)``, the settings those of the config stored in it."""
    from agan.infer.shipped import load_release
    from agan.release import export_release

    cfg = small_cfg(derain_size=40, derain_smooth=0.5, derain_blend="attention")
    ckpt = tmp_path / "g.pt"
    atomic_save({"format": "agan-generator", "version": 1, "config": cfg.to_dict(), "step": 1,
                 "G": small.state_dict()}, ckpt)
    release = export_release(ckpt, tmp_path / "weights", {})
    for loaded in (load_generator(release, "cpu"), load_release(release, "cpu")):
        assert isinstance(loaded, Loaded) and type(loaded) is Loaded
        assert loaded.settings == DerainSettings(40, 0.5, "attention") and not loaded.model.training
        assert all(torch.equal(v, small.state_dict()[k].half().float())
                   for k, v in loaded.model.state_dict().items())  # stored as fp16


@pytest.mark.parametrize("content, match", [
    (torch.zeros(3), "not a generator checkpoint"),
    ({"format": "other", "G": {}}, "unknown checkpoint format"),
    ({"format": "agan-checkpoint", "G": {}}, "without 'G' weights or 'config'"),
    ({"optimizer": torch.zeros(2)}, "not a generator checkpoint"),
])
def test_load_errors_name_the_file(tmp_path, content, match):
    p = tmp_path / "bad.pt"
    torch.save(content, p)
    with pytest.raises(CheckpointError, match=match) as e:
        load_generator(p, "cpu")
    assert str(p) in str(e.value) and "\n" not in str(e.value)


def test_load_mismatched_kit_checkpoint(tmp_path, small):
    p = tmp_path / "m.pt"
    atomic_save({"format": "agan-checkpoint", "config": small_cfg(width=0.25).to_dict(),
                 "G": small.state_dict()}, p)
    with pytest.raises(CheckpointError, match="do not match"):
        load_generator(p, "cpu")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_generator(tmp_path / "missing.pt")


# ---------------------------------------------------------------------------------------------- derain
def reference(model, x):
    """Independent: reflect-pad bottom/right to a multiple of 4, run G, crop back."""
    h, w = x.shape[-2:]
    with torch.no_grad():
        out = model(F.pad(x, (0, -w % 4, 0, -h % 4), mode="reflect"))
    return out.O[..., :h, :w], [a[..., :h, :w] for a in out.attention]


def test_derain_kinds_keep_size_and_type(small):
    rng = np.random.default_rng(0)
    img = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    O_ref, A_ref = reference(small, x)

    out, maps = derain(img, model=small)  # uint8 -> uint8
    assert out.dtype == np.uint8 and out.shape == (37, 53, 3)
    assert len(maps) == 2 and all(m.shape == (37, 53) and m.dtype == np.float32 for m in maps)
    np.testing.assert_array_equal(out, np.rint(O_ref[0].clamp(0, 1).permute(1, 2, 0).numpy() * 255))
    np.testing.assert_allclose(maps[1], A_ref[1][0, 0].numpy(), atol=1e-6)

    pil, _ = derain(Image.fromarray(img), model=small)  # PIL -> PIL
    assert isinstance(pil, Image.Image) and pil.size == (53, 37)
    np.testing.assert_array_equal(np.asarray(pil), out)

    f, _ = derain(img.astype(np.float32) / 255, model=small)  # float -> float, clipped
    assert f.dtype == np.float32 and f.min() >= 0 and f.max() <= 1
    raw, _ = derain(img.astype(np.float32) / 255, model=small, clip=False)
    np.testing.assert_allclose(raw, O_ref[0].permute(1, 2, 0).numpy(), atol=1e-6)

    t, tmaps = derain(x[0], model=small)  # (3, H, W) -> (3, H, W), maps (1, H, W)
    assert t.shape == (3, 37, 53) and tmaps[0].shape == (1, 37, 53)
    torch.testing.assert_close(t, O_ref[0].clamp(0, 1), atol=1e-6, rtol=0)
    tb, _ = derain(torch.cat([x, x.flip(-1)]), model=small)  # a batch
    assert tb.shape == (2, 3, 37, 53)
    torch.testing.assert_close(tb[:1], O_ref.clamp(0, 1), atol=1e-6, rtol=0)
    t8, _ = derain((x[0] * 255).round().to(torch.uint8), model=small)
    assert t8.dtype == torch.uint8 and torch.equal(t8.permute(1, 2, 0), torch.from_numpy(out))


def test_derain_with_weights_file_and_bad_inputs(small, kit_ckpt, tmp_path, monkeypatch):
    import agan.infer.shipped

    img = np.random.default_rng(1).integers(0, 256, (21, 30, 3), dtype=np.uint8)
    a, _ = derain(img, weights=kit_ckpt, device="cpu")
    b, _ = derain(img, model=small)
    np.testing.assert_array_equal(a, b)
    assert small.training is False
    # neither model nor weights: the kit's default model, here not installed (installed:
    # tests/test_release.py)
    monkeypatch.setattr(agan.infer.shipped, "DEFAULT_WEIGHTS", tmp_path / "agan-synthetic.safetensors")
    with pytest.raises(FileNotFoundError, match="default model is not installed"):
        derain(img)
    with pytest.raises(ValueError, match="HxWx3"):
        derain(np.zeros((4, 4, 5), np.uint8), model=small)


def test_tile_starts_are_aligned_cover_and_overlap():
    for length in (64, 65, 130, 257, 1000, 1003):
        for tile, overlap in ((64, 16), (128, 32), (100, 0)):
            s = _starts(length, tile, overlap)
            assert all(v % 4 == 0 for v in s) and s[0] == 0
            ends = [min(length, v + tile) for v in s[:-1]] + [length]
            assert ends[-1] == length and all(b - a <= tile + 3 for a, b in zip(s, ends))
            assert all(e - n >= overlap for e, n in zip(ends[:-1], s[1:]))  # overlap with the next tile


class Recorder(torch.nn.Module):
    """A cheap stand-in for G with a known receptive field: O = conv_k(I), A = mean of I. Records tile
    shapes."""

    def __init__(self, k=1):
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 3, k, padding=k // 2)
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape[-2:]))
        return GeneratorOutput([x.mean(1, keepdim=True)], x, x, self.conv(x))


def test_tiles_blend_exactly_for_a_pointwise_model_and_bound_memory():
    torch.manual_seed(0)
    m = Recorder(k=1)
    x = torch.rand(1, 3, 150, 203)
    O0, A0 = derain_tensor(m, x, tile=0)
    m.shapes.clear()
    O1, A1 = derain_tensor(m, x, tile=64, overlap=16)
    assert len(m.shapes) > 4 and max(max(s) for s in m.shapes) <= 68
    torch.testing.assert_close(O1, O0, atol=1e-6, rtol=0)  # normalised blend of equal values
    torch.testing.assert_close(A1[0], A0[0], atol=1e-6, rtol=0)


def test_auto_tiling_above_a_megapixel():
    m = Recorder(k=1)
    derain_tensor(m, torch.rand(1, 3, 1100, 1000), tile=None, overlap=32)
    assert len(m.shapes) > 1 and max(max(s) for s in m.shapes) <= 516
    m.shapes.clear()
    derain_tensor(m, torch.rand(1, 3, 200, 300), tile=None)
    assert m.shapes == [(200, 300)]


def test_tiles_equal_untiled_away_from_seams_for_a_local_model():
    torch.manual_seed(0)
    m = Recorder(k=3)  # zero padding spoils one pixel next to each tile edge
    H, W, tile, ov = 130, 170, 64, 16
    x = torch.rand(1, 3, H, W)
    O0, _ = derain_tensor(m, x, tile=0)
    O1, _ = derain_tensor(m, x, tile=tile, overlap=ov)
    near = torch.zeros(H, W, dtype=torch.bool)  # within 1 pixel of an inner tile edge
    for starts, axis, L in ((_starts(H, tile, ov), 0, H), (_starts(W, tile, ov), 1, W)):
        edges = [s for s in starts if s > 0] + [s + tile for s in starts[:-1]]
        for e in edges:
            sl = slice(max(0, e - 1), e + 1)
            if axis == 0:
                near[sl, :] = True
            else:
                near[:, sl] = True
    diff = (O1 - O0).abs()[0].amax(0)
    assert diff[~near].max() < 1e-5
    assert diff[near].max() > 1e-3  # the test sees the seams it excludes


def test_tiled_generator_close_to_untiled_and_exact_for_one_tile(small):
    torch.manual_seed(0)
    x = torch.rand(1, 3, 37, 53)
    O0, A0 = derain_tensor(small, x, tile=0)
    O1, A1 = derain_tensor(small, x, tile=56)  # one tile covers the image: identical
    assert torch.equal(O0, O1) and all(torch.equal(a, b) for a, b in zip(A0, A1))
    x = torch.rand(1, 3, 96, 120)
    O0, _ = derain_tensor(small, x, tile=0)
    O1, _ = derain_tensor(small, x, tile=64, overlap=16)
    assert (O1 - O0).abs().max() < 2 / 255  # G's receptive field exceeds a tile; seams blended


# ---------------------------------------------------------------------------------------------- CLI
def make_folder(tmp_path):
    rng = np.random.default_rng(2)
    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)).save(d / "1_rain.png")
    Image.fromarray(rng.integers(0, 256, (30, 41, 3), dtype=np.uint8)).save(d / "2_rain.jpg")
    (d / "3_rain.png").write_bytes(b"\x89PNG not really")
    return d


def test_cli_derain_folder_with_a_corrupt_file(tmp_path, kit_ckpt, capsys):
    d = make_folder(tmp_path)
    out = tmp_path / "out"
    rc = main(["derain", str(d), "--out", str(out), "--weights", str(kit_ckpt), "--save-attention",
               "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1 and "1 failed" in err and "3_rain.png" in err
    assert Image.open(out / "1_rain.png").size == (53, 37) and Image.open(out / "2_rain.jpg").format == "JPEG"
    assert Image.open(out / "2_rain.jpg").size == (41, 30)
    assert sorted(p.name for p in (out / "attention").iterdir()) == [
        "1_rain_A1.png", "1_rain_A2.png", "2_rain_A1.png", "2_rain_A2.png"]
    assert not (out / "3_rain.png").exists()

    # no overwrite without --overwrite
    (d / "3_rain.png").unlink()
    (out / "1_rain.png").write_bytes(b"keep me")
    rc = main(["derain", str(d), "--out", str(out), "--weights", str(kit_ckpt), "--device", "cpu"])
    err = capsys.readouterr().err
    assert rc == 1 and "2 skipped" in err and "--overwrite" in err
    assert (out / "1_rain.png").read_bytes() == b"keep me"
    rc = main(["derain", str(d), "--out", str(out), "--weights", str(kit_ckpt), "--device", "cpu",
               "--overwrite"])
    assert rc == 0 and Image.open(out / "1_rain.png").size == (53, 37)

    # never over an input, even with --overwrite
    before = (d / "1_rain.png").read_bytes()
    rc = main(["derain", str(d / "1_rain.png"), "--out", str(d), "--weights", str(kit_ckpt), "--overwrite"])
    assert rc == 1 and "over an input" in capsys.readouterr().err
    assert (d / "1_rain.png").read_bytes() == before


def test_cli_derain_bad_weights_is_a_usage_error(tmp_path, capsys):
    d = make_folder(tmp_path)
    (tmp_path / "w.pt").write_bytes(b"garbage")
    rc = main(["derain", str(d), "--out", str(tmp_path / "o"), "--weights", str(tmp_path / "w.pt")])
    assert rc == 2 and "w.pt" in capsys.readouterr().err


def test_cli_eval_with_weights(tmp_path, kit_ckpt, capsys):
    rng = np.random.default_rng(3)
    for i in (1, 2):
        gt = rng.integers(0, 256, (22, 29, 3), dtype=np.uint8)
        for sub, name in (("gt", "clean"), ("data", "rain")):
            (tmp_path / "ds" / sub).mkdir(parents=True, exist_ok=True)
            Image.fromarray(gt).save(tmp_path / "ds" / sub / f"{i}_{name}.png")
    rc = main(["eval", "--weights", str(kit_ckpt), "--data", str(tmp_path / "ds"), "--device", "cpu",
               "--cast", "wrap", "--json", str(tmp_path / "s.json")])
    out = capsys.readouterr().out
    assert rc == 0 and "ds" in out and "inf" in out and "cast wrap" in out  # input == gt: baseline inf
    assert (tmp_path / "s.json").is_file()


def test_precision_auto_resolves_per_device_and_is_the_cli_default(tmp_path, small, kit_ckpt):
    from agan.images import read_image
    from agan.precision import resolve_precision

    img = np.random.default_rng(5).integers(0, 256, (36, 44, 3), dtype=np.uint8)
    resolved = resolve_precision("auto", "cpu")  # bf16 on CPUs with native bf16, else fp32
    auto, _ = derain(img, model=small, precision="auto")  # the plain forward under autocast
    np.testing.assert_array_equal(auto, derain(img, model=small, precision=resolved)[0])
    with pytest.raises(ValueError, match=r"precision must be one of auto\|fp32\|bf16\|fp16\|int8"):
        derain(img, model=small, precision="fp8")
    with pytest.raises(ValueError, match=r"precision int8 is an accelerated forward: .*agan\.accel") as e:
        derain(img, model=small, precision="int8")  # int8 is agan.accel's, never the plain path's
    assert "\n" not in str(e.value)

    d = tmp_path / "in"
    d.mkdir()
    Image.fromarray(img).save(d / "1_rain.png")
    # the command: auto by default, run by agan.accel's forward (no agan tune record here: the float path)
    cli_auto, _ = derain(img, model=small, forward=cli_forward(small, "auto"))
    cli_auto_same, _ = derain(img, model=small, forward=cli_forward(small, resolved))
    np.testing.assert_array_equal(cli_auto, cli_auto_same)
    cli_fp32, _ = derain(img, model=small, forward=cli_forward(small, "fp32"))
    for args, expected in (([], cli_auto), (["--precision", "fp32"], cli_fp32)):
        out = tmp_path / f"out{len(args)}"
        assert main(["derain", str(d), "--out", str(out), "--weights", str(kit_ckpt), "--device", "cpu",
                     *args]) == 0
        np.testing.assert_array_equal(read_image(out / "1_rain.png"), expected)


# ---------------------------------------------------------------------------------------------- size
class Shift(torch.nn.Module):
    """O = x + 0.1 everywhere; records the sizes it sees."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))
        self.shapes = []

    def forward(self, x):
        self.shapes.append(tuple(x.shape[-2:]))
        return GeneratorOutput([x.mean(1, keepdim=True)], x, x, x + 0.1 + self.p)


def test_size_runs_g_reduced_and_keeps_the_input_detail():
    """O = I + up(G(down(I)) - down(I)): G sees the longer side reduced to `size`; a G that changes nothing
    gives back the input exactly (all its detail), a G that adds 0.1 gives I + 0.1."""
    x = torch.rand(1, 3, 120, 180)
    m = Shift()
    O, maps = derain_tensor(m, x, settings=DerainSettings(size=60))
    assert m.shapes == [(40, 60)] and O.shape == x.shape and maps[0].shape == (1, 1, 120, 180)
    torch.testing.assert_close(O, x + 0.1, atol=1e-6, rtol=0)
    m.shapes.clear()
    O_full, _ = derain_tensor(m, x, settings=DerainSettings(size=0))
    assert m.shapes == [(120, 180)]
    m.shapes.clear()
    derain_tensor(m, x, settings=DerainSettings(size=500))  # never enlarged
    assert m.shapes == [(120, 180)]
    m.shapes.clear()
    derain_tensor(m, x)  # default: the paper's protocol, G on the whole image
    assert m.shapes == [(120, 180)]
    with pytest.raises(ValueError, match="size must be >= 0"):
        DerainSettings(size=-1)
    with pytest.raises(ValueError, match="size must be >= 0"):
        derain(x, model=m, size=-1)


def test_derain_settings_fields_and_the_scale_g_runs_at():
    assert PAPER == DerainSettings() == DerainSettings(0, 0.0, "none")
    cfg = small_cfg(derain_size=480, derain_smooth=2.0, derain_blend="attention")
    s = DerainSettings.of(cfg)
    assert s == DerainSettings(480, 2.0, "attention")
    assert s.but() == s and s.but(size=0) == DerainSettings(0, 2.0, "attention")
    assert s.but(smooth=0, blend="none") == DerainSettings(480, 0.0, "none") and s.size == 480  # frozen copy
    with pytest.raises(AttributeError):
        s.size = 3  # frozen: settings are values
    assert s.run_hw(960, 1440) == (320, 480)  # the longer side reduced to size
    assert s.run_hw(300, 400) == (300, 400) and PAPER.run_hw(960, 1440) == (960, 1440)  # never enlarged
    assert DerainSettings(size=16).run_hw(1, 1000) == (4, 16)  # at least 4 pixels
    for bad in (dict(size=-1), dict(smooth=-0.5), dict(blend="max")):
        with pytest.raises(ValueError, match="size must be >= 0") as e:
            DerainSettings(**bad)
        assert "\n" not in str(e.value)


def test_size_defaults_to_the_checkpoints_derain_size(tmp_path, small):
    p = tmp_path / "g.pt"
    atomic_save({"format": "agan-generator", "config": small_cfg(derain_size=32).to_dict(),
                 "G": small.state_dict()}, p)
    g, settings = load_generator(p, "cpu")
    assert settings == DerainSettings(size=32)
    img = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    out, _ = derain(img, weights=p, device="cpu")  # the weights' own settings
    ref, _ = derain(img, model=g, size=32)
    full, _ = derain(img, model=g, size=0)
    assert np.array_equal(out, ref) and not np.array_equal(out, full)
    assert np.array_equal(derain(img, model=g, settings=settings)[0], out)
    assert np.array_equal(derain(img, model=g)[0], full)  # a module alone: the paper's raw O


def test_cli_derain_size_option(tmp_path, kit_ckpt, capsys):
    img = np.random.default_rng(0).integers(0, 256, (40, 60, 3), dtype=np.uint8)
    Image.fromarray(img).save(tmp_path / "a.png")
    assert main(["derain", str(tmp_path / "a.png"), "--weights", str(kit_ckpt), "--out", str(tmp_path / "o"),
                 "--size", "32", "--precision", "fp32"]) == 0
    g, settings = load_generator(kit_ckpt, "cpu")
    ref, _ = derain(img, model=g, settings=settings, size=32, forward=cli_forward(g))
    assert np.array_equal(np.asarray(Image.open(tmp_path / "o" / "a.png")), ref)
    assert main(["derain", str(tmp_path / "a.png"), "--weights", str(kit_ckpt), "--out", str(tmp_path / "o2"),
                 "--size", "big"]) == 2
    assert ("--size must be model, full or a number" in capsys.readouterr().err
            and not (tmp_path / "o2").exists())


class Dark(torch.nn.Module):
    """O = 0.2 x (a strong change); A_N = 1 on the left half, 0 on the right (attention found drops on the
    left)."""

    def __init__(self):
        super().__init__()
        self.p = torch.nn.Parameter(torch.zeros(()))

    def forward(self, x):
        A = torch.zeros_like(x[:, :1])
        A[..., : x.shape[-1] // 2] = 1.0
        return GeneratorOutput([A], x, x, 0.2 * x + self.p)


def test_blend_attention_keeps_regions_without_drops_and_smooth_blurs_the_change():
    """D = G(I_s) - I_s; blend="attention": D * clip(A_N, 0, 1); smooth: D Gaussian-blurred; O = I + up(D)."""
    x = torch.rand(1, 3, 40, 64)
    O, _ = derain_tensor(Dark(), x, settings=DerainSettings(size=0, blend="attention"))
    torch.testing.assert_close(O[..., :32], 0.2 * x[..., :32])  # left: G's output
    torch.testing.assert_close(O[..., 32:], x[..., 32:])  # right: the input, untouched
    Os, _ = derain_tensor(Dark(), x, settings=DerainSettings(size=0, smooth=3.0))
    D = Os - x
    assert (D.abs().max() > 0.05
            and torch.diff(D, dim=-1).abs().mean() < 0.3 * torch.diff(-0.8 * x, dim=-1).abs().mean())
    # a blur keeps the mean (reflect pad)
    torch.testing.assert_close(D.mean(), (-0.8 * x).mean(), atol=2e-3, rtol=0)
    # all off at full size: the raw O of G, bit for bit
    O_raw, _ = derain_tensor(Dark(), x, settings=DerainSettings(size=0, smooth=0, blend="none"))
    assert torch.equal(O_raw, 0.2 * x)
    with pytest.raises(ValueError, match="blend"):
        derain(x, model=Dark(), blend="max")


def test_derain_config_travels_with_the_checkpoint(tmp_path, small):
    p = tmp_path / "g.pt"
    cfg = small_cfg(derain_size=32, derain_smooth=1.5, derain_blend="attention")
    atomic_save({"format": "agan-generator", "config": cfg.to_dict(), "G": small.state_dict()}, p)
    g, settings = load_generator(p, "cpu")
    assert settings == DerainSettings(32, 1.5, "attention") == DerainSettings.of(cfg)
    assert not hasattr(g, "derain_size")  # the settings travel beside the module, not on it
    img = np.random.default_rng(1).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    a, _ = derain(img, weights=p, device="cpu")
    b, _ = derain(img, model=g, size=32, smooth=1.5, blend="attention")
    c, _ = derain(img, model=g, settings=settings, smooth=0, blend="none")  # fields override settings
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    assert np.array_equal(derain(img, model=g, settings=settings)[0], a)
    assert np.array_equal(c, derain(img, model=g, size=32)[0])
    assert np.array_equal(derain(img, weights=p, device="cpu", size=0, smooth=0, blend="none")[0],
                          derain(img, model=g)[0])  # every field overridden: the paper's O


def test_a_bare_model_runs_the_papers_raw_output(tmp_path, small):
    """A module given to derain() carries no settings: O = G(I) at full size (padded to 4 and cropped back),
    whatever the config it was trained with saved; ``settings`` / ``size`` / ``smooth`` / ``blend`` change
    that."""
    p = tmp_path / "g.pt"
    cfg = small_cfg(derain_size=24, derain_smooth=1.0, derain_blend="attention")
    atomic_save({"format": "agan-generator", "config": cfg.to_dict(), "G": small.state_dict()}, p)
    g, settings = load_generator(p, "cpu")
    img = np.random.default_rng(4).integers(0, 256, (37, 50, 3), dtype=np.uint8)
    x = torch.from_numpy(img).permute(2, 0, 1)[None].float() / 255
    O_ref, A_ref = reference(g, x)
    raw, maps = derain(img.astype(np.float32) / 255, model=g, clip=False)
    np.testing.assert_allclose(raw, O_ref[0].permute(1, 2, 0).numpy(), rtol=0, atol=1e-6)
    np.testing.assert_allclose(maps[-1], A_ref[-1][0, 0].numpy(), rtol=0, atol=1e-6)
    saved, _ = derain(img.astype(np.float32) / 255, model=g, settings=settings, clip=False)
    assert np.abs(saved - raw).max() > 1e-3  # the saved settings do change the output
    sized, _ = derain(img.astype(np.float32) / 255, model=g, size=24, clip=False)
    np.testing.assert_array_equal(
        sized, derain(img.astype(np.float32) / 255, model=g, settings=DerainSettings(size=24), clip=False)[0])
    assert np.abs(sized - raw).max() > 1e-3 and np.abs(sized - saved).max() > 1e-3


def test_derain_runs_the_generators_own_forward(small, kit_ckpt, monkeypatch):
    """With its defaults derain() runs G by ``Generator.forward`` (the code in agan.models.generator): a
    change there is a change of derain's output, for a model and for a weights file alike."""
    from agan.models.generator import Generator as G_cls

    img = np.random.default_rng(6).integers(0, 256, (30, 41, 3), dtype=np.uint8).astype(np.float32) / 255
    before = {"model": derain(img, model=small, clip=False)[0],
              "weights": derain(img, weights=kit_ckpt, device="cpu", clip=False)[0]}
    forward = G_cls.forward
    calls = []

    def shifted(self, x):
        calls.append(tuple(x.shape))
        out = forward(self, x)
        return out._replace(O=out.O + 0.25)

    monkeypatch.setattr(G_cls, "forward", shifted)
    after = {"model": derain(img, model=small, clip=False)[0],
             "weights": derain(img, weights=kit_ckpt, device="cpu", clip=False)[0]}
    assert calls == [(1, 3, 32, 44)] * 2  # padded to a multiple of 4, once per call
    for k in before:
        np.testing.assert_allclose(after[k] - before[k], 0.25, rtol=0, atol=1e-6, err_msg=k)


def test_importing_the_plain_path_imports_no_acceleration():
    code = "import agan.infer, sys; print('agan.accel' in sys.modules)"
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                       cwd=Path(__file__).resolve().parents[1], check=False)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().splitlines()[-1] == "False"


def test_int8_without_its_toolchain_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    """--precision int8 where torchao (or the C++ compiler) is missing: exit 2, one line naming what to
    install, before any weights are loaded or any file is written; the same from Python and agan bench."""
    import agan.accel.toolchain as toolchain
    from agan.accel import pick_forward

    monkeypatch.setattr(toolchain, "unavailable_reason", lambda: "the int8 path needs torchao: pip install x")
    Image.new("RGB", (16, 16)).save(tmp_path / "a.png")
    rc = main(["derain", str(tmp_path / "a.png"), "--out", str(tmp_path / "out"), "--precision", "int8",
               "--weights", str(tmp_path / "absent.pt")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == ["agan derain: error: the int8 path needs torchao: pip install x"]
    assert not (tmp_path / "out").exists()
    G = Generator(width=0.125, steps=2).eval()
    with pytest.raises(ValueError, match="needs torchao"):
        pick_forward(G, "int8", "cpu")  # Python's way to the int8 path
    assert not toolchain.available()
    with pytest.raises(ValueError, match="agan.accel"):  # the plain path has no int8: it says where it is
        derain_tensor(G, torch.rand(1, 3, 16, 16), precision="int8")
    # agan bench lists what it cannot run and why, times the rest, and stops only when nothing is left
    assert main(["bench", "--paths", "plain,int8", "--size", "16x16", "--no-train", "--no-synth",
                 "--no-memory"]) == 0
    out = capsys.readouterr()
    assert "skipped int8: the int8 path needs torchao" in out.err and "needs torchao" in out.out
    assert main(["bench", "--paths", "int8", "--size", "16x16", "--no-train", "--no-synth"]) == 2
    assert "no path can run here: int8: the int8 path needs torchao" in capsys.readouterr().err
    assert main(["tune", "--weights", str(tmp_path / "absent.pt")]) == 2  # before the weights are read
    assert capsys.readouterr().err.strip() == "agan tune: error: the int8 path needs torchao: pip install x"


@pytest.mark.parametrize("shape", [(2, 3, 40, 56), (1, 3, 5, 7)])  # reflect-padded; replicate (too small)
def test_gaussian_equals_a_depthwise_conv(shape):
    """The smoothing blur (shifted views summed in place) is the separable depthwise Gaussian conv."""
    import math

    from agan.infer.pipeline import _gaussian

    torch.manual_seed(0)
    t, sigma = torch.randn(*shape), 2.0
    r = math.ceil(3 * sigma)
    k = torch.exp(-0.5 * (torch.arange(-r, r + 1, dtype=torch.float64) / sigma) ** 2)
    k = (k / k.sum()).float().repeat(3, 1)  # (C, 2r + 1)
    mode = "reflect" if min(shape[-2:]) > r else "replicate"
    ref = F.conv2d(F.pad(t, (r, r, 0, 0), mode=mode), k[:, None, None, :], groups=3)
    ref = F.conv2d(F.pad(ref, (0, 0, r, r), mode=mode), k[:, None, :, None], groups=3)
    assert torch.allclose(_gaussian(t, sigma), ref, atol=1e-6)


def test_derain_tensor_leaves_its_input_alone():
    """The change D is built in place on the call's own tensors, never on the caller's image."""
    torch.manual_seed(0)
    G = build_generator(Config.preset("cpu")).eval()
    x = torch.rand(1, 3, 40, 60)
    before = x.clone()
    for kw in (dict(settings=DerainSettings(size=0, smooth=1.0, blend="attention")),
               dict(settings=DerainSettings(size=32, smooth=0.0, blend="none")),
               dict(settings=DerainSettings(size=0, smooth=1.0, blend="attention"), tile=24, overlap=4)):
        O, _ = derain_tensor(G, x, **kw)
        assert torch.equal(x, before) and O.data_ptr() != x.data_ptr()

    class Identity(torch.nn.Module):  # a model whose output is its input tensor itself
        def __init__(self):
            super().__init__()
            self.anchor = torch.nn.Parameter(torch.zeros(()))

        def forward(self, t):
            return t

    O, _ = derain_tensor(Identity(), x, settings=DerainSettings(size=0, smooth=1.0, blend="attention"))
    assert torch.equal(x, before) and torch.allclose(O, x)  # D = 0: O is the input, x is untouched
