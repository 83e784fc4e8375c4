"""End-to-end tests of the `tlh` command on a small copy of the ants/bees photos.

The workflows (train -> predict -> evaluate, recipe) run `tlh` as a subprocess, exactly as a user would; the
error paths call `tlhelpers.cli.main` in-process (same code, same exit code and message) to save the start-up time.
"""
import json, shutil
from pathlib import Path
import numpy as np, pandas as pd, pytest
from PIL import Image
from tlhelpers.core import get_settings

from conftest import tlh, ok, refused  # the shared helpers (and the `main` fixture)

@pytest.fixture(scope='module')
def work(tmp_path_factory, hymenoptera):
    "A small class-per-folder tree (8 photos per class and split), unlabelled photos to predict, and `tlh train` on the tree"
    d = tmp_path_factory.mktemp('cli')
    for split in ('train', 'val'):
        for cls in ('ants', 'bees'):
            (d/'data'/split/cls).mkdir(parents=True)
            for f in sorted((hymenoptera/split/cls).glob('*.jpg'))[:8]: shutil.copy(f, d/'data'/split/cls)
    new = d/'new'; shutil.copytree(d/'data'/'val', new)
    src = Image.open(sorted(new.rglob('*.jpg'))[0])
    src.convert('L').save(new/'grey.png'); src.convert('RGBA').save(new/'rgba.png')
    (new/'broken.jpg').write_text('not an image')
    r = ok(tlh('train', d/'data', '--quick', '--out', d/'runs'/'train', cwd=d))
    assert 'accuracy=' in r.stdout
    return d

def test_train_writes_run_folder(work):
    run = work/'runs'/'train'
    assert {'metrics.json', 'confusion.png', 'cams.png', 'report.md', 'model.safetensors', 'model.json', 'learner.pkl'} <= {p.name for p in run.iterdir()}
    m = json.loads((run/'metrics.json').read_text())
    assert 0 <= m['accuracy'] <= 1 and m['n_valid'] == 16
    cfg = json.loads((run/'model.json').read_text())
    assert cfg['vocab'] == ['ants', 'bees'] and cfg['n_out'] == 2 and len(cfg['mean']) == 3
    assert '| ants |' in (run/'report.md').read_text() and '![Grad-CAM](cams.png)' in (run/'report.md').read_text()

def test_train_size_reaches_the_head_stage(work, tmp_path, main, monkeypatch):
    "`--size` is every stage's size: the head's cached features are extracted at it too, not at the size setting"
    monkeypatch.setenv('TLH_FEATURES_CACHE', str(tmp_path/'features'))
    code, out, err = main('train', work/'data', '--size', 96, '--epochs', 0, '--out', tmp_path/'run')
    assert code == 0, err
    assert [p.stem.split('_')[-2] for p in (tmp_path/'features').glob('*.npz')] == ['96px'], sorted((tmp_path/'features').iterdir())

def test_predict_csv(work):
    r = ok(tlh('predict', work/'runs'/'train', work/'new', cwd=work))
    assert 'broken.jpg' in r.stdout  # reported and skipped
    df = pd.read_csv(work/'preds.csv')
    assert df.columns.tolist() == ['filename', 'label', 'ants', 'bees']
    expected = [str(p.relative_to(work/'new')) for p in (work/'new').rglob('*') if p.is_file() and p.name != 'broken.jpg']
    assert sorted(df.filename) == sorted(expected) and len(df) == 18  # greyscale and RGBA images included
    assert set(df.label) <= {'ants', 'bees'}
    np.testing.assert_allclose(df[['ants', 'bees']].sum(axis=1), 1, atol=1e-5)
    assert (df[['ants', 'bees']].idxmax(axis=1) == df.label).all()

def test_pickle_needs_opt_in(work, tmp_path, main):
    pkl = work/'runs'/'train'/'learner.pkl'
    code, _, err = main('predict', pkl, work/'new')
    assert code == 2 and err.startswith('tlh: error:') and 'arbitrary code' in err and '--unsafe-pickle' in err
    only = tmp_path/'only_pickle'; only.mkdir(); shutil.copy(pkl, only)
    assert main('predict', only, work/'new')[0] == 2
    assert main('predict', pkl, work/'data'/'val', '--unsafe-pickle', '--out', tmp_path/'p.csv')[0] == 0
    unpickled = pd.read_csv(tmp_path/'p.csv').set_index('filename')
    assert len(unpickled) == 16 and set(unpickled.label) <= {'ants', 'bees'}

def test_evaluate(work):
    r = ok(tlh('evaluate', work/'runs'/'train', work/'data', '--quick', '--out', work/'runs'/'eval', cwd=work))
    m = json.loads((work/'runs'/'eval'/'metrics.json').read_text())
    train = json.loads((work/'runs'/'train'/'metrics.json').read_text())
    assert m['n_images'] == 16 and abs(m['accuracy'] - train['accuracy']) < 1e-6  # same model, same validation images
    assert {'confusion.png', 'report.md', 'per_class.csv'} <= {p.name for p in (work/'runs'/'eval').iterdir()}
    assert f"accuracy={m['accuracy']:.4f}" in r.stdout

def test_evaluate_csv_labels(work, tmp_path, main):
    rows = []
    for f in sorted((work/'data'/'val').rglob('*.jpg')):
        shutil.copy(f, tmp_path/f'{f.parent.name}_{f.name}'); rows.append((f'{f.parent.name}_{f.name}', f.parent.name))
    pd.DataFrame(rows, columns=['filename', 'label']).to_csv(tmp_path/'labels.csv', index=False)
    assert main('evaluate', work/'runs'/'train', tmp_path, '--csv', tmp_path/'labels.csv', '--out', tmp_path/'eval')[0] == 0
    m = json.loads((tmp_path/'eval'/'metrics.json').read_text())
    assert m['n_images'] == 16
    assert abs(m['accuracy'] - json.loads((work/'runs'/'train'/'metrics.json').read_text())['accuracy']) < 1e-6

def test_evaluate_other_classes_is_clear_error(work, tmp_path):
    for c in ('cats', 'dogs'):
        (tmp_path/c).mkdir(); shutil.copy(sorted((work/'data'/'val'/'ants').glob('*.jpg'))[0], tmp_path/c)
    refused(tlh('evaluate', work/'runs'/'train', tmp_path, '--out', tmp_path/'eval', cwd=work), 'cats, dogs', 'ants, bees')
    assert not (tmp_path/'eval').exists()

def test_missing_inputs_are_clear_errors(work, tmp_path, main):
    code, _, err = main('predict', tmp_path/'nothing', work/'new')
    assert code == 2 and 'No such model' in err
    code, _, err = main('train', tmp_path/'nothing', '--quick', '--out', tmp_path/'r')
    assert code == 2 and 'nothing' in err and not (tmp_path/'r').exists()

def test_recipe_never_overwrites(work):
    before = (work/'runs'/'train'/'metrics.json').read_text()
    r = ok(tlh('recipe', work/'data', '--quick', '--sizes', '48', '--ensemble', '--out', work/'runs'/'train', cwd=work))
    run = work/'runs'/'train-2'
    assert f'run={run}' in r.stdout and 'test_accuracy=' in r.stdout
    assert (work/'runs'/'train'/'metrics.json').read_text() == before
    stages = pd.read_csv(run/'stages.csv').set_index('stage')
    arch2 = get_settings().recipe_ensemble_arch
    assert stages.index.tolist() == ['baseline', 'fine-tune 48px', f'{arch2} baseline', f'{arch2} fine-tune 48px', 'mirror TTA 48px',
                                     f'ensemble + {arch2}']
    assert {'lr_find.png', 'stages.png', 'report.md', 'model.safetensors', 'model.json', 'skipped.csv'} <= {p.name for p in run.iterdir()}
    assert 'cams.png' in {p.name for p in run.iterdir()} and '## Where the model looked' in (run/'report.md').read_text()
    assert stages.loc['baseline', 'verdict'] == 'baseline'  # every stage paired with the baseline on the same validation images
    rest = stages.drop('baseline')
    assert rest.verdict.isin(['better', 'worse', 'within noise']).all() and (rest.lo <= rest.hi).all()
    m = json.loads((run/'metrics.json').read_text())
    assert set(m['stages']) == set(stages.index)
    chosen = stages.loc[m['chosen_stage']]
    assert m['valid']['accuracy'] == chosen.valid_accuracy == stages.valid_accuracy[['baseline', 'fine-tune 48px', 'mirror TTA 48px',
                                                                                       f'ensemble + {arch2}']].max()
    assert m['accuracy'] == m['test']['accuracy'] and m['n_test'] == m['n_images'] > 0
    from tlhelpers.inference import load_model
    assert load_model(run).vocab == ['ants', 'bees']

def test_recipe_reports_skipped_files_and_resolves_csv(messy_folder, tmp_path, main, monkeypatch):
    "Every skipped, converted and ignored file is in the run folder's report; --csv is found in the working directory, then in DATA"
    monkeypatch.setenv('TLH_QUICK_N_PER_CLASS', '100')   # quick sizes, but every file of the folder kept
    (messy_folder/'notes.txt').write_text('not an image')
    rows = [(str(f.relative_to(messy_folder)), f.parent.name) for f in sorted(messy_folder.rglob('*')) if f.suffix in ('.jpg', '.png')]
    pd.DataFrame(rows, columns=['filename', 'label']).to_csv(messy_folder/'labels.csv', index=False)
    code, out, err = main('recipe', messy_folder, '--csv', 'labels.csv', '--quick', '--sizes', '32', '--out', tmp_path/'run')
    assert code == 0, err
    assert 'Skipping 6 bad file(s)' in out and '1 empty file (e.g. zero.jpg)' in out and 'Ignored 1 non-image file(s): notes.txt' in out
    skipped = pd.read_csv(tmp_path/'run'/'skipped.csv')
    assert skipped.status.value_counts().to_dict() == {'bad': 6, 'converted': 5, 'ignored': 1}
    assert skipped.set_index(skipped.fname.map(lambda f: Path(f).name)).reason['zero.jpg'] == 'empty file'
    report = (tmp_path/'run'/'report.md').read_text()
    assert '6 bad, 5 converted, 1 ignored' in report and 'zero.jpg' in report and 'notes.txt' in report
    code, _, err = main('recipe', messy_folder, '--csv', 'missing.csv', '--quick', '--out', tmp_path/'run2')
    assert code == 2 and 'No labels CSV missing.csv' in err and not (tmp_path/'run2').exists()

def test_fixes_are_honoured(work, tmp_path, main):
    "`tlh train --fixes`: an excluded image is not used, a relabelled one counts under its new label; the images stay where they are"
    ants = sorted((work/'data'/'val'/'ants').glob('*.jpg'))
    pd.DataFrame(dict(filename=[str(ants[0]), str(ants[1].relative_to(work/'data'))], action=['exclude', 'relabel'],
                      label=['', 'bees'])).to_csv(tmp_path/'fixes.csv', index=False)
    code, _, err = main('train', work/'data', '--quick', '--fixes', tmp_path/'fixes.csv', '--out', tmp_path/'run')
    assert code == 0, err
    support = pd.read_csv(tmp_path/'run'/'per_class.csv', index_col=0)['support']
    assert (support['ants'], support['bees']) == (6, 9)
    assert ants[0].exists() and ants[1].exists()
    pd.DataFrame(dict(filename=['no/such.jpg'], action=['exclude'])).to_csv(tmp_path/'bad.csv', index=False)
    code, _, err = main('train', work/'data', '--quick', '--fixes', tmp_path/'bad.csv', '--out', tmp_path/'run2')
    assert code == 2 and 'not among the items' in err

def test_audit_command(work, tmp_path):
    r = ok(tlh('audit', work/'data', '--quick', '--out', tmp_path/'audit', cwd=work))
    assert 'label issue(s)' in r.stdout
    issues = pd.read_csv(tmp_path/'audit'/'label_issues.csv')
    assert issues.columns.tolist()[:4] == ['filename', 'given', 'suggested', 'score']
    assert {'duplicates.csv', 'outliers.csv', 'report.md', 'outliers.png', 'skipped.csv'} <= {p.name for p in (tmp_path/'audit').iterdir()}
    assert '## Data' in (tmp_path/'audit'/'report.md').read_text() and 'nothing skipped' in (tmp_path/'audit'/'report.md').read_text()
