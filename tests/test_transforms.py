"""The affine transforms A: shapes, known values, composition and the spec parser."""

import pytest
import torch

from seamlib.transforms import Compose, Flip, Rescale, Rotate, Translate, parse_transform


def test_rescale_matches_reference_size_and_corners():
    x = torch.arange(16.0).view(1, 1, 4, 4)
    y = Rescale(0.5)(x)
    assert y.shape == (1, 1, 2, 2)
    # align_corners=True keeps the corner values exactly
    assert y[0, 0, 0, 0] == 0 and y[0, 0, -1, -1] == 15


def test_flip_is_an_involution_and_mirrors_columns():
    x = torch.rand(2, 3, 5, 7)
    assert torch.equal(Flip()(Flip()(x)), x)
    assert torch.equal(Flip()(x)[..., 0], x[..., -1])


def test_rotate_zero_is_identity_and_180_reverses():
    x = torch.rand(1, 2, 6, 6)
    torch.testing.assert_close(Rotate(0)(x), x)
    torch.testing.assert_close(Rotate(180)(x), torch.flip(x, dims=[2, 3]), atol=1e-5, rtol=0)


def test_positive_rotation_is_counter_clockwise():
    """As torchvision: a positive angle turns the content counter-clockwise (top-right corner
    to top-left), like torch.rot90 with k=1 over (H, W)."""
    x = torch.zeros(1, 1, 6, 6)
    x[0, 0, 0, 5] = 1.0  # top-right corner
    y = Rotate(90)(x)
    torch.testing.assert_close(y, torch.rot90(x, 1, dims=[2, 3]), atol=1e-5, rtol=0)
    assert y[0, 0, 0, 0] == pytest.approx(1.0, abs=1e-5)


def test_translate_positive_dy_moves_down():
    x = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    y = Translate(0, 1)(x)
    assert torch.equal(y[..., 1:, :], x[..., :-1, :])
    assert torch.equal(y[..., 0, :], torch.zeros(1, 1, 4))


def test_translate_shifts_and_zero_fills():
    x = torch.arange(1.0, 17.0).view(1, 1, 4, 4)
    y = Translate(1, 0)(x)
    assert torch.equal(y[..., 1:], x[..., :-1])
    assert torch.equal(y[..., 0], torch.zeros(1, 1, 4))


def test_parse_and_compose():
    t = parse_transform("rescale:0.5+flip")
    assert t == Compose((Rescale(0.5), Flip()))
    x = torch.rand(1, 1, 8, 8)
    assert torch.equal(t(x), Flip()(Rescale(0.5)(x)))
    assert parse_transform("translate:3,-2") == Translate(3, -2)
    assert parse_transform("rotate:15") == Rotate(15.0)


@pytest.mark.parametrize("bad", ["zoom:2", "rescale", "translate:1", "flip:3", ""])
def test_parse_rejects_bad_specs_with_the_setting_name(bad):
    with pytest.raises(ValueError, match="loss.transform"):
        parse_transform(bad)


def test_same_transform_applies_to_images_and_cams():
    """A pointwise network commutes with every A: F(A(I)) == A(F(I))."""
    images = torch.rand(2, 3, 16, 16)
    f = torch.nn.Conv2d(3, 21, 1, bias=False)  # zero maps to zero, like the fill
    for spec in ("rescale:0.3", "flip", "rotate:90", "translate:2,3", "rescale:0.5+flip"):
        a = parse_transform(spec)
        torch.testing.assert_close(f(a(images)), a(f(images)), atol=1e-5, rtol=1e-5)
