"A hyperparameter search killed mid-run resumes from its SQLite storage without losing or repeating trials"
import itertools, os, signal, sqlite3, subprocess, sys, time
from pathlib import Path

SEARCH = ("import sys; from tlhelpers.core import setup; from tlhelpers.search import hparam_search; "
          "setup(bars=False); hparam_search('grid', sys.argv[1])")

def _start(db):
    # ~40 ms per head epoch on quick features: 40 epochs make a trial last long enough to be killed in the middle of
    env = dict(os.environ, TLH_QUICK='1', CI='1', TLH_QUICK_SEARCH_EPOCHS='40', TLH_SEARCH_HEARTBEAT='1')
    return subprocess.Popen([sys.executable, '-c', SEARCH, str(db)], env=env, cwd=Path(__file__).parents[1],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

def _progress(db):
    "(complete trials, running trials that have their parameters) in the study database"
    if not db.exists(): return 0, 0
    try:
        with sqlite3.connect(db, timeout=5) as con:
            done = con.execute("SELECT count(*) FROM trials WHERE state = 'COMPLETE'").fetchone()[0]
            running = con.execute("SELECT count(DISTINCT t.trial_id) FROM trials t JOIN trial_params p "
                                  "ON p.trial_id = t.trial_id WHERE t.state = 'RUNNING'").fetchone()[0]
            return done, running
    except sqlite3.OperationalError: return 0, 0  # tables not created yet

def test_killed_grid_search_resumes(tmp_path, hymenoptera):
    from optuna.trial import TrialState
    from tlhelpers.search import search_space, grid_size, open_study, finished
    space, k = search_space(), 2
    n = grid_size(space)
    assert n > k + 1, "the quick grid must be larger than the trials run before the kill"
    db = tmp_path/'study.db'
    p, t0 = _start(db), time.time()
    while True:  # wait until k trials are done and the next one is training, then kill the process
        n_done, n_running = _progress(db)
        if n_done >= k and n_running: break
        assert p.poll() is None, f"search exited early: {p.stderr.read()[-2000:]}"
        assert time.time() - t0 < 300, "search too slow"
        time.sleep(0.05)
    p.send_signal(signal.SIGKILL); p.communicate()  # reaps it and closes its stderr pipe

    before = open_study(db, 'grid', space)
    done = {t.number: (t.params, t.value) for t in before.trials if t.state == TrialState.COMPLETE}
    running = [t for t in before.trials if t.state == TrialState.RUNNING]
    assert k <= len(done) < n and len(running) == 1

    r = _start(db); _, err = r.communicate(timeout=300)
    assert r.returncode == 0, err[-2000:]

    after = open_study(db, 'grid', space)
    complete = [t for t in after.trials if t.state == TrialState.COMPLETE]
    # finished trials were kept as they were, not re-run
    for num, (params, value) in done.items():
        assert after.trials[num].state == TrialState.COMPLETE
        assert (after.trials[num].params, after.trials[num].value) == (params, value)
    # the budget is completed exactly, every grid point once
    assert len(finished(after)) == len(complete) == n
    points = {tuple(sorted(t.params.items())) for t in complete}
    assert len(points) == n
    assert points == {tuple(sorted(zip(space, v))) for v in itertools.product(*space.values())}
    # a trial killed mid-run is marked failed, and its grid point was run again
    killed = running[0]
    assert after.trials[killed.number].state == TrialState.FAIL
    # (it may die between two `suggest` calls, holding only some of its parameters)
    assert killed.params and any(set(killed.params.items()) <= set(pt) for pt in points)

def _worker(url, out, cache):
    "A `tlh search` worker on the shared study `s` at `url`: quick mode, a 10-cell grid, trials long enough to be killed mid-way"
    env = dict(os.environ, TLH_QUICK='1', CI='1', TLH_QUICK_SEARCH_EPOCHS='40', TLH_SEARCH_HEARTBEAT='1',
               TLH_QUICK_SEARCH_LR='0.1 0.03 0.01 0.003 0.001', TLH_FEATURES_CACHE=str(cache))
    return subprocess.Popen([str(Path(sys.executable).parent/'tlh'), 'search', 'hymenoptera', '--quick', '--storage', url, '--study', 's',
                             '--out', str(out)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)

def test_two_workers_share_a_grid_on_postgres_and_survive_a_kill(tmp_path, postgres_url, hymenoptera):
    import optuna
    from optuna.trial import TrialState
    a, b = (_worker(postgres_url, tmp_path/n, tmp_path/f'cache-{n}') for n in 'ab')
    storage = optuna.storages.RDBStorage(postgres_url)  # one connection pool: a storage per poll leaks connections until the server refuses
    t0 = time.time()
    while True:  # wait until both workers are inside a trial, then kill one of them
        try: trials = optuna.load_study(study_name='s', storage=storage).trials
        except KeyError: trials = []  # the study is not created yet
        if sum(t.state == TrialState.COMPLETE for t in trials) >= 2 and sum(t.state == TrialState.RUNNING for t in trials) == 2: break
        assert a.poll() is None and b.poll() is None, f'a worker exited early: {(a.stderr.read() if a.poll() is not None else b.stderr.read())[-2000:]}'
        assert time.time() - t0 < 300, 'search too slow'
        time.sleep(0.2)
    a.send_signal(signal.SIGKILL); a.communicate()
    out, err = b.communicate(timeout=300)
    assert b.returncode == 0, err[-2000:]
    study = optuna.load_study(study_name='s', storage=storage)
    complete = [t for t in study.trials if t.state == TrialState.COMPLETE]
    cells = {tuple(sorted(t.params.items())) for t in complete}
    assert len(complete) == len(cells) == 10                         # every cell completed, none twice
    killed = [t for t in study.trials if t.state == TrialState.FAIL]
    assert len(killed) == 1 and tuple(sorted(killed[0].system_attrs['fixed_params'].items())) in cells  # the dead worker's cell was redone
    assert 'best=' in out and (tmp_path/'b'/'report-s'/'trials.csv').exists()
