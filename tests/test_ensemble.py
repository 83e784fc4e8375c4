"Edge cases of the pure-NumPy ensemble and calibration helpers (tlhelpers.ensemble)"
import numpy as np, pytest, torch
from scipy.special import softmax
from sklearn.tree import DecisionTreeClassifier
from tlhelpers.ensemble import (average_blend, fit_blend_weights, stack, ensemble_table, fit_temperature, apply_temperature,
                                calibration_bins, nll, acc)


@pytest.fixture
def rng():
    "A generator of its own for each test: no test's draws depend on which tests ran before it"
    return np.random.default_rng(1)

def noisy_member(rng, y, c, quality):
    "Probabilities whose arg-max is right with probability `quality`"
    n = len(y)
    pred = np.where(rng.random(n) < quality, y, rng.integers(0, c, n))
    p = rng.random((n, c)) * 0.3
    p[np.arange(n), pred] += 1
    return p / p.sum(1, keepdims=True)

def test_blend_accepts_tensors_and_unnormalised_weights(rng):
    a, b = softmax(rng.normal(size=(10, 4)), 1), softmax(rng.normal(size=(10, 4)), 1)
    out = average_blend([torch.tensor(a), b], weights=[3, 1])
    np.testing.assert_allclose(out, 0.75 * a + 0.25 * b)
    np.testing.assert_allclose(out.sum(1), 1)

def test_single_member_weights_and_stronger_member_weighted_more(rng):
    y = rng.integers(0, 4, 400)
    np.testing.assert_allclose(fit_blend_weights([noisy_member(rng, y, 4, 0.8)], y), [1.0])
    w = fit_blend_weights([noisy_member(rng, y, 4, 0.95), noisy_member(rng, y, 4, 0.5)], y)
    assert w[0] > w[1] and np.isclose(w.sum(), 1)

def test_stack_with_any_sklearn_model_and_small_classes(rng):
    y = np.repeat(np.arange(3), 3)  # 3 items per class: folds shrink to 3
    ps = [noisy_member(rng, y, 3, 0.9), noisy_member(rng, y, 3, 0.9)]
    oof, model = stack(ps, y, model=DecisionTreeClassifier, random_state=0)
    assert oof.shape == (9, 3) and hasattr(model, 'predict_proba')

def test_table_for_one_member_has_no_learnt_blends(rng):
    y = rng.integers(0, 3, 50)
    t = ensemble_table({'only': noisy_member(rng, y, 3, 0.7)}, y)
    assert list(t.index) == ['only', 'average']
    assert t.loc['only', 'accuracy'] == t.loc['average', 'accuracy']

def test_temperature_sharpens_under_confident_model(rng):
    y = rng.integers(0, 3, 2000)
    logits = np.eye(3)[y] * 0.3  # always right, but barely confident
    T = fit_temperature(logits, y, from_probs=False)
    assert T < 0.5 and nll(apply_temperature(logits, T), y) < nll(softmax(logits, 1), y)

def test_calibration_bins_perfect_model_has_zero_ece(rng):
    y = rng.integers(0, 2, 100)
    bins, ece = calibration_bins(np.eye(2)[y], y, n_bins=10)
    assert ece == 0 and bins['count'].sum() == 100 and acc(np.eye(2)[y], y) == 1
