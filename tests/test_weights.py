"Offline pretrained weights: every backbone with pip-installed weights must know ImageNet."
import pytest, skimage.data
from PIL import Image
from tlhelpers.weights import create_model, imagenet_top5, timm_kwargs, WeightsUnavailable, OFFLINE_WEIGHTS, cached_weights

CAT, COFFEE = Image.fromarray(skimage.data.chelsea()), Image.fromarray(skimage.data.coffee())

@pytest.mark.parametrize('arch', ['tf_efficientnet_lite0', 'tf_efficientnet_lite1', 'tf_efficientnet_lite2', 'mobilenetv2_100'])
def test_offline_backbone_knows_imagenet(arch):
    m = create_model(arch)
    assert imagenet_top5(m, CAT)[0] in range(281, 286)
    assert imagenet_top5(m, COFFEE)[0] == 967

def test_conversion_is_cached_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv('TLH_CACHE', str(tmp_path))
    p = cached_weights('mobilenetv2_100')
    assert p.parent == tmp_path and p.suffix == '.safetensors'
    mtime = p.stat().st_mtime_ns
    assert cached_weights('mobilenetv2_100').stat().st_mtime_ns == mtime
    assert not list(tmp_path.glob('*.tmp*'))

def test_offline_without_weights_names_the_ones_that_work(monkeypatch):
    monkeypatch.setenv('HF_HUB_OFFLINE', '1')
    with pytest.raises(WeightsUnavailable) as e: timm_kwargs('convnext_tiny')
    for arch in OFFLINE_WEIGHTS: assert arch in str(e.value)

def test_unknown_backbone_suggests_close_names():
    with pytest.raises(ValueError, match='Did you mean.*mobilenetv2_100'): timm_kwargs('mobilenetv2_10O')
