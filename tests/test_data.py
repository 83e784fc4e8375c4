"Data: a folder with every kind of bad file is verified, bad files reported and skipped, the rest trains."
import pandas as pd, pytest
from tlhelpers.data import verify_images, get_dls, items_df, quarantine, locate, load_rgb
from tlhelpers.baseline import tl_learner

BAD = {'zero.jpg': 'empty file', 'text.jpg': 'not an image', 'truncated.jpg': 'corrupt or truncated',
       'corrupt.jpg': 'corrupt or truncated', 'tiny.png': 'too small', 'bomb.png': 'too large'}
CONVERTED = ['cmyk.jpg', 'deep16.png', 'rgba.png', 'palette.png', 'grey.jpg']

def test_verify_reports_each_bad_kind(messy_folder):
    rep = verify_images(items_df(messy_folder).fname)
    by_name = {f.name: (s, r) for f, s, r in zip(rep.fname, rep.status, rep.reason)}
    for name, reason in BAD.items():
        assert by_name[name][0] == 'bad' and by_name[name][1].startswith(reason), (name, by_name[name])
    for name in CONVERTED: assert by_name[name][0] == 'converted', (name, by_name[name])
    assert (rep.status == 'ok').sum() == 32

def test_converted_images_are_faithful(messy_folder):
    import numpy as np
    grey = np.asarray(load_rgb(messy_folder/'train'/'bees'/'grey.jpg'), dtype=float).mean()
    deep = np.asarray(load_rgb(messy_folder/'train'/'bees'/'deep16.png'), dtype=float).mean()
    assert abs(grey - deep) < 3, (grey, deep)   # a naive convert('RGB') turns the 16-bit PNG white

def test_bad_files_skipped_and_rest_trains(messy_folder, capsys):
    dls = get_dls(messy_folder, size=32, presize=40, bs=4, n_per_class=0)
    assert 'Skipping 6 bad file(s)' in capsys.readouterr().out
    names = {f.name for f in dls.items.fname}
    assert not names & set(BAD) and set(CONVERTED) <= names
    learn = tl_learner(dls, 'mobilenetv2_100')
    learn.fit(1, 1e-3)
    assert learn.recorder.values[-1][0] > 0   # a finite validation loss

def test_quarantine_moves_never_deletes(messy_folder, tmp_path_factory):
    rep = verify_images(items_df(messy_folder).fname)
    dest = tmp_path_factory.mktemp('q')
    before = sum(1 for p in messy_folder.rglob('*') if p.is_file())
    moved = quarantine(rep, messy_folder, dest)
    assert len(moved) == 6
    after = sum(1 for p in messy_folder.rglob('*') if p.is_file()) + sum(1 for p in dest.rglob('*.*') if p.name != 'quarantine.csv')
    assert after == before
    assert (dest/'train'/'ants'/'zero.jpg').exists()
    assert len(pd.read_csv(dest/'quarantine.csv')) == 6

def test_locate_finds_shared_data_offline(hymenoptera):
    assert (hymenoptera/'train'/'ants').is_dir()
    with pytest.raises(FileNotFoundError, match='neither a folder nor a known dataset'): locate('nonexistent_dataset')
