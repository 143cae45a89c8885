"""Training augmentations of face crops: the sideways turn."""

import pytest

torch = pytest.importorskip("torch")

from dsrter.train.face_augment import turn_faces  # noqa: E402


def _bars(n: int) -> torch.Tensor:
    """Faces of a bright frame: two vertical bars near the left and right edges and one bright row."""
    x = torch.zeros(n, 1, 48, 48)
    x[:, :, 8:40, 4:8] = 1.0
    x[:, :, 8:40, 40:44] = 1.0
    x[:, :, 24, 4:44] = 1.0
    return x


def test_no_share_leaves_faces_as_they_are():
    x = torch.rand(6, 1, 48, 48)
    y = turn_faces(x, torch.Generator().manual_seed(0), share=0.0)
    assert torch.allclose(x, y, atol=1e-5)


def test_a_turned_face_narrows_and_its_sides_differ_in_height():
    x = _bars(64)
    y = turn_faces(x, torch.Generator().manual_seed(1), share=1.0)
    width_before = (x[:, 0, 24] > 0.5).sum(1).float()
    width_after = (y[:, 0, 24] > 0.5).sum(1).float()
    assert (width_after <= width_before).all() and width_after.mean() < width_before.mean() - 2
    left = (y[:, 0, :, :16] > 0.5).any(2).sum(1).float()  # rows the left bar spans
    right = (y[:, 0, :, 32:] > 0.5).any(2).sum(1).float()
    turned = (left - right).abs() >= 2
    assert turned.float().mean() > 0.5  # most faces: one side visibly taller, as a nearer side is
    assert ((left > right) & turned).any() and ((right > left) & turned).any()  # turned both ways


def test_share_sets_how_many_faces_turn():
    x = _bars(400)
    y = turn_faces(x, torch.Generator().manual_seed(2), share=0.3)
    changed = ((y - x).abs().flatten(1).max(1).values > 1e-3).float().mean().item()
    assert 0.2 < changed < 0.4
