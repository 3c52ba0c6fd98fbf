import json
from pathlib import Path

import numpy as np
import pytest
import torch

FIXTURES = Path(__file__).parent / "fixtures"
SHARED_REAL = Path(__file__).resolve().parents[2] / "shared" / "real"


def assert_same_training_state(a: dict, b: dict) -> None:
    """Two training checkpoints (``last.pt`` dicts) hold bit-identical G, D, G's moving average (if any),
    optimiser states and RNG states."""
    for key in ("G", "D", "G_ema"):
        assert (a.get(key) is None) == (b.get(key) is None), key
        if a.get(key) is not None:
            assert a[key].keys() == b[key].keys()
            for name in a[key]:
                assert torch.equal(a[key][name], b[key][name]), f"{key}.{name} differs"
    for key in ("opt_G", "opt_D"):
        if a[key] is None:
            assert b[key] is None, key
            continue
        for pid, state in a[key]["state"].items():
            for name, v in state.items():
                assert torch.equal(v, b[key]["state"][pid][name]), f"{key} {pid} {name}"
        assert [g["lr"] for g in a[key]["param_groups"]] == [g["lr"] for g in b[key]["param_groups"]], key
    assert torch.equal(a["rng"]["torch"], b["rng"]["torch"])
    assert torch.equal(a["rng"]["numpy"]["keys"], b["rng"]["numpy"]["keys"])


def closed_form_authors_state_dict() -> dict[str, torch.Tensor]:
    """Every tensor of the authors' layout filled by a closed form, no RNG (float64);
    docs/paper.md#golden-import-test.

    k-th key with n elements: u = frac(|sin(idx*12.9898 + k*78.233)| * 43758.5453),
    value = (2u - 1) * scale; scale = sqrt(6 / (n / shape[0])) for weights, 0.1 for biases.
    """
    layout = json.loads((FIXTURES / "reference_generator_layout.json").read_text())["keys"]
    sd = {}
    for k, (key, shape) in enumerate(layout):
        n = int(np.prod(shape))
        idx = np.arange(n, dtype=np.float64)
        u = np.mod(np.abs(np.sin(idx * 12.9898 + k * 78.233)) * 43758.5453, 1.0)
        scale = np.sqrt(6.0 / (n / shape[0])) if key.endswith("weight") else 0.1
        sd[key] = torch.from_numpy(((2.0 * u - 1.0) * scale).reshape(shape))
    return sd


@pytest.fixture(scope="session")
def authors_sd():
    return closed_form_authors_state_dict()


@pytest.fixture(scope="session")
def reference_outputs():
    return dict(np.load(FIXTURES / "reference_generator_outputs.npz"))


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    np.random.seed(0)


@pytest.fixture(autouse=True, scope="session")
def _no_user_precision_record(tmp_path_factory):
    """``--precision auto`` reads ``agan tune``'s record, and int8 its compiled packages (agan.accel.records,
    agan.accel.aoti: both under $AGAN_CACHE_DIR): tests never see the user's."""
    mp = pytest.MonkeyPatch()
    mp.setenv("AGAN_CACHE_DIR", str(tmp_path_factory.mktemp("agan-cache")))
    yield
    mp.undo()
