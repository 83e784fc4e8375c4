"Nothing lost: training killed mid-run resumes from its last epoch checkpoint."
import json, os, re, signal, subprocess, sys, textwrap, time
from pathlib import Path
import pytest, torch
from tlhelpers.core import get_settings

SCRIPT = textwrap.dedent('''
    import os, signal, sys
    from fastai.callback.core import Callback
    from tlhelpers.core import setup
    from tlhelpers.data import get_dls
    from tlhelpers.baseline import tl_learner, fine_tune
    class KillAfter(Callback):
        "SIGKILL this process after the n-th epoch (counted over all stages), once its checkpoint is written"
        order, seen = 80, 0
        def __init__(self, n): self.n = n
        def after_epoch(self):
            KillAfter.seen += 1
            if KillAfter.seen == self.n: os.kill(os.getpid(), signal.SIGKILL)
    setup(bars=False)
    dls = get_dls('hymenoptera', size=32, presize=40, bs=8, n_per_class=int(sys.argv[3]))
    learn = tl_learner(dls, 'mobilenetv2_100', cbs=[KillAfter(int(sys.argv[2]))])
    fine_tune(learn, epochs=3, freeze_epochs=1, lr=1e-3, checkpoint=sys.argv[1])
    print('TRAINED', sum(1 for v in learn.recorder.values if len(v)))
''')

def _run(ck, kill_at, n_per_class=6):
    env = dict(os.environ, CI='1', TLH_QUICK='1')
    return subprocess.run([sys.executable, '-c', SCRIPT, str(ck), str(kill_at), str(n_per_class)], capture_output=True, text=True,
                          env=env, timeout=300)

def _done(ck):
    "(stage, epoch) a checkpoint folder's state.json records"
    st = json.loads((ck/'state.json').read_text()); return st['stage'], st['epoch']

def _stop_when(cmd, env, state, ready, sig=signal.SIGKILL, **popen):
    "Start `cmd`; once its checkpoint file `state` satisfies `ready(dict)`, send it `sig` (a kill is waited for); the process"
    p = subprocess.Popen(cmd, env=env, **(popen or dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)))
    t0 = time.time()
    while not (state.exists() and ready(json.loads(state.read_text() or '{}'))):
        assert p.poll() is None and time.time() - t0 < 300, f"{Path(cmd[0]).name} {cmd[1]} ended before it could be stopped"
        time.sleep(0.02)
    p.send_signal(sig)
    if sig == signal.SIGKILL: p.wait()
    return p

def test_kill_and_resume_training(tmp_path):
    ck = tmp_path/'ckpt'
    first = _run(ck, kill_at=2)                       # frozen epoch 0, then unfrozen epoch 0, then killed
    assert first.returncode == -9, first.stderr[-2000:]
    assert _done(ck) == ('unfrozen', 0)
    second = _run(ck, kill_at=99)
    assert second.returncode == 0, second.stderr[-2000:]
    assert 'Resuming from' in second.stdout and 'unfrozen stage, epoch 1 done' in second.stdout
    assert 'TRAINED 2' in second.stdout                # only the two remaining unfrozen epochs were trained
    assert _done(ck) == ('unfrozen', 2)

class _Planted:
    "Unpickling this runs a shell command that leaves a marker file"
    def __init__(self, marker): self.marker = marker
    def __reduce__(self): return (os.system, (f'touch {self.marker}',))

def test_checkpoint_runs_no_code_and_refuses_other_data(tmp_path):
    "A pickle planted in a checkpoint folder is never loaded; a checkpoint made for other data is refused with one line"
    ck, marker = tmp_path/'ck', tmp_path/'code-ran'
    assert _run(ck, kill_at=2).returncode == -9
    torch.save(_Planted(marker), ck/'rng.pth')         # where random states were pickled before
    second = _run(ck, kill_at=99)
    assert second.returncode == 0, second.stderr[-2000:]
    assert not marker.exists() and 'unfrozen stage, epoch 1 done' in second.stdout
    assert json.loads((ck/'rng.json').read_text())['torch']   # random states kept as plain numbers
    other = _run(ck, kill_at=99, n_per_class=5)        # other images: same classes, different files
    assert other.returncode != 0 and 'was made for other data' in other.stderr, other.stderr[-2000:]
    assert _done(ck) == ('unfrozen', 2)                # and the folder is left as it was

def test_kill_and_resume_tlh_train(tmp_path):
    "`tlh train --checkpoint` killed after its first unfrozen epoch resumes there when run again"
    ck, tlh = tmp_path/'ck', str(Path(sys.executable).with_name('tlh'))
    cmd = [tlh, 'train', 'hymenoptera', '--quick', '--epochs', '6', '--checkpoint', str(ck), '--out', str(tmp_path/'run')]
    env = dict(os.environ, CI='1', TLH_QUICK='1')
    state = ck/'state.json'
    _stop_when(cmd, env, state, lambda st: st.get('epoch', -1) >= 0)
    done = json.loads(state.read_text())['epoch']
    assert done < 5
    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f'unfrozen stage, epoch {done + 1} done' in second.stdout
    assert _done(ck) == ('unfrozen', 5)

def test_kill_and_resume_tlh_recipe(tmp_path):
    "`tlh recipe --checkpoint` killed in its first size's epochs skips the finished stages and resumes the unfrozen cycle's epochs"
    ck, tlh = tmp_path/'ck', str(Path(sys.executable).with_name('tlh'))
    cmd = [tlh, 'recipe', 'hymenoptera', '--quick', '--sizes', '48', '64', '--epochs', '4', '--checkpoint', str(ck),
           '--out', str(tmp_path/'run')]
    env = dict(os.environ, CI='1', TLH_QUICK='1')
    state = ck/'state.json'
    _stop_when(cmd, env, state, lambda st: st.get('stage') == 'unfrozen')
    done = json.loads(state.read_text())['epoch']
    before = json.loads((ck/'recipe.json').read_text())
    assert list(before['stages']) == ['baseline'] and before['lr'] > 0 and done < 3
    assert not (tmp_path/'run').exists()               # no half-filled run folder is left behind
    lr_plot = (ck/'lr_find.png').stat().st_mtime_ns

    second = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert second.returncode == 0, second.stderr[-2000:]
    assert f'unfrozen stage, epoch {done + 1} done' in second.stdout
    assert 'baseline:' not in second.stdout and (ck/'lr_find.png').stat().st_mtime_ns == lr_plot  # finished work is not redone
    after = json.loads((ck/'recipe.json').read_text())
    assert after['lr'] == before['lr'] and after['stages']['baseline'] == before['stages']['baseline']
    assert list(after['stages']) == ['baseline', 'fine-tune 48px', 'fine-tune 64px', 'mirror TTA 64px']
    assert after['stages']['mirror TTA 64px']['minutes'] >= before['stages']['baseline']['minutes']
    assert [e['epoch'] for e in after['epochs']] == list(range(8))   # each epoch logged once, across the kill
    assert (tmp_path/'run'/'report.md').exists() and (tmp_path/'run'/'lr_find.png').exists()
    other = subprocess.run([tlh, 'recipe', 'flowers', '--quick', '--checkpoint', str(ck), '--out', str(tmp_path/'flowers')], env=env,
                           capture_output=True, text=True, timeout=300)   # the finished ants/bees checkpoint, given flowers
    assert other.returncode == 2 and 'was made for other data' in other.stderr and not (tmp_path/'flowers').exists(), other.stderr[-2000:]

def test_recipe_killed_at_its_baseline_checkpoint_completes(tmp_path):
    "A checkpoint at 'baseline' whose score never reached recipe.json (killed between the two, as older versions wrote them) redoes the baseline"
    ck, tlh = tmp_path/'ck', str(Path(sys.executable).with_name('tlh'))
    cmd = [tlh, 'recipe', 'hymenoptera', '--quick', '--sizes', '48', '--epochs', '1', '--checkpoint', str(ck), '--out', str(tmp_path/'run')]
    env = dict(os.environ, CI='1', TLH_QUICK='1')
    state = ck/'state.json'
    _stop_when(cmd, env, state, lambda st: st.get('stage') == 'baseline')
    rec = json.loads((ck/'recipe.json').read_text())
    assert 'baseline' in rec['stages']                 # recorded before the checkpoint says 'baseline'
    del rec['stages']['baseline']; (ck/'recipe.json').write_text(json.dumps(rec))  # the state older versions could leave
    again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-2000:]
    assert 'baseline:' in again.stdout and (tmp_path/'run'/'report.md').exists()

@pytest.mark.slow
def test_recipe_ensemble_member_independent_of_resume(tmp_path):
    "`tlh recipe --ensemble` trains the same second model whether its main model trained in the same run or was resumed"
    tlh = str(Path(sys.executable).with_name('tlh'))
    env = dict(os.environ, CI='1', TLH_QUICK='1', TLH_FEATURES_CACHE=str(tmp_path/'features'))
    def recipe(ck, *extra):
        r = subprocess.run([tlh, 'recipe', 'hymenoptera', '--quick', '--sizes', '48', '--epochs', '2', '--checkpoint', str(ck),
                            '--out', str(tmp_path/'run'), *extra], env=env, capture_output=True, text=True, timeout=300)
        assert r.returncode == 0, r.stderr[-2000:]
        return json.loads((ck/'recipe.json').read_text()), r.stdout
    at_once, _ = recipe(tmp_path/'ck1', '--ensemble')
    recipe(tmp_path/'ck2')                                  # the main model alone, then the ensemble on its checkpoint
    resumed, out = recipe(tmp_path/'ck2', '--ensemble')
    assert 'Resuming from' in out and not re.search(r'^baseline:', out, re.M)   # the main model's baseline is not redone
    arch2 = get_settings().recipe_ensemble_arch
    def member(st): return [e['accuracy'] for e in st['epochs'] if e['model'] == arch2], st['stages'][f'{arch2} fine-tune 48px']
    (acc1, tta1), (acc2, tta2) = member(at_once), member(resumed)
    assert len(acc1) == 2 and acc1 == acc2
    assert {k: v for k, v in tta1.items() if k != 'minutes'} == {k: v for k, v in tta2.items() if k != 'minutes'}
    def head(ck): return torch.load(ck/'ensemble'/'ckpt.pth', weights_only=False)['model']['1.8.weight']  # our own file
    assert torch.equal(head(tmp_path/'ck1'), head(tmp_path/'ck2'))

@pytest.mark.slow
def test_recipe_where_fine_tuning_hurts_keeps_baseline_across_a_kill(tmp_path):
    "Fine-tuning at a far too high learning rate: killed mid-way and resumed, the run still ends with the baseline's weights and test score"
    tlh = str(Path(sys.executable).with_name('tlh'))
    env = dict(os.environ, CI='1', TLH_QUICK='1', TLH_FEATURES_CACHE=str(tmp_path/'features'))
    def cmd(ck, out): return [tlh, 'recipe', 'hymenoptera', '--quick', '--sizes', '48', '64', '--epochs', '3', '--ft-lr', '5',
                              '--checkpoint', str(ck), '--out', str(tmp_path/out)]
    whole = subprocess.run(cmd(tmp_path/'ck1', 'whole'), env=env, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]
    state = tmp_path/'ck2'/'state.json'
    _stop_when(cmd(tmp_path/'ck2', 'resumed'), env, state, lambda st: st.get('stage') == 'unfrozen')
    assert json.loads(state.read_text())['epoch'] < 5
    resumed = subprocess.run(cmd(tmp_path/'ck2', 'resumed'), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and 'Resuming from' in resumed.stdout, resumed.stderr[-2000:]
    a, b = (json.loads((tmp_path/d/'metrics.json').read_text()) for d in ('whole', 'resumed'))
    assert a['chosen_stage'] == b['chosen_stage'] == 'baseline'
    assert a['test'] == b['test'] and a['valid'] == b['valid']
    assert "keeps the baseline's weights" in (tmp_path/'resumed'/'report.md').read_text()
    from tlhelpers.inference import load_model
    wa, wb = (load_model(tmp_path/d).model.state_dict() for d in ('whole', 'resumed'))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)

@pytest.mark.slow
def test_ctrl_c_during_tlh_train_resumes_to_the_same_result(tmp_path):
    "Ctrl-C (SIGINT) during `tlh train --checkpoint`: one line, exit 130, no traceback; run again, it ends where an uninterrupted run ends"
    tlh = str(Path(sys.executable).with_name('tlh'))
    env = dict(os.environ, CI='1', TLH_QUICK='1', TLH_FEATURES_CACHE=str(tmp_path/'features'))
    def cmd(ck, out): return [tlh, 'train', 'hymenoptera', '--quick', '--epochs', '4', '--checkpoint', str(tmp_path/ck), '--out', str(tmp_path/out)]
    whole = subprocess.run(cmd('ck1', 'whole'), env=env, capture_output=True, text=True, timeout=300)
    assert whole.returncode == 0, whole.stderr[-2000:]
    state = tmp_path/'ck2'/'state.json'
    p = _stop_when(cmd('ck2', 'resumed'), env, state, lambda st: st.get('epoch', -1) >= 0, signal.SIGINT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 130, err[-2000:]
    assert 'Traceback' not in err and 'KeyboardInterrupt' not in err, err[-2000:]
    assert f"tlh: interrupted; run the same command again (same --checkpoint {tmp_path/'ck2'})" in err
    assert json.loads(state.read_text())['epoch'] < 3 and not (tmp_path/'resumed').exists()
    resumed = subprocess.run(cmd('ck2', 'resumed'), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0 and 'Resuming from' in resumed.stdout, resumed.stderr[-2000:]
    a, b = (json.loads((tmp_path/d/'metrics.json').read_text()) for d in ('whole', 'resumed'))
    assert a['accuracy'] == b['accuracy'] and a['n_valid'] == b['n_valid']
    from tlhelpers.inference import load_model
    wa, wb = (load_model(tmp_path/d).model.state_dict() for d in ('whole', 'resumed'))
    assert all(torch.equal(wa[k], wb[k]) for k in wa)   # the same weights: the resumed run drew what the whole run drew

SWALLOW = textwrap.dedent('''
    import os, signal, sys, time
    from fastai.test_utils import synth_learner
    from fastai.learner import Callback
    from contextlib import nullcontext
    from tlhelpers.core import setup, catch_interrupts
    class Swallow(Callback):
        "Ctrl-C at the end of the first epoch, caught by a bare `except:` as fastai's recorder and fastcore's `true` do"
        def after_epoch(self):
            if self.epoch: return
            try: os.kill(os.getpid(), signal.SIGINT); time.sleep(1)
            except: pass
    setup(bars=False)
    learn = synth_learner(cbs=Swallow())
    try:
        with catch_interrupts() if sys.argv[1] == 'catch' else nullcontext(), learn.no_logging(): learn.fit(3)
        print('FINISHED', learn.epoch)
    except KeyboardInterrupt: print('INTERRUPTED', learn.epoch)
''')

def test_ctrl_c_a_library_swallows_still_stops_training():
    "A real SIGINT caught by a bare `except:` mid-fit: Python's own handler lets the fit run on; under `catch_interrupts` it stops at the next epoch"
    def run(mode):
        r = subprocess.run([sys.executable, '-c', SWALLOW, mode], capture_output=True, text=True, timeout=120, env=dict(os.environ, CI='1'))
        return r.stdout.strip().splitlines()[-1] if r.stdout.strip() else r.stderr[-2000:]
    assert run('plain') == 'FINISHED 2'        # the interrupt is lost without catch_interrupts
    assert run('catch') == 'INTERRUPTED 1'

def test_one_run_per_checkpoint_folder(tmp_path):
    "A second run on a checkpoint folder in use stops at once with one line, and writes nothing there"
    from tlhelpers.baseline import checkpoint_lock
    ck, tlh = tmp_path/'ck', str(Path(sys.executable).with_name('tlh'))
    env = dict(os.environ, CI='1', TLH_QUICK='1')
    with checkpoint_lock(ck):
        for cmd in ('train', 'recipe'):
            r = subprocess.run([tlh, cmd, 'hymenoptera', '--quick', '--checkpoint', str(ck), '--out', str(tmp_path/cmd)], env=env,
                               capture_output=True, text=True, timeout=300)
            assert r.returncode != 0 and 'is in use by another run' in r.stderr and 'Traceback' not in r.stderr, r.stderr[-2000:]
    assert sorted(p.name for p in ck.iterdir()) == ['.lock', '.tlh-output']
