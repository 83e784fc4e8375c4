"""Spread of the lr finder's `valley` over seeds, as `tlh recipe` runs it: one run against the median of several.

Run from the project root: `.venv/bin/python bench/bench_lr_finder.py [--dataset flowers] [--seeds 42 1 2 0 3 4 5 6 7 8] [--runs 5]`
Full mode (TLH_QUICK is ignored). For each seed, builds the recipe's learner (recipe_arch, last progressive size), its
cached features and its new head exactly as `tlh recipe` does, then runs the finder `--runs` times on the head over the
features (`tlhelpers.recipe.Recipe`: its data, held-out test split and learner); the first run is the learning rate the recipe took before `median_lr`. Prints a table and appends it to
bench/results/bench_lr_finder.md. Run it under `flock /tmp/heavy.lock` on a shared machine.
"""
import argparse, os, platform, tempfile, time
os.environ.pop('TLH_QUICK', None)
os.environ.setdefault('TLH_NO_BARS', '1')
from pathlib import Path
import pandas as pd, torch
from tlhelpers.core import setup
from tlhelpers.features import cached_features, features_learner
from tlhelpers.tuning import median_lr
from tlhelpers.recipe import Recipe

def main(dataset, seeds, runs):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for seed in seeds:
            r = Recipe(dataset)                      # the recipe's own data, test split and learner
            s, size = setup(seed, bars=False), r.sizes[-1]
            learn = r.learner(r.arch)
            feats = cached_features(learn, size=size)
            flearn = features_learner(feats, learn.model[1][2:], bs=learn.dls.bs, loss_func=learn.loss_func, path=tmp)
            median, suggs = median_lr(flearn, runs, plot=False)
            valleys = [sg.valley for sg in suggs]
            rows.append(dict(seed=seed, first_run=valleys[0], median=median,
                             runs=' '.join(f'{v:.2e}' for v in valleys)))
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    def spread(c): return f'{df[c].min():.2e} to {df[c].max():.2e} ({df[c].max() / df[c].min():.1f}x)'
    header = (f"## {time.strftime('%Y-%m-%d %H:%M')} {dataset} {s.recipe_arch} {size}px head over cached features, "
              f"{s.lr_find_iters} iterations per run, {platform.processor() or platform.machine()} x{os.cpu_count()} "
              f"torch {torch.__version__}\n")
    summary = f"\nOne run's valley: {spread('first_run')}; the median of {runs} runs: {spread('median')}.\n"
    table = df.to_markdown(index=False, floatfmt='.2e')
    print('\n' + header + '\n' + table + '\n' + summary)
    out = Path(__file__).parent/'results'/'bench_lr_finder.md'
    with open(out, 'a') as f: f.write(header + '\n' + table + '\n' + summary + '\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dataset', default='flowers')
    p.add_argument('--seeds', type=int, nargs='+', default=[42, 1, 2, 0, 3, 4, 5, 6, 7, 8])
    p.add_argument('--runs', type=int, default=5)
    a = p.parse_args()
    main(a.dataset, a.seeds, a.runs)
