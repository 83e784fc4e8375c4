"""CPU throughput levers, train and inference images/s and peak memory (issue 6, parts 3 and 4).

Run from the project root: `.venv/bin/python bench/bench_throughput.py [--arch tf_efficientnet_lite0] [--size 160]`
Each variant runs in its own subprocess so its peak memory (ru_maxrss) is its own. Prints a table and appends it
to bench/results/bench_throughput.md.
"""
import argparse, json, os, resource, subprocess, sys, time
from pathlib import Path

MODEL_VARIANTS = ['fp32', 'channels_last', 'bf16', 'channels_last+bf16', 'channels_last+bf16+frozen8', 'compile']
DATA_VARIANTS = ['workers0', 'workers1', 'workers2', 'presized', 'jpeg_draft']
INFER_VARIANTS = ['single', 'single+tta', 'batch32', 'batch32+tta']

def model_variant(name, arch, size, bs, steps):
    import torch
    from tlhelpers.weights import create_model
    torch.set_num_threads(os.cpu_count())
    m = create_model(arch, num_classes=5)
    x, y = torch.randn(bs, 3, size, size), torch.randint(0, 5, (bs,))
    if 'channels_last' in name: m, x = m.to(memory_format=torch.channels_last), x.contiguous(memory_format=torch.channels_last)
    if name == 'compile': m = torch.compile(m)
    if 'frozen8' in name:  # the early layers (output stride <= 8) frozen, as the recipe's `frozen_stride` setting does
        from tlhelpers.freezing import early_params
        for p in early_params(m, 8): p.requires_grad_(False)
    bf16 = 'bf16' in name
    opt = torch.optim.AdamW([p for p in m.parameters() if p.requires_grad], 1e-3)
    def train_step():
        with torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
            loss = torch.nn.functional.cross_entropy(m(x), y)
        loss.backward(); opt.step(); opt.zero_grad()
    m.train(); train_step()                       # warm-up (and compilation)
    t = time.perf_counter()
    for _ in range(steps): train_step()
    train = steps * bs / (time.perf_counter() - t)
    m.eval()
    with torch.no_grad(), torch.autocast('cpu', dtype=torch.bfloat16, enabled=bf16):
        m(x); t = time.perf_counter()
        for _ in range(steps): m(x)
    return dict(train_img_s=train, infer_img_s=steps * bs / (time.perf_counter() - t))

def data_variant(name, size, bs, n_batches):
    "Images/s of the input pipeline alone (decode, presize, batch augment), no model"
    import tempfile
    from PIL import Image
    from tlhelpers.data import get_dls, items_df, locate, split_and_subsample
    df = split_and_subsample(items_df(locate('flowers')), n_per_class=bs * n_batches // 5 + 1)
    if name == 'presized':        # resize every image once to the presize, then train from the small copies
        d = Path(tempfile.mkdtemp())
        t0 = time.perf_counter()
        new = []
        for i, f in enumerate(df.fname):
            with Image.open(f) as im:
                im.draft('RGB', (size * 5 // 4, size * 5 // 4)); im = im.convert('RGB'); im.thumbnail((size * 2, size * 5 // 4 * 2))
                im.save(d/f'{i}.jpg', quality=92); new.append(d/f'{i}.jpg')
        df = df.assign(fname=new)
        prep = time.perf_counter() - t0
    workers = int(name[-1]) if name.startswith('workers') else 0
    if name == 'jpeg_draft':
        import tlhelpers.data as D
        orig = Image.open
        def draft_open(fn, *a, **k):
            im = orig(fn, *a, **k)
            if im.format == 'JPEG': im.draft('RGB', (size * 5 // 4, size * 5 // 4))
            return im
        D.Image.open = draft_open
    dls = get_dls(df, size=size, presize=size * 5 // 4, bs=bs, num_workers=workers, verify=False)
    it = iter(dls.train); next(it)
    t = time.perf_counter(); n = 0
    for _ in range(n_batches - 2): xb, _ = next(it); n += len(xb)
    res = dict(pipeline_img_s=n / (time.perf_counter() - t))
    if name == 'presized': res['one_time_resize_s'] = prep
    return res

def infer_variant(name, arch, size, n_files=64):
    "End-to-end images/s of `tlhelpers.inference.Classifier.predict` on flowers files (decode, preprocess, model), bs 1 or 32, with or without flip TTA"
    from tlhelpers.core import setup
    from tlhelpers.data import get_dls
    from tlhelpers.baseline import tl_learner
    from tlhelpers.inference import Classifier
    setup(bars=False)  # also uses every core for torch
    dls = get_dls('flowers', size=size, verify=False)
    clf = Classifier.from_learner(tl_learner(dls, arch))
    files = list(dls.valid.items.fname[:n_files])
    bs, tta = (1 if name.startswith('single') else 32), name.endswith('+tta')
    clf.predict(files[:bs], bs=bs, tta=tta)  # warm-up
    files = files[:16] if bs == 1 else files
    t = time.perf_counter(); clf.predict(files, bs=bs, tta=tta)
    secs = time.perf_counter() - t
    return dict(infer_img_s=len(files) / secs, ms_per_image=1000 * secs / len(files))

def child(kind, name, args):
    if kind == 'model': res = model_variant(name, args.arch, args.size, args.bs, args.steps)
    elif kind == 'data': res = data_variant(name, args.size, args.bs, args.batches)
    else: res = infer_variant(name, args.arch, args.size)
    res['peak_rss_mib'] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print('RESULT', json.dumps(res))

def main():
    p = argparse.ArgumentParser()
    p.add_argument('--arch', default='tf_efficientnet_lite0'); p.add_argument('--size', type=int, default=160)
    p.add_argument('--bs', type=int, default=32); p.add_argument('--steps', type=int, default=6); p.add_argument('--batches', type=int, default=12)
    p.add_argument('--child', nargs=2)
    args = p.parse_args()
    if args.child: return child(*args.child, args)
    rows = []
    for kind, names in [('model', MODEL_VARIANTS), ('data', DATA_VARIANTS), ('inference', INFER_VARIANTS)]:
        for name in names:
            cmd = [sys.executable, __file__, '--child', kind, name] + sys.argv[1:]
            out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, CI='1'))
            line = next((l for l in out.stdout.splitlines() if l.startswith('RESULT ')), None)
            res = json.loads(line[7:]) if line else {'error': (out.stderr.strip().splitlines() or ['?'])[-1][:80]}
            rows.append(dict(kind=kind, variant=name, **res)); print(rows[-1], flush=True)
    import pandas as pd
    table = pd.DataFrame(rows).round(1).to_markdown(index=False)
    head = f"\n## {time.strftime('%Y-%m-%d %H:%M')} {args.arch} {args.size}px bs {args.bs}, {os.cpu_count()} CPU cores\n\n"
    print(head + table)
    Path('bench/results').mkdir(parents=True, exist_ok=True)
    with open('bench/results/bench_throughput.md', 'a') as f: f.write(head + table + '\n')

if __name__ == '__main__': main()
