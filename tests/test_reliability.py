"Bad folders and bad requests get a clear message or a reported skip; the same seed gives the same results."
import pytest
from PIL import Image
from tlhelpers.core import setup
from tlhelpers.data import get_dls, items_df
from tlhelpers.baseline import tl_learner, evaluate

def _tree(root, spec, size=(40, 32)):
    "Make class folders of tiny solid images: spec = {relative_dir: n_images}"
    for rel, n in spec.items():
        d = root/rel; d.mkdir(parents=True, exist_ok=True)
        for i in range(n): Image.new('RGB', size, (40 * i % 255, 100, 200)).save(d/f'img {i}.jpg')
    return root

def test_unicode_spaces_and_nested_folders(tmp_path):
    root = _tree(tmp_path/'mes photos é', {'chats noirs/2024 été': 4, 'chiens/sub dir/deeper': 4})
    df = items_df(root)
    assert sorted(df.label.unique()) == ['chats noirs', 'chiens'] and len(df) == 8
    dls = get_dls(root, size=32, presize=32, bs=2, n_per_class=0, valid_pct=0.5)
    assert dls.vocab == ['chats noirs', 'chiens'] and len(dls.valid_ds) == 4

def test_empty_class_folder_is_reported(tmp_path):
    root = _tree(tmp_path, {'a': 3, 'b': 3}); (root/'c').mkdir()
    with pytest.warns(UserWarning, match='without images skipped: c'): df = items_df(root)
    assert set(df.label) == {'a', 'b'}

def test_single_class_is_a_clear_error(tmp_path):
    root = _tree(tmp_path, {'only': 6})
    with pytest.raises(ValueError, match='at least 2 classes'): get_dls(root, size=32, bs=2, n_per_class=0)

def test_imbalance_warns_and_offers_class_weights(tmp_path):
    root = _tree(tmp_path, {'many': 30, 'few': 3})
    with pytest.warns(UserWarning, match='imbalanced.*class_weights'): get_dls(root, size=32, bs=4, n_per_class=0, valid_pct=0.3)

def test_missing_valid_split_gets_a_seeded_stratified_one(tmp_path):
    root = _tree(tmp_path, {'train/a': 10, 'train/b': 10})
    d1 = get_dls(root, size=32, bs=4, n_per_class=0, valid_pct=0.2, seed=3)
    d2 = get_dls(root, size=32, bs=4, n_per_class=0, valid_pct=0.2, seed=3)
    assert sorted(d1.vocab) == ['a', 'b']
    assert d1.items.is_valid.sum() == 4 and d1.items[d1.items.is_valid].label.value_counts().tolist() == [2, 2]
    assert d1.items.fname.tolist() == d2.items.fname.tolist() and d1.items.is_valid.tolist() == d2.items.is_valid.tolist()

def test_class_only_in_valid_is_a_clear_error(tmp_path):
    root = _tree(tmp_path, {'train/a': 3, 'train/b': 3, 'val/a': 2, 'val/c': 2})
    with pytest.raises(ValueError, match='only in the validation split.*c'): get_dls(root, size=32, bs=2, n_per_class=0)

def test_nonexistent_path_is_a_clear_error():
    with pytest.raises(FileNotFoundError, match='neither a folder nor a known dataset'): get_dls('/no/such/folder')

def test_batch_size_larger_than_data_is_shrunk(tmp_path, capsys):
    root = _tree(tmp_path, {'a': 4, 'b': 4})
    dls = get_dls(root, size=32, bs=64, n_per_class=0, valid_pct=0.25)
    assert 'larger than the 6 training images' in capsys.readouterr().out
    assert dls.train.bs == 6 and len(dls.train) == 1

def test_unknown_backbone_suggests(hymenoptera):
    dls = get_dls('hymenoptera', size=32, bs=4, n_per_class=4)
    with pytest.raises(ValueError, match="Unknown backbone 'mobilenet_v2_100'.*mobilenetv2_100"): tl_learner(dls, 'mobilenet_v2_100')

def test_same_seed_same_split_and_metrics(hymenoptera):
    def run():
        setup(seed=7, bars=False)
        dls = get_dls('hymenoptera', size=48, presize=56, bs=8, n_per_class=8)
        learn = tl_learner(dls, 'mobilenetv2_100')
        learn.fit_one_cycle(1, 1e-3)
        return dls.items.fname.tolist(), evaluate(learn)[0]
    (f1, m1), (f2, m2) = run(), run()
    assert f1 == f2
    for k in m1: assert abs(m1[k] - m2[k]) <= 1e-6, (k, m1[k], m2[k])   # bit-identical on CPU with the same threads

def test_image_size_that_cannot_fit_is_a_clear_error(tmp_path):
    root = _tree(tmp_path, {'a': 4, 'b': 4})
    with pytest.raises(ValueError, match=r'Image size 30000 px with batch size 4 needs at least .* GiB'):
        get_dls(root, size=30000, bs=4, n_per_class=0, valid_pct=0.25)
