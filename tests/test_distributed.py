"Data-parallel training: tlh train and tlh recipe as two CPU processes under accelerate launch --cpu (Open MPI), one model, one run folder"
import json
from tlhelpers.distributed import launch, rank_digests

def test_two_cpu_processes_train_one_model_and_resume(tmp_path, hymenoptera):
    out, ck = tmp_path/'runs'/'ddp', tmp_path/'ck'
    args = ['train', 'hymenoptera', '--quick', '--bs', 4, '--checkpoint', ck]
    r = launch([*args, '--out', out], timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    digests = rank_digests(r.stdout)
    assert sorted(digests) == [0, 1]
    assert len(set(digests.values())) == 1                       # both processes hold the same weights
    assert r.stdout.count('train_loss') == 2                    # one log: the head stage and the unfrozen stage, main process only
    assert [p.name for p in out.parent.iterdir() if not p.name.startswith('.')] == ['ddp']     # one run folder
    m = json.loads((out/'metrics.json').read_text())
    assert (m['processes'], m['same_weights'], m['n_images']) == (2, True, m['n_valid'])  # every validation image scored once
    assert {'report.md', 'model.safetensors', 'confusion.png'} <= {p.name for p in out.iterdir()}
    assert json.loads((ck/'state.json').read_text())['stage'] == 'unfrozen'
    again = launch([*args, '--out', tmp_path/'runs'/'again'], timeout=900)    # resumed from the checkpoint: nothing left to train
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert 'Resuming from' in again.stdout
    assert set(rank_digests(again.stdout).values()) == set(digests.values())  # and the same weights

def test_two_cpu_processes_run_the_recipe_and_resume(tmp_path):
    "Grey, imbalanced images far from ImageNet: the race runs too; every stage is decided alike in both processes, reported once"
    from tlhelpers.data import make_inspection_set
    insp, ck = make_inspection_set(tmp_path/'insp', counts=(42, 9, 6, 3), size=64), tmp_path/'ck'
    args = ['recipe', insp, '--csv', 'labels.csv', '--metric', 'f1_macro', '--quick', '--bs', 4, '--checkpoint', ck]
    r = launch([*args, '--out', tmp_path/'runs'/'rec'], timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    digests = rank_digests(r.stdout)
    assert sorted(digests) == [0, 1] and len(set(digests.values())) == 1
    assert r.stdout.count('baseline: ') == 1 and r.stdout.count('chosen=') == 1   # stages reported by the main process only
    assert [p.name for p in (tmp_path/'runs').iterdir() if not p.name.startswith('.')] == ['rec']
    m = json.loads((tmp_path/'runs'/'rec'/'metrics.json').read_text())
    assert (m['processes'], m['same_weights']) == (2, True)
    assert len(m['adapt']['candidates']) == 4 and m['adapt']['halved'] == [1, 2]   # the race's fits ran data-parallel too
    assert {'report.md', 'stages.csv', 'model.safetensors', 'lr_find.png'} <= {p.name for p in (tmp_path/'runs'/'rec').iterdir()}
    again = launch([*args, '--out', tmp_path/'runs'/'again'], timeout=900)   # resumed: nothing left to train
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    assert 'Resuming from' in again.stdout
    assert set(rank_digests(again.stdout).values()) == set(digests.values())
    assert json.loads((tmp_path/'runs'/'again'/'metrics.json').read_text())['test'] == m['test']

def test_two_cpu_processes_train_the_recipes_ensemble(tmp_path):
    "`tlh recipe --ensemble` launched: both models train data-parallel and each ends alike in both processes; the main process scores the blend"
    from tlhelpers.core import get_settings
    from tlhelpers.data import make_inspection_set
    insp = make_inspection_set(tmp_path/'insp', counts=(20, 12, 8), size=64)
    r = launch(['recipe', insp, '--csv', 'labels.csv', '--quick', '--bs', 4, '--ensemble', '--out', tmp_path/'runs'], timeout=900)
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    digests = rank_digests(r.stdout)
    assert sorted(digests) == [0, 1] and digests[0] == digests[1] and len(set(digests[0])) == 2   # the main model, then the member: each identical in both processes
    run = tmp_path/'runs'
    arch2 = get_settings().recipe_ensemble_arch
    assert json.loads((run/'metrics.json').read_text())['ensemble_with'] == arch2
    assert f'ensemble + {arch2}' in (run/'stages.csv').read_text()
