"""A newcomer's mistakes (issue 28): labels checked like images, storage URLs checked before any work, damaged files and bad
numbers named in one line, runs that work from any directory. Each test fails on the code before that issue.
"""
import json, shutil, subprocess, time, warnings
import pandas as pd, pytest
from PIL import Image
from conftest import TLH, tlh, ok, refused

@pytest.fixture(scope='module')
def labelled(tmp_path_factory, hymenoptera):
    "Ten photos of each class in one folder, a labels CSV with a newcomer's mistakes, and `tlh train --csv` on it"
    d = tmp_path_factory.mktemp('labels')
    (d/'data'/'images').mkdir(parents=True)
    rows = []
    for cls in ('ants', 'bees'):
        for f in sorted((hymenoptera/'train'/cls).glob('*.jpg'))[:10]:
            shutil.copy(f, d/'data'/'images'/f.name); rows.append((f'images/{f.name}', cls))
    a0, a1, b0, b1 = rows[0][0], rows[1][0], rows[10][0], rows[11][0]
    rows[1] = (a1, 'ants ')                                # a trailing space: still ants
    rows += [(a0, 'ants'), (f' {a0}', 'ants')]            # two repeats of a row (one with a leading space in the filename)
    rows += [(b0, 'ants')]                                 # b0 is labelled bees above: a conflict
    rows += [(b1, ''), ('images/gone.jpg', 'bees')]        # b1 labelled again, blank; a file that does not exist
    pd.DataFrame(rows, columns=['filename', 'label']).to_csv(d/'data'/'labels.csv', index=False)
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv('TLH_QUICK_N_PER_CLASS', '100')  # quick sizes, every row of the CSV kept
        r = ok(tlh('train', d/'data', '--csv', 'labels.csv', '--quick', '--epochs', '0', '--out', d/'run', cwd=d))
    return d, r, dict(a0=a0, a1=a1, b0=b0, b1=b1)

def test_labels_csv_rows_are_checked_and_recorded(labelled):
    d, r, f = labelled
    skipped = pd.read_csv(d/'run'/'skipped.csv')
    assert skipped.status.value_counts().to_dict() == {'duplicate': 2, 'conflict': 2, 'blank': 1, 'missing': 1}
    reasons = skipped.groupby('status').reason.apply(list)
    assert reasons['duplicate'] == ['row 22 repeats row 2', 'row 23 repeats row 2']       # line numbers of the CSV file
    assert reasons['conflict'] == ['labelled ants and bees (row 12)', 'labelled ants and bees (row 24)']
    assert reasons['blank'] == ['blank label (row 25)'] and reasons['missing'] == ['no such file (row 26)']
    assert 'tlh: warning: labels.csv: 2 duplicate row(s) dropped' in r.stderr and 'different labels excluded' in r.stderr
    assert 'Traceback' not in r.stderr
    assert json.loads((d/'run'/'model.json').read_text())['vocab'] == ['ants', 'bees']     # no class 'ants '
    m = json.loads((d/'run'/'metrics.json').read_text())
    assert m['n_train'] + m['n_valid'] == 19                 # 20 files, less the conflicting one; each used once
    report = (d/'run'/'report.md').read_text()
    assert '## Data' in report and '2 duplicate, 2 conflict, 1 blank, 1 missing' in report

def test_single_image_class_trains_and_is_named(tmp_path):
    from tlhelpers.data import inventory
    for cls, n in (('a', 6), ('b', 6), ('c', 1)):
        (tmp_path/cls).mkdir()
        for i in range(n): Image.new('RGB', (32, 32), (40 * i, 80, 120)).save(tmp_path/cls/f'{i}.png')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        inv = inventory(tmp_path, valid_pct=0.3, n_per_class=0, quiet=True)
    assert inv.items[inv.items.label == 'c'].is_valid.tolist() == [False]
    assert set(inv.items[inv.items.is_valid].label) == {'a', 'b'}
    assert any('Too few images to validate class(es) c (1 image(s))' in str(x.message) for x in w), [str(x.message) for x in w]

def test_hidden_folders_and_loose_files_are_on_record(tmp_path):
    from tlhelpers.data import inventory
    for cls in ('a', 'b'):
        (tmp_path/cls).mkdir()
        for i in range(4): Image.new('RGB', (32, 32), (50 * i, 0, 0)).save(tmp_path/cls/f'{i}.png')
    (tmp_path/'a'/'.thumbs').mkdir()
    for i in range(6): Image.new('RGB', (32, 32)).save(tmp_path/'a'/'.thumbs'/f'{i}.png')
    with warnings.catch_warnings(record=True) as w:
        warnings.simplefilter('always')
        inv = inventory(tmp_path, n_per_class=0, quiet=True)
    assert len(inv.items) == 8 and not any('without images' in str(x.message) for x in w)
    assert inv.skipped.reason.tolist() == ['hidden folder (6 images inside)']

@pytest.mark.parametrize('url, words', [
    ('postgresql//localhost/db', ('looks like a database URL but is malformed',)),
    ('postgresql://tlh:secret@127.0.0.1:1/db', ('Cannot reach the search database', 'postgresql://tlh:***@127.0.0.1:1/db')),
    ('nosuchdb://localhost/db', ("Unknown database 'nosuchdb'",)),
])
def test_storage_urls_fail_at_once_before_any_features(url, words, tmp_path, main, monkeypatch):
    import tlhelpers.search
    def no_features(*a, **k): raise AssertionError('features were computed before the storage was checked')
    monkeypatch.setattr(tlhelpers.search, 'trial_features', no_features)
    monkeypatch.chdir(tmp_path)
    t0 = time.time()
    code, _, err = main('search', 'hymenoptera', '--quick', '--storage', url, '--out', 'search')
    assert code == 2 and all(w in err for w in words) and 'secret' not in err, err
    assert time.time() - t0 < 30 and list(tmp_path.iterdir()) == []  # no local SQLite file under ./postgresql/..., no run folder

def test_damaged_model_file_is_one_line(labelled, tmp_path):
    d, _, _ = labelled
    cut = tmp_path/'cut'; shutil.copytree(d/'run', cut)
    w = (cut/'model.safetensors').read_bytes(); (cut/'model.safetensors').write_bytes(w[:len(w) // 3])
    refused(tlh('predict', cut, d/'data'/'images', '--out', tmp_path/'p.csv', cwd=tmp_path), 'model.safetensors is damaged or incomplete')
    (cut/'model.json').write_text('{"format": "tlhelpers-bun')
    refused(tlh('evaluate', cut, d/'data', '--csv', 'labels.csv', '--quick', cwd=tmp_path), 'model.json is damaged')

@pytest.mark.parametrize('cmd', [
    ['train', 'hymenoptera', '--size', '0'], ['train', 'hymenoptera', '--bs', '0'], ['train', 'hymenoptera', '--epochs', '-1'],
    ['train', 'hymenoptera', '--lr', '0'], ['recipe', 'hymenoptera', '--sizes', '64', '0'], ['recipe', 'hymenoptera', '--epochs', '0'],
    ['search', 'hymenoptera', '--trials', '0'], ['predict', 'run', 'images', '--bs', '-4'], ['serve', 'run', '--port', '70000'],
])
def test_numeric_flags_are_validated(cmd, tmp_path):
    r = subprocess.run([str(TLH), *cmd], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and 'Traceback' not in r.stderr, r.stderr
    assert 'must be at least' in r.stderr or 'must be above' in r.stderr or 'must be at most' in r.stderr, r.stderr
    assert list(tmp_path.iterdir()) == []

def test_export_onnx_from_another_directory_without_the_data(labelled, tmp_path):
    "The run records its data folder resolved; ONNX export (no int8) needs no data at all, and works from any directory"
    d, _, _ = labelled
    run = tmp_path/'run'; shutil.copytree(d/'run', run)
    assert json.loads((run/'metrics.json').read_text())['data'] == str((d/'data').resolve())
    elsewhere = tmp_path/'elsewhere'; elsewhere.mkdir()
    r = ok(tlh('export', run, '--onnx', cwd=elsewhere))
    assert 'training images' in r.stdout and (run/'model.onnx').exists()       # the recorded data found from another directory
    m = json.loads((run/'metrics.json').read_text()); m['data'] = str(tmp_path/'moved away')
    (run/'metrics.json').write_text(json.dumps(m)); (run/'model.onnx').unlink()
    r = ok(tlh('export', run, '--onnx', cwd=elsewhere))
    assert 'random images (the training data is not here)' in r.stdout and (run/'model.onnx').exists()
    refused(tlh('export', run, '--int8', cwd=elsewhere), 'moved away')         # int8 calibration does need images
    o = (run/'model.onnx').read_bytes(); (run/'model.onnx').write_bytes(o[:len(o) // 2])
    refused(tlh('predict', run, d/'data'/'images', '--runtime', 'onnx', '--out', tmp_path/'p.csv', cwd=elsewhere),
            'model.onnx is damaged or not an ONNX model')
