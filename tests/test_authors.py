"""The golden import test (docs/paper.md#golden-import-test) and the authors' checkpoint layout."""

import json

import numpy as np
import pytest
import torch

from agan.checkpoint import CheckpointError
from agan.models import Generator
from agan.models.authors import (
    AUTHORS_KEYS,
    export_authors_state_dict,
    import_authors_state_dict,
    load_authors_generator,
)

from .conftest import FIXTURES


def test_layout_matches_fixture():
    layout = json.loads((FIXTURES / "reference_generator_layout.json").read_text())
    assert [k for k, _ in layout["keys"]] == AUTHORS_KEYS
    assert sum(int(np.prod(s)) for _, s in layout["keys"]) == layout["num_parameters"] == 6_244_362


def test_golden_import_float64(authors_sd, reference_outputs):
    G = Generator().double()
    G.load_state_dict(import_authors_state_dict(authors_sd))
    x_bgr = reference_outputs["input"]
    x_rgb = torch.from_numpy(np.ascontiguousarray(x_bgr[:, ::-1]))
    with torch.no_grad():
        out = G(x_rgb)
    assert len(out.attention) == 4
    for t, A_t in enumerate(out.attention):
        np.testing.assert_allclose(A_t.numpy(), reference_outputs["attention"][t], rtol=0, atol=1e-5)
    for ours, ref in ((out.S1, "frame1"), (out.S2, "frame2"), (out.O, "output")):
        bgr = ours.numpy()[:, ::-1]  # back to the authors' channel order
        assert bgr.shape == reference_outputs[ref].shape
        assert np.abs(bgr - reference_outputs[ref]).max() <= 1e-5


def test_golden_fixture_is_not_trivial(reference_outputs):
    # guard against a fixture of zeros making the golden test vacuous
    assert np.abs(reference_outputs["output"]).max() > 0.1
    assert np.std(reference_outputs["attention"][-1]) > 1e-3


def test_export_roundtrip_is_exact(authors_sd):
    ours = import_authors_state_dict(authors_sd)
    back = export_authors_state_dict(ours)
    assert list(back) == AUTHORS_KEYS
    for k in AUTHORS_KEYS:
        assert torch.equal(back[k], authors_sd[k]), k


def test_import_reverses_colour_channels(authors_sd):
    ours = import_authors_state_dict(authors_sd)
    torch.testing.assert_close(ours["arn.head_in.weight"][:, 0], authors_sd["det_conv0.0.weight"][:, 2])
    torch.testing.assert_close(ours["arn.head_in.weight"][:, 3], authors_sd["det_conv0.0.weight"][:, 3])
    torch.testing.assert_close(ours["autoencoder.head_O.bias"], authors_sd["output.0.bias"].flip(0))


@pytest.mark.parametrize("legacy", [False, True])
def test_load_checkpoint_file_zip_and_legacy(tmp_path, authors_sd, legacy):
    path = tmp_path / "gen.pkl"
    sd = {k: v.float() for k, v in authors_sd.items()}
    torch.save(sd, path, _use_new_zipfile_serialization=not legacy)
    G = load_authors_generator(path)
    ref = Generator()
    ref.load_state_dict(import_authors_state_dict(sd))
    x = torch.rand(1, 3, 16, 20)
    with torch.no_grad():
        torch.testing.assert_close(G(x).O, ref(x).O)


def test_load_dataparallel_prefix(tmp_path, authors_sd):
    path = tmp_path / "gen.pkl"
    torch.save({f"module.{k}": v.float() for k, v in authors_sd.items()}, path)
    assert isinstance(load_authors_generator(path), Generator)


def test_wrong_or_broken_files_give_clear_errors(tmp_path, authors_sd):
    bad = tmp_path / "other.pt"
    torch.save({"weight": torch.zeros(2)}, bad)
    with pytest.raises(CheckpointError, match="other.pt: not the authors"):
        load_authors_generator(bad)
    trunc = tmp_path / "trunc.pkl"
    good = tmp_path / "good.pkl"
    torch.save({k: v.float() for k, v in authors_sd.items()}, good)
    trunc.write_bytes(good.read_bytes()[:5000])
    with pytest.raises(CheckpointError, match="trunc.pkl"):
        load_authors_generator(trunc)
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        load_authors_generator(tmp_path / "missing.pkl")
