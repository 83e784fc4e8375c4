"""How well the audit finds label errors, and what fixing them buys: flowers with a seeded share of training labels flipped.

Run from the project root: `.venv/bin/python bench/bench_audit.py [--dataset flowers] [--noise 0.05] [--seed 0]`
Full mode (TLH_QUICK is ignored), an empty features cache (so the minutes include feature extraction). The flips live in
a copy of the items table (the images are not touched). One run, side by side:
1. `tlhelpers.audit` on the noisy labels: recall and precision of the flips within the top 2 x (number of flips) rows of
   label_issues, and minutes;
2. validation accuracy of the recipe's baseline (new head on cached features of the frozen backbone, as `tlh train
   --epochs 0`) trained on the clean labels, on the noisy labels, and on the noisy labels with the audit's fixes
   applied (each of those top rows relabelled to the suggested label, as a reviewer accepting every suggestion would).
Prints a table and appends it to bench/results/bench_audit.md. Run it under `flock /tmp/heavy.lock` on a shared machine.
"""
import argparse, os, platform, tempfile, time
os.environ.pop('TLH_QUICK', None)
os.environ.setdefault('TLH_NO_BARS', '1')
from pathlib import Path
import numpy as np, pandas as pd, torch

def main(dataset, noise, seed):
    tmp = tempfile.mkdtemp()
    os.environ['TLH_FEATURES_CACHE'] = str(Path(tmp)/'features')
    from tlhelpers.core import setup
    from tlhelpers.data import items_df, locate, get_dls
    from tlhelpers.audit import audit
    from tlhelpers.baseline import tl_learner, evaluate
    from tlhelpers.features import fine_tune_fast
    s = setup(bars=False)
    clean = items_df(locate(dataset))
    rng = np.random.default_rng(seed)
    train = clean.index[clean.is_valid == 0]
    flip = rng.choice(train, size=int(round(noise * len(train))), replace=False)
    vocab = sorted(clean.label.unique())
    noisy = clean.copy()
    noisy.loc[flip, 'label'] = [rng.choice([v for v in vocab if v != l]) for l in clean.label[flip]]
    t0 = time.time()
    run, tables = audit(noisy, out=Path(tmp)/'audit')
    minutes = (time.time() - t0) / 60
    k = 2 * len(flip)
    top = tables['label_issues'].head(k)
    flipped = set(noisy.fname[flip].astype(str))
    found = top.filename.isin(flipped)
    fixes = top.assign(action='relabel', label=top.suggested)[['filename', 'action', 'label']]
    def baseline(df, fixes=None):
        "Valid accuracy of the head on cached features trained on `df` (labels as given)"
        setup(bars=False)
        dls = get_dls(df, fixes=fixes)
        learn = fine_tune_fast(tl_learner(dls), epochs=0)
        return evaluate(learn)[0]['accuracy']
    acc = dict(clean=baseline(clean), noisy=baseline(noisy), fixed=baseline(noisy, fixes))
    recovered = (acc['fixed'] - acc['noisy']) / (acc['clean'] - acc['noisy']) if acc['clean'] > acc['noisy'] else float('nan')
    row = dict(dataset=dataset, train_images=len(train), flipped=len(flip), top_k=k, recall=found.sum() / len(flip), precision=found.mean(),
               flagged=len(tables['label_issues']), audit_minutes=round(minutes, 2), valid_clean=acc['clean'], valid_noisy=acc['noisy'],
               valid_fixed=acc['fixed'], recovered=recovered)
    header = (f"## {time.strftime('%Y-%m-%d %H:%M')} {dataset}, {noise:.0%} of training labels flipped (seed {seed}); audit with "
              f"{s.backbone} at {s.size} px, features extracted afresh; {platform.processor() or platform.machine()} x{os.cpu_count()}, "
              f"torch {torch.__version__}\n\nrecall/precision: of the flips, within the top 2 x flips rows of label_issues.csv; "
              "valid_*: validation accuracy of the baseline head trained on clean / noisy / noisy + the audit's relabels; "
              "recovered: share of the accuracy the noise cost that the fixes won back.\n")
    table = pd.DataFrame([row]).to_markdown(index=False, floatfmt='.4f')
    print('\n' + header + '\n' + table)
    with open(Path(__file__).parent/'results'/'bench_audit.md', 'a') as f: f.write(header + '\n' + table + '\n\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dataset', default='flowers')
    p.add_argument('--noise', type=float, default=0.05)
    p.add_argument('--seed', type=int, default=0)
    a = p.parse_args()
    main(a.dataset, a.noise, a.seed)
