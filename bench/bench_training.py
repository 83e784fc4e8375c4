"""Training-recipe benchmark (notebooks 06 and 07), full mode on whatever device is there.
1. The augmentation ladder (`tlhelpers.augment.AUG_CONFIGS`) on hymenoptera: same data, seed, backbone, size and budget.
2. Progressive resizing (settings' `progressive_sizes`) against fixed-size training at the last size with the same
   schedule, then both evaluated at larger sizes.
Run from the project root (wrap in `flock /tmp/heavy.lock` on a shared CPU): `.venv/bin/python bench/bench_training.py`
Options (env): BENCH_PARTS=aug,prog  BENCH_ARCH  BENCH_AUG_DATASET  BENCH_AUG_SIZE  BENCH_AUG_EPOCHS  BENCH_SEEDS=42,1
BENCH_PROG_DATASET  BENCH_PROG_SIZES  BENCH_PROG_EPOCHS (per size)."""
import os, time, platform, datetime
from pathlib import Path
os.environ.pop('TLH_QUICK', None)
import pandas as pd, torch
from tlhelpers.core import setup, seed_everything
from tlhelpers.data import get_dls
from tlhelpers.baseline import tl_learner
from tlhelpers.augment import AUG_CONFIGS, augmentation_experiment, scaled_presize
from tlhelpers.progressive import parse_sizes, progressive_resize, eval_sizes

env = os.environ.get
PARTS = env('BENCH_PARTS', 'aug,prog').split(',')
ARCH = env('BENCH_ARCH', 'mobilenetv2_100')
AUG_DATASET, AUG_SIZE, AUG_EPOCHS = env('BENCH_AUG_DATASET', 'hymenoptera'), int(env('BENCH_AUG_SIZE', 128)), int(env('BENCH_AUG_EPOCHS', 4))
SEEDS = [int(v) for v in env('BENCH_SEEDS', '42').split(',')]
PROG_DATASET, PROG_EPOCHS = env('BENCH_PROG_DATASET', 'hymenoptera'), int(env('BENCH_PROG_EPOCHS', 1))
PROG_SIZES = parse_sizes(env('BENCH_PROG_SIZES')) if env('BENCH_PROG_SIZES') else None
OUT = Path('bench/results/bench_training.md')

def md(df):
    "A DataFrame as a markdown table"
    fmt = lambda v: f'{v:.3f}' if isinstance(v, float) else str(v)
    return '\n'.join(['| ' + ' | '.join(map(str, df.columns)) + ' |', '|' + '---|' * len(df.columns),
                      *['| ' + ' | '.join(fmt(v) for v in r) + ' |' for r in df.itertuples(index=False)]])

def aug_part(s):
    runs = [augmentation_experiment(AUG_CONFIGS, AUG_DATASET, plot=False, arch=ARCH, size=AUG_SIZE, epochs=AUG_EPOCHS,
                                    seed=seed).assign(seed=seed) for seed in SEEDS]
    df = pd.concat(runs)
    tab = df.groupby('config', sort=False).agg(accuracy=('accuracy', 'mean'), acc_min=('accuracy', 'min'),
                                               acc_max=('accuracy', 'max'), f1=('f1', 'mean'),
                                               valid_loss=('valid_loss', 'mean'), seconds=('seconds', 'mean')).reset_index()
    head = (f"Augmentation ladder: {AUG_DATASET}, {ARCH} {AUG_SIZE}px, fine_tune {s.freeze_epochs} frozen + {AUG_EPOCHS} "
            f"epochs, lr {s.lr}, bs {s.bs}, seeds {SEEDS} (mean, min, max over seeds; valid_loss = plain cross entropy)")
    return head, tab

def prog_part(s):
    sizes = PROG_SIZES or parse_sizes()
    results, learners = [], {}
    for run, plan in (('progressive', sizes), ('fixed', [sizes[-1]] * len(sizes))):
        seed_everything(s.seed)
        learn = tl_learner(get_dls(PROG_DATASET, size=plan[0], presize=scaled_presize(plan[0])), ARCH)
        results.append(progressive_resize(learn, plan, epochs_per_size=PROG_EPOCHS).assign(run=run))
        learners[run] = learn
        print(results[-1], flush=True)
    stages = pd.concat(results, ignore_index=True)
    stages['minutes'] = stages.groupby('run').seconds.cumsum() / 60
    stages = stages[['run', 'stage', 'size', 'epochs', 'accuracy', 'f1', 'seconds', 'minutes']]
    bigger = [sizes[-1], int(sizes[-1] * 1.17), int(sizes[-1] * 1.33)]
    evals = pd.concat([eval_sizes(l, bigger).assign(run=run) for run, l in learners.items()], ignore_index=True)
    evals = evals[['run', 'size', 'accuracy', 'f1', 'seconds']]
    head = (f"Progressive resizing: {PROG_DATASET}, {ARCH}, sizes {sizes} vs fixed {sizes[-1]}px, "
            f"{s.freeze_epochs} frozen + {PROG_EPOCHS} epoch(s) at the first size, {PROG_EPOCHS} per later size, lr {s.lr}")
    return head, stages, evals

def main():
    s = setup(bars=False)
    start, sections = time.time(), []
    if 'aug' in PARTS:
        head, tab = aug_part(s)
        sections.append(f"### {head}\n\n{md(tab)}")
        print(sections[-1], flush=True)
    if 'prog' in PARTS:
        head, stages, evals = prog_part(s)
        sections.append(f"### {head}\n\n{md(stages)}\n\nEvaluated at larger sizes (validation set):\n\n{md(evals)}")
        print(sections[-1], flush=True)
    dev = torch.cuda.get_device_name() if torch.cuda.is_available() else f'CPU ({os.cpu_count()} cores)'
    text = (f"\n## bench_training {datetime.datetime.now():%Y-%m-%d %H:%M} on {dev}, {platform.python_version()}, "
            f"torch {torch.__version__}; {(time.time() - start) / 60:.1f} min in all\n\n" + '\n\n'.join(sections) + '\n')
    OUT.parent.mkdir(parents=True, exist_ok=True)
    with OUT.open('a') as f: f.write(text)
    print(text)

if __name__ == '__main__': main()
