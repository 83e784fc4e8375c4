"""Frozen stage of fine-tuning: head on cached backbone features vs fastai's frozen epoch on images (issue 3).

Run from the project root: `.venv/bin/python bench/bench_features.py [--dataset flowers] [--size 160] [--epochs 1]`
Full mode (TLH_QUICK is ignored). Times the one-off feature extraction, a reload from the cache, and one epoch of
each frozen stage (training plus its validation pass); accuracy is the learner's validation accuracy on images,
through its own data pipeline, for both. Prints a table and appends it to bench/results/bench_features.md.
Run it under `flock /tmp/heavy.lock` on a shared machine.
"""
import argparse, os, platform, tempfile, time
os.environ.pop('TLH_QUICK', None)
os.environ.setdefault('TLH_NO_BARS', '1')
os.environ['TLH_FEATURES_CACHE'] = tempfile.mkdtemp()  # a fresh cache: the first call really extracts
from pathlib import Path
import pandas as pd, torch
from tlhelpers.core import setup, seed_everything
from tlhelpers.data import get_dls
from tlhelpers.baseline import tl_learner
from tlhelpers.features import cached_features, fit_head_from_features, sklearn_baseline

def timed(f):
    t = time.perf_counter(); r = f()
    return r, time.perf_counter() - t

def main(dataset, size, epochs):
    s = setup(bars=False)
    dls = get_dls(dataset, size=size)
    print(f'{dataset}: {len(dls.train_ds)} train / {len(dls.valid_ds)} valid images, {s.backbone} at {size}px, bs {s.bs}, lr {s.lr}')

    seed_everything(); ref = tl_learner(dls)
    ref.freeze()
    _, t_ref = timed(lambda: ref.fit_one_cycle(epochs, slice(s.lr), pct_start=0.99))  # as in fastai fine_tune
    acc_ref = float(ref.validate()[1])

    seed_everything(); fast = tl_learner(dls)
    feats, t_extract = timed(lambda: cached_features(fast, size=size))
    assert not feats.hit
    again, t_load = timed(lambda: cached_features(fast, size=size))
    assert again.hit
    hl, t_head = timed(lambda: fit_head_from_features(fast, feats, epochs, s.lr))
    acc_fast, acc_cache = float(fast.validate()[1]), float(hl.recorder.values[-1][2])
    probe = sklearn_baseline(feats)

    rows = [dict(frozen_stage="fastai fine_tune (images)", one_off_s=0.0, per_epoch_s=t_ref / epochs,
                 total_s=t_ref, valid_acc=acc_ref),
            dict(frozen_stage="head on cached features", one_off_s=t_extract, per_epoch_s=t_head / epochs,
                 total_s=t_extract + t_head, valid_acc=acc_fast, valid_acc_on_cache=acc_cache),
            dict(frozen_stage="sklearn linear probe (avg pool)", one_off_s=t_extract, per_epoch_s=float('nan'),
                 total_s=t_extract + probe['seconds'], valid_acc=float('nan'), valid_acc_on_cache=probe['accuracy'])]
    df = pd.DataFrame(rows)
    speedup = (t_ref / epochs) / (t_head / epochs)
    header = (f"## {time.strftime('%Y-%m-%d %H:%M')} {dataset} {s.backbone} {size}px, {epochs} frozen epoch(s), "
              f"bs {s.bs}, lr {s.lr}, {platform.processor() or platform.machine()} x{os.cpu_count()} "
              f"torch {torch.__version__} ({torch.get_num_threads()} threads)\n")
    summary = (f"\nPer-epoch speed-up of the cached path: {speedup:.0f}x (target >= 10x); accuracy difference "
               f"{100 * (acc_fast - acc_ref):+.1f} points (target >= -0.5). Cache reload: {t_load:.2f} s; "
               f"feature extraction of {len(feats.x)} images: {t_extract:.1f} s.\n")
    table = df.to_markdown(index=False, floatfmt='.3f')
    print('\n' + header + '\n' + table + '\n' + summary)
    out = Path(__file__).parent/'results'/'bench_features.md'
    out.parent.mkdir(exist_ok=True)
    with open(out, 'a') as f: f.write(header + '\n' + table + '\n' + summary + '\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--dataset', default='flowers'); p.add_argument('--size', type=int, default=160)
    p.add_argument('--epochs', type=int, default=1)
    a = p.parse_args()
    main(a.dataset, a.size, a.epochs)
