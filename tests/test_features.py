"Feature cache (tlhelpers.features): hits, invalidation, and a head trained on it lives inside the learner."
import numpy as np, pytest, torch
from tlhelpers.core import setup
from tlhelpers.data import get_dls
from tlhelpers.baseline import tl_learner
from tlhelpers.features import cached_features, fit_head_from_features, features_dir

@pytest.fixture(scope='module')
def learn(hymenoptera):
    setup(bars=False)
    return tl_learner(get_dls(str(hymenoptera), size=32, presize=40, bs=4, n_per_class=3))

@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv('TLH_FEATURES_CACHE', str(tmp_path/'feats'))
    return tmp_path/'feats'

def test_second_call_is_a_cache_hit(learn, cache):
    a = cached_features(learn, size=32)
    assert not a.hit and a.path.parent == cache == features_dir() and a.path.is_file()
    b = cached_features(learn, size=32)
    assert b.hit and np.array_equal(a.x, b.x) and list(b.y) == list(a.y)
    assert a.x.shape == (len(learn.dls.items), learn.model[1][2].num_features)

def test_changed_file_list_or_labels_or_size_invalidates(learn, cache):
    items = learn.dls.items
    a = cached_features(learn, size=32)
    fewer = cached_features(learn, items.iloc[1:], size=32)
    assert not fewer.hit and fewer.key != a.key and len(fewer.x) == len(items) - 1
    relabelled = items.assign(label=items.label.where(items.index != 0, 'bees' if items.label[0] == 'ants' else 'ants'))
    assert not cached_features(learn, relabelled, size=32).hit
    assert not cached_features(learn, size=40).hit
    assert cached_features(learn, size=32).hit
    assert len(list(cache.glob('*.npz'))) == 4

def test_changed_weights_invalidate(learn):
    a = cached_features(learn, size=32)
    w = next(learn.model[0].parameters()); orig = w.detach().clone()
    with torch.no_grad(): w.add_(1.0)
    try: assert not cached_features(learn, size=32).hit
    finally:
        with torch.no_grad(): w.copy_(orig)
    assert cached_features(learn, size=32).key == a.key

def test_head_trained_on_features_is_the_learners(learn):
    feats = cached_features(learn, size=32)
    w0 = learn.model[1][-1].weight.detach().clone()
    body0 = next(learn.model[0].parameters()).detach().clone()
    hl = fit_head_from_features(learn, feats, epochs=1, lr=1e-2)
    assert hl.model[-1].weight is learn.model[1][-1].weight
    assert not torch.equal(w0, learn.model[1][-1].weight)
    assert torch.equal(body0, next(learn.model[0].parameters()))  # the body is untouched
