"""The recipe on data it was not tuned on: every stage on validation, the chosen model on the held-out test set.

Run from the project root: `.venv/bin/python bench/bench_recipe.py [--datasets flowers hymenoptera inspection]`
Full mode (TLH_QUICK is ignored), one `tlhelpers.recipe.recipe` run per dataset, one after the other, each with its own
run folder under runs/bench_recipe/. `inspection` is the synthetic grey, single-channel, 14:1 imbalanced set of notebook
01 (`make_inspection_set`, made in a temporary folder; labels in a CSV), run as a user told by the imbalance warning
would: `--class-weights --metric f1_macro`. `glyphs` is notebook 01's `make_glyph_set`: 40 classes of printed characters,
30 grey scans each. `hard` is notebook 01's `make_hard_inspection_set` (3,000 images: thin defects on a woven texture under
uneven light, two graded scratch classes, 55% `ok`), run with the defaults as a new user would. Prints a table and appends it to bench/results/bench_recipe.md. Run it under `flock /tmp/heavy.lock` on a shared machine.
"""
import argparse, os, platform, tempfile, time
os.environ.pop('TLH_QUICK', None)
os.environ.setdefault('TLH_NO_BARS', '1')
from pathlib import Path
import pandas as pd, torch
from tlhelpers.data import make_inspection_set, make_glyph_set, make_hard_inspection_set
from tlhelpers.recipe import recipe

def runs(tmp, counts):
    "name -> (data, recipe kwargs); the inspection set is made on first use"
    def insp():
        d = Path(tmp)/'inspection'
        return d if (d/'labels.csv').exists() else make_inspection_set(d, counts=counts)
    def glyphs():
        d = Path(tmp)/'glyphs'
        return d if d.exists() else make_glyph_set(d, n_classes=40, n_per_class=30)
    def hard():
        d = Path(tmp)/'hard'
        return d if (d/'labels.csv').exists() else make_hard_inspection_set(d)
    imb = dict(csv='labels.csv', class_weights=True, metric='f1_macro')
    return {'flowers': (lambda: 'flowers', {}), 'hymenoptera': (lambda: 'hymenoptera', {}), 'inspection': (insp, imb),
            'glyphs': (glyphs, {}), 'hard': (hard, dict(csv='labels.csv'))}

def main(names, counts):
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        todo = runs(tmp, counts)
        for name in names:
            data, kwargs = todo[name]
            run, summary = recipe(data(), out=f'runs/bench_recipe/{name}', **kwargs)
            st = pd.read_csv(run/'stages.csv').set_index('stage')
            m = kwargs.get('metric', 'accuracy')
            info = pd.read_json(run/'metrics.json', typ='series')
            fine = st[st.index.str.startswith('fine-tune')][f'valid_{m}']
            rows.append(dict(dataset=name, images=info.n_train + info.n_valid + info.n_test, classes=len(info.classes), metric=m,
                             sizes='/'.join(map(str, info.sizes)), epochs=info.epochs_per_size,
                             bn_shift=info.adapt['bn_shift'], bn_stats=info.adapt['bn_stats'], frozen_stride=info.adapt['frozen_stride'],
                             probe=' '.join(f"{p['bn_stats']}/{p['frozen_stride']}:{p['score']:.3f}" for p in info.adapt.get('probe', [])) or '-',
                             baseline=st[f'valid_{m}']['baseline'], fine_tune=' '.join(f'{v:.4f}' for v in fine),
                             chosen=summary['chosen_stage'], valid=summary['valid'][m], test=summary['test'][m],
                             test_accuracy=summary['test']['accuracy'], minutes=info.minutes, run=str(run)))
            print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    header = (f"## {time.strftime('%Y-%m-%d %H:%M')} `tlh recipe` defaults, full mode, {platform.processor() or platform.machine()} "
              f"x{os.cpu_count()}, {'GPU ' + torch.cuda.get_device_name() if torch.cuda.is_available() else 'no GPU'}, torch {torch.__version__}\n\n"
              "Validation scores (in the chosen `metric`) of the baseline (head on cached features) and of each fine-tuned size; "
              "`chosen` is the stage kept, `valid`/`test` its scores; minutes from start to report.\n")
    table = df.to_markdown(index=False, floatfmt='.4f')
    print('\n' + header + '\n' + table)
    with open(Path(__file__).parent/'results'/'bench_recipe.md', 'a') as f: f.write(header + '\n' + table + '\n\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--datasets', nargs='+', default=['flowers', 'hymenoptera', 'inspection', 'glyphs', 'hard'])
    p.add_argument('--inspection-counts', type=int, nargs=4, default=[1400, 300, 200, 100], help='ok scratch spot crack images')
    a = p.parse_args()
    main(a.datasets, a.inspection_counts)
