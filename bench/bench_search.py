"""Fixed recipe vs grid vs Bayesian hyperparameter search on hymenoptera, full mode, CPU.

Run from the project root: `flock /tmp/heavy.lock .venv/bin/python bench/bench_search.py`
Prints the table and appends it to bench/results/bench_search.md. Trials follow the `search_*` settings
(a new head trained with one-cycle on cached features of the frozen search_arch at search_size).
"""
import os, time, tempfile, datetime, platform
os.environ['TLH_QUICK'] = '0'
os.environ.setdefault('TLH_NO_BARS', '1')
from pathlib import Path
import optuna, torch
from tlhelpers.core import setup, project_root
from tlhelpers.search import (search_space, grid_size, trial_features, fixed_scheme, hparam_search,
                              search_table, finished)

def main():
    s = setup()
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    space, work = search_space(s), Path(tempfile.mkdtemp(prefix='bench_search_'))
    t = time.perf_counter(); feats = trial_features(); prep = time.perf_counter() - t
    minutes, params = [], []
    t = time.perf_counter(); fixed = fixed_scheme(feats); minutes.append(time.perf_counter() - t)
    params.append(dict(lr=s.lr, wd=s.wd, label_smoothing=False, mixup=False))
    studies = []
    for kind in ('grid', 'bayes'):
        t = time.perf_counter(); st = hparam_search(kind, work/'study.db', feats, space=space)
        minutes.append(time.perf_counter() - t); studies.append(st); params.append(st.best_params)
        print(f'{kind}: {len(finished(st))} trials in {minutes[-1] / 60:.1f} min, best {st.best_value:.4f}', flush=True)
    grid, bayes = studies
    assert len(finished(bayes)) <= grid_size(space) / 4
    table = search_table(fixed, grid, bayes)
    table['pruned'] = [0, 0, sum(t.state.name == 'PRUNED' for t in bayes.trials)]
    table['minutes'] = [round(m / 60, 2) for m in minutes]
    table['best params'] = [', '.join(f'{k}={v}' for k, v in p.items()) for p in params]
    md = table.to_markdown(index=False, floatfmt='.4f')
    head = (f"## {datetime.datetime.now():%Y-%m-%d %H:%M} hymenoptera, full mode, {s.search_arch} {s.search_size}px, "
            f"{s.search_epochs} epochs of a new head on cached features per trial, {(~feats.is_valid).sum()} train / {feats.is_valid.sum()} valid images, "
            f"CPU ({torch.get_num_threads()} threads, {platform.processor() or platform.machine()}); "
            f"feature extraction {prep:.0f} s (cached: {feats.hit})\n")
    print(head + '\n' + md)
    out = project_root()/'bench'/'results'/'bench_search.md'
    out.parent.mkdir(parents=True, exist_ok=True)
    with out.open('a') as f: f.write(head + '\n' + md + '\n\n')

if __name__ == '__main__': main()
