"Augmentation (notebook 06) and progressive resizing (notebook 07) helpers, on synthetic batches: no training."
import math, pytest, torch
from fastai.vision.all import TensorImage, Pipeline, PadMode
from tlhelpers.augment import ShiftShear, augment_tfms, regularizers, NO_AUG, scaled_presize
from tlhelpers.progressive import parse_sizes
from tlhelpers.core import get_settings

def _square(n=6, size=32):
    x = torch.zeros(n, 3, size, size); x[..., 12:20, 12:20] = 1
    return TensorImage(x)

def _centre(b):
    m, c = b[:, 0], torch.arange(float(b.shape[-1]))
    return torch.stack([(m.sum(1) * c).sum(1), (m.sum(2) * c).sum(1)], 1) / m.sum((1, 2))[:, None]

def test_shift_moves_pixels_by_the_drawn_amount():
    x = _square()
    tfm = ShiftShear(max_shift=0.2, max_shear=0., p=1., pad_mode=PadMode.Zeros)
    y = tfm(x, split_idx=0)
    moved = _centre(y) - _centre(x)
    assert torch.allclose(moved, -tfm.mat[:, :, 2] * 15.5, atol=0.05)
    assert moved.abs().max() > 1

def test_shear_changes_image_but_not_centre_or_area():
    x = _square()
    tfm = ShiftShear(max_shift=0., max_shear=25., p=1., pad_mode=PadMode.Zeros)
    y = tfm(x, split_idx=0)
    tan = tfm.mat[:, 0, 1]
    assert (tan.abs() <= math.tan(math.radians(25)) + 1e-6).all()
    assert ((y - x).abs().sum((1, 2, 3))[tan.abs() > 0.1] > 5).all()
    assert torch.allclose(_centre(y), _centre(x), atol=0.1)

def test_validation_is_never_augmented():
    b = TensorImage(torch.rand(2, 3, 40, 40))
    valid = Pipeline(augment_tfms(size=24, shift=0.2, shear=20., max_rotate=30.), split_idx=1)
    plain = Pipeline(augment_tfms(size=24, **NO_AUG), split_idx=1)
    assert valid(b).shape == (2, 3, 24, 24)
    assert torch.allclose(valid(b), plain(b), atol=1e-5)

def test_regularizers():
    cbs, lf = regularizers(cutmix=True, label_smoothing=0.2)
    assert [type(c).__name__ for c in cbs] == ['CutMix'] and lf.eps == 0.2
    with pytest.raises(ValueError): regularizers(mixup=True, cutmix=True)

def test_sizes_from_settings():
    s = get_settings()
    assert parse_sizes('96, 128 160') == [96, 128, 160]
    assert parse_sizes()[-1] == s.size
    assert scaled_presize(s.size) == s.presize
