"""The recipe on data it was not tuned on: every stage on validation, the chosen model on the held-out test set.

Run from the project root: `.venv/bin/python bench/bench_recipe.py [--datasets flowers hymenoptera inspection] [--minutes 10 60]`
Full mode (TLH_QUICK is ignored), one `tlhelpers.recipe.recipe` run per dataset, one after the other, each with its own
run folder under runs/bench_recipe/. `inspection` is the synthetic grey, single-channel, 14:1 imbalanced set of notebook
01 (`make_inspection_set`, made in a temporary folder; labels in a CSV), run as a user told by the imbalance warning
would: `--class-weights --metric f1_macro`. `glyphs` is notebook 01's `make_glyph_set`: 40 classes of printed characters,
30 grey scans each. `hard` is notebook 01's `make_hard_inspection_set` (3,000 images: thin defects on a woven texture under
uneven light, two graded scratch classes, 55% `ok`), run with the defaults as a new user would. `--minutes` runs each dataset
once per budget (default: the recipe_minutes setting). The race column lists each candidate's validation score after each
epoch it trained (the winner's only up to the race's end). Prints a table and appends it to bench/results/bench_recipe.md.
Run it under `flock /tmp/heavy.lock` on a shared machine.
"""
import argparse, os, sys, tempfile, time
os.environ.pop('TLH_QUICK', None)
os.environ.setdefault('TLH_NO_BARS', '1')
from pathlib import Path
import pandas as pd, torch
from tlhelpers.data import make_inspection_set, make_glyph_set, make_hard_inspection_set
from tlhelpers.recipe import recipe
sys.path.insert(0, str(Path(__file__).parent))
from bench_inference import cpu  # the CPU's name and instruction sets

def runs(tmp, counts, hard_n=3000):
    "name -> (data, recipe kwargs); the inspection set is made on first use"
    def insp():
        d = Path(tmp)/'inspection'
        return d if (d/'labels.csv').exists() else make_inspection_set(d, counts=counts)
    def glyphs():
        d = Path(tmp)/'glyphs'
        return d if d.exists() else make_glyph_set(d, n_classes=40, n_per_class=30)
    def hard():
        d = Path(tmp)/'hard'
        return d if (d/'labels.csv').exists() else make_hard_inspection_set(d, n=hard_n)
    imb = dict(csv='labels.csv', class_weights=True, metric='f1_macro')
    return {'flowers': (lambda: 'flowers', {}), 'hymenoptera': (lambda: 'hymenoptera', {}), 'inspection': (insp, imb),
            'glyphs': (glyphs, {}), 'hard': (hard, dict(csv='labels.csv'))}

def race(plan):
    "Each candidate's validation scores by epoch, up to the race's end; the winner marked"
    end = max([0, *plan['halved']])
    return ' ; '.join(f"{c['name']}{'*' if c['name'] == plan['winner'] else ''} "
                      + ' '.join(f"{v['score']:.3f}" for e, v in sorted(plan['curves'][c['name']].items(), key=lambda kv: int(kv[0])) if int(e) < end)
                      for c in plan['candidates'])

def main(names, counts, budgets, hard_n=3000):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        todo = runs(tmp, counts, hard_n)
        for name in names:
            for minutes in budgets:
                data, kwargs = todo[name]
                tag = name if minutes is None else f'{name}-{minutes:g}min'
                run, summary = recipe(data(), out=f'runs/bench_recipe/{tag}', minutes=minutes, **kwargs)
                st = pd.read_csv(run/'stages.csv').set_index('stage')
                m = kwargs.get('metric', 'accuracy')
                info = pd.read_json(run/'metrics.json', typ='series')
                plan = info.adapt
                fine = st[st.index.str.startswith('fine-tune')][f'valid_{m}']
                rows.append(dict(dataset=name, images=info.n_train + info.n_valid + info.n_test, classes=len(info.classes), metric=m,
                                 budget=info.budget_minutes, plan=' + '.join(f'{e}x{s}' for s, e in zip(plan['sizes'], plan['epochs'])),
                                 bn_shift=plan['bn_shift'], baseline=st[f'valid_{m}']['baseline'], race=race(plan),
                                 fine_tune=' '.join(f'{v:.4f}' for v in fine), chosen=summary['chosen_stage'], valid=summary['valid'][m],
                                 test=summary['test'][m], test_accuracy=summary['test']['accuracy'], race_min=plan.get('race_minutes'),
                                 minutes=info.minutes, run=str(run)))
                print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    header = (f"## {time.strftime('%Y-%m-%d %H:%M')} `tlh recipe` defaults, full mode, {cpu()}, "
              f"{'GPU ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}, torch {torch.__version__}\n\n"
              "Validation scores (in the chosen `metric`) of the baseline (head on cached features), of each raced candidate after each "
              "epoch of the race (`*`: the winner), and of the winner at the end of each size; `plan`: epochs x px; `chosen` is the "
              "stage kept, `valid`/`test` its scores; `race_min` and `minutes` from start.\n")
    table = df.to_markdown(index=False, floatfmt='.4f')
    print('\n' + header + '\n' + table)
    with open(Path(__file__).parent/'results'/'bench_recipe.md', 'a') as f: f.write(header + '\n' + table + '\n\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--datasets', nargs='+', default=['flowers', 'hymenoptera', 'inspection', 'glyphs', 'hard'])
    p.add_argument('--inspection-counts', type=int, nargs=4, default=[1400, 300, 200, 100], help='ok scratch spot crack images')
    p.add_argument('--minutes', type=float, nargs='+', default=[None], help='time budgets, one run each (default: the setting)')
    p.add_argument('--hard-n', type=int, default=3000, help='images of the hard set')
    a = p.parse_args()
    main(a.datasets, a.inspection_counts, a.minutes, a.hard_n)
