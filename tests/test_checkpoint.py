"""Checkpoints load only tensors (no code execution), fail clearly when broken, save atomically."""

import os

import pytest
import torch

from agan.checkpoint import CheckpointError, atomic_save, safe_load


class _Evil:
    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (os.system, (f"touch {self.marker}",))


def test_pickled_code_is_refused_and_not_executed(tmp_path):
    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"G": {"w": torch.zeros(1)}, "payload": _Evil(marker)}, path)
    assert not marker.exists()
    with pytest.raises(CheckpointError, match="evil.pt: refused.*nothing was executed"):
        safe_load(path)
    assert not marker.exists()


@pytest.mark.parametrize("legacy", [False, True])
def test_truncated_checkpoint_gives_clear_error(tmp_path, legacy):
    path = tmp_path / "ck.pt"
    torch.save({"w": torch.randn(1000)}, path, _use_new_zipfile_serialization=not legacy)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 3])
    with pytest.raises(CheckpointError, match="ck.pt: not a readable PyTorch checkpoint"):
        safe_load(path)


def test_empty_and_missing_files(tmp_path):
    (tmp_path / "e.pt").write_bytes(b"")
    with pytest.raises(CheckpointError, match="empty"):
        safe_load(tmp_path / "e.pt")
    with pytest.raises(CheckpointError, match="no such checkpoint"):
        safe_load(tmp_path / "nope.pt")


def test_atomic_save_roundtrip_and_no_partial_file(tmp_path, monkeypatch):
    path = tmp_path / "last.pt"
    atomic_save({"step": 1, "w": torch.ones(3)}, path)
    assert safe_load(path)["step"] == 1

    def crash(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", crash)
    with pytest.raises(RuntimeError, match="disk full"):
        atomic_save({"step": 2}, path)
    monkeypatch.undo()
    assert safe_load(path)["step"] == 1  # the previous checkpoint survives intact
    assert sorted(p.name for p in tmp_path.iterdir()) == ["last.pt"]
