"""Time-to-accuracy: tlhelpers' recipe vs a plain PyTorch loop in the style of the PyTorch transfer-learning tutorial
(issue 6, part 1). Same backbone and offline weights; the plain loop uses torchvision ImageFolder, RandomResizedCrop(224),
SGD(lr=1e-3, momentum=0.9) and StepLR(step_size=7, gamma=0.1), evaluating after every epoch.

Run from the project root: `.venv/bin/python bench/bench_time_to_accuracy.py --dataset flowers --minutes 20`
The plain loop trains for the wall-clock budget; tlhelpers runs `tlh recipe` with the settings' defaults (`--ensemble` adds
its second backbone; accuracy measured after every epoch and stage, elapsed minutes counted from the start, data checks included). Same run, one after the other. Prints a table (minutes to reach
90% / 95% valid accuracy, final accuracy, and the ratio) and appends it to bench/results/bench_time_to_accuracy.md.
"""
import argparse, os, time
from functools import partial
from pathlib import Path
import torch

def plain_pytorch(root, arch, minutes, size=224, bs=32):
    "The tutorial's loop, unchanged but for the backbone: returns [(elapsed minutes, valid accuracy)] per epoch"
    from torchvision import datasets, transforms
    from tlhelpers.weights import create_model
    m = create_model(arch, num_classes=len(os.listdir(root/'train')))
    mean, std = m.pretrained_cfg['mean'], m.pretrained_cfg['std']
    tfms = {'train': transforms.Compose([transforms.RandomResizedCrop(size), transforms.RandomHorizontalFlip(),
                                         transforms.ToTensor(), transforms.Normalize(mean, std)]),
            'val': transforms.Compose([transforms.Resize(size * 8 // 7), transforms.CenterCrop(size),
                                       transforms.ToTensor(), transforms.Normalize(mean, std)])}
    ds = {k: datasets.ImageFolder(root/k, tfms[k]) for k in tfms}
    dl = {k: torch.utils.data.DataLoader(ds[k], batch_size=bs, shuffle=k == 'train', num_workers=0) for k in ds}
    opt = torch.optim.SGD(m.parameters(), lr=1e-3, momentum=0.9)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=7, gamma=0.1)
    t0, log = time.time(), []
    while (time.time() - t0) / 60 < minutes:
        m.train()
        for x, y in dl['train']:
            opt.zero_grad(); torch.nn.functional.cross_entropy(m(x), y).backward(); opt.step()
        sched.step()
        m.eval(); correct = 0
        with torch.no_grad():
            for x, y in dl['val']: correct += (m(x).argmax(1) == y).sum().item()
        log.append(((time.time() - t0) / 60, correct / len(ds['val']))); print('plain', log[-1], flush=True)
    return log

def tlhelpers_recipe(root, arch, minutes, ensemble=False, arch2=None):
    "`tlh recipe` with the settings' defaults (its own run folder and report): [(elapsed minutes, valid accuracy)] after every stage and every epoch of the main model"
    import pandas as pd
    from tlhelpers.recipe import recipe
    run, _ = recipe(root, arch=arch, ensemble=ensemble, arch2=arch2, out='runs/bench_time_to_accuracy')
    print('tlhelpers report:', run/'report.md', flush=True)
    stages, epochs = pd.read_csv(run/'stages.csv'), pd.read_csv(run/'epochs.csv').query('model == @arch')
    return sorted(list(zip(stages.minutes, stages.valid_accuracy)) + list(zip(epochs.minutes, epochs.accuracy)))

def first_reach(log, target):
    return next((round(t, 1) for t, a in log if a >= target), None)

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--dataset', default='flowers'); p.add_argument('--arch', default=None)
    p.add_argument('--minutes', type=float, default=20)
    p.add_argument('--ensemble', action='store_true', help='run the recipe with --ensemble')
    p.add_argument('--arch2', default=None, help="the ensemble's second backbone (default: recipe_ensemble_arch)")
    a = p.parse_args()
    from tlhelpers.core import get_settings
    from tlhelpers.data import locate
    arch, root = a.arch or get_settings().recipe_arch, locate(a.dataset)
    rows = []
    runs = [('tlhelpers', partial(tlhelpers_recipe, ensemble=a.ensemble, arch2=a.arch2)), ('plain PyTorch', plain_pytorch)]
    for name, fn in runs:
        log = fn(root, arch, a.minutes)
        rows.append(dict(method=name, to_90=first_reach(log, .9), to_95=first_reach(log, .95),
                         final_acc=round(log[-1][1], 4), minutes=round(log[-1][0], 1), evaluations=len(log)))
    import pandas as pd
    df = pd.DataFrame(rows)
    tl, pl = df.iloc[0], df.iloc[1]
    def speedup(k):
        "plain minutes / tlhelpers minutes to reach target `k`; a lower bound when the plain loop never reached it"
        if pd.isna(tl[k]): return 'tlhelpers did not reach it'
        if pd.isna(pl[k]): return f'>= {pl.minutes / tl[k]:.1f}x (the plain loop did not reach it in {pl.minutes} min)'
        return f'{pl[k] / tl[k]:.1f}x'
    ratio = {k: speedup(k) for k in ('to_90', 'to_95')}
    head = f"\n## {time.strftime('%Y-%m-%d %H:%M')} {a.dataset}, {arch}, {os.cpu_count()} CPU cores; tlhelpers: `tlh recipe` defaults{' --ensemble' + (f' --arch2 {a.arch2}' if a.arch2 else '') if a.ensemble else ''}; plain loop: epochs started within {a.minutes} min\n\n"
    text = head + df.to_markdown(index=False) + f"\n\nspeed-up (plain minutes / tlhelpers minutes): {ratio}\n"
    print(text)
    Path('bench/results').mkdir(parents=True, exist_ok=True)
    with open('bench/results/bench_time_to_accuracy.md', 'a') as f: f.write(text)

if __name__ == '__main__': main()
