"""Ensemble benchmark: flowers, full mode. Trains a few members that differ in backbone and image size, scores each
plain and with TTA on the validation set, then their average, learnt-weight blend and stack (both out of fold).
Run from the project root (wrap in `flock /tmp/heavy.lock` on a shared CPU): `.venv/bin/python bench/bench_ensemble.py`
Members can be changed with BENCH_MEMBERS="arch:size:epochs,arch:size:epochs"."""
import os, time, platform, datetime
from pathlib import Path
os.environ.pop('TLH_QUICK', None)
import pandas as pd, torch
from tlhelpers.core import setup
from tlhelpers.data import get_dls
from tlhelpers.baseline import tl_learner, fine_tune
from tlhelpers.tta import tta_predict
from tlhelpers.ensemble import ensemble_table, average_blend, acc, nll, fit_temperature, apply_temperature, calibration_bins

MEMBERS = os.environ.get('BENCH_MEMBERS', 'mobilenetv2_100:160:2,tf_efficientnet_lite0:160:2,mobilenetv2_100:192:1')
DATASET = os.environ.get('BENCH_DATASET', 'flowers')
N_PER_CLASS = int(os.environ.get('BENCH_N_PER_CLASS', 0)) or None  # a small number for a smoke test

def md(df):
    "A DataFrame as a markdown table (no tabulate needed)"
    df = df.reset_index()
    fmt = lambda v: f'{v:.4f}' if isinstance(v, float) else str(v)
    return '\n'.join(['| ' + ' | '.join(map(str, df.columns)) + ' |', '|' + '---|' * len(df.columns),
                      *['| ' + ' | '.join(fmt(v) for v in r) + ' |' for r in df.itertuples(index=False)]])

def main():
    s = setup()
    t_all = time.time()
    plain, tta, rows, y = {}, {}, [], None
    for spec in MEMBERS.split(','):
        arch, size, epochs = spec.split(':'); size, epochs = int(size), int(epochs)
        name = f'{arch} {size}px {epochs + s.freeze_epochs}ep'
        t0 = time.time()
        dls = get_dls(DATASET, size=size, presize=round(size * s.presize / s.size), n_per_class=N_PER_CLASS)
        learn = fine_tune(tl_learner(dls, arch), epochs=epochs)
        t_train = time.time() - t0
        t0 = time.time(); (aug, p), targs = tta_predict(learn, n=4, beta=None); t_tta = time.time() - t0
        if y is None: y = targs.numpy()
        assert (targs.numpy() == y).all(), "members must share the validation set"
        plain[name], tta[name] = p.numpy(), torch.lerp(aug, p, 0.25).numpy()
        rows.append(dict(member=name, train_min=round(t_train / 60, 1), tta_s=round(t_tta), acc_plain=acc(p, y),
                         acc_tta=acc(tta[name], y), nll_plain=nll(p, y)))
        print(rows[-1], flush=True)
    members = pd.DataFrame(rows).set_index('member')
    tab_plain, tab_tta = ensemble_table(plain, y), ensemble_table(tta, y)
    tab = tab_plain.join(tab_tta, lsuffix=' plain', rsuffix=' TTA n=4')
    blend = average_blend(list(tta.values()))
    T = fit_temperature(blend, y)
    ece_raw, ece_cal = calibration_bins(blend, y)[1], calibration_bins(apply_temperature(blend, T), y)[1]
    minutes = (time.time() - t_all) / 60
    out = [f'## {datetime.datetime.now():%Y-%m-%d %H:%M} {DATASET} valid ({len(y)} images), full mode, '
           f'{platform.processor() or platform.machine()} {torch.get_num_threads()} threads, {minutes:.1f} min in all', '',
           'Members (TTA: n=4, beta=0.25):', '', md(members), '',
           'Members vs blends (blend weights and stack fitted out of fold, 5 folds):', '', md(tab), '',
           f'Calibration of the TTA average blend: T = {T:.2f}, ECE {ece_raw:.4f} -> {ece_cal:.4f}', '']
    text = '\n'.join(out)
    print(text)
    if N_PER_CLASS: return
    res = Path(__file__).parent/'results'; res.mkdir(exist_ok=True)
    with open(res/'bench_ensemble.md', 'a') as f: f.write(text + '\n')

if __name__ == '__main__': main()
