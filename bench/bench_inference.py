"""CPU inference, every runtime and int8 method side by side in one run: speed, accuracy on images no step has seen, agreement with fp32.

Run from the project root: `flock /tmp/heavy.lock .venv/bin/python bench/bench_inference.py --runs RUN [RUN ...] [--qat]`
Each RUN is a run folder of `tlh recipe` or `tlh train`. For each, in one process on the same preprocessed images:
PyTorch eager (the bundle), ONNX fp32 in onnxruntime, onnxruntime's static int8 (`--method ort`), NNCF int8 with accuracy control
(`tlh export --int8`, the default) for onnxruntime and, measured in OpenVINO, for OpenVINO (`--openvino`), OpenVINO fp32, and with `--qat` NNCF's quantization-aware
fine-tuning (`--qat`, in both runtimes). The int8 models are made by the same functions `tlh export` calls (`deploy.export_int8`,
`deploy.export_openvino`), each in its own copy of the run folder under RUN/bench_inference/.

Images: accuracy and agreement are measured on images that neither calibration (training images) nor accuracy control (held-out
validation images, `deploy.held_out`) used: the recipe's test set (rebuilt by `recipe.recipe_data`, checked against the count
the run recorded), or, for a `tlh train` run, the validation images `held_out` did not take, or those of a labelled folder
(`--test RUN=FOLDER`; for a model of notebook 01's synthetic glyphs, fresh images from another seed:
`python -c "from tlhelpers.data import make_glyph_set; make_glyph_set('data/synthetic-glyphs-test', seed=1)"`). Latency: p50 of 100 calls on one
preprocessed image (batch 1); throughput: images/s of the network on batches of 32 (5 batches after a warm-up); both with every
core. Agreement: top-1 equal to the fp32 model's (PyTorch eager's). The CPU's model and instruction sets (AVX2, AVX-512, VNNI,
AMX) go into the header: int8 speed depends on them. Prints one table per run and appends them to bench/results/bench_inference.md.
"""
import argparse, json, os, platform, shutil, time, warnings
os.environ.pop('TLH_QUICK', None)
os.environ.setdefault('TLH_NO_BARS', '1')
from pathlib import Path
import numpy as np, pandas as pd, torch

ISA = ('avx2', 'fma', 'avx512f', 'avx512_vnni', 'avx_vnni', 'avx512_bf16', 'amx_int8', 'amx_bf16')

def cpu():
    "The CPU's model name and which of the instruction sets that matter for int8 and bf16 it has"
    info = Path('/proc/cpuinfo').read_text() if Path('/proc/cpuinfo').exists() else ''
    name = next((l.split(':', 1)[1].strip() for l in info.splitlines() if l.startswith('model name')), platform.processor() or platform.machine())
    flags = set(next((l.split(':', 1)[1].split() for l in info.splitlines() if l.startswith('flags')), []))
    return f"{name} x{os.cpu_count()}, {' '.join(f for f in ISA if f in flags) or 'none of ' + '/'.join(ISA)}"

def timings(fn, x1, xb, n=100, warm=5, k=5):
    "(p50 ms of `fn(x1)`, images/s of `fn(xb)`)"
    for _ in range(warm): fn(x1)
    t = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(x1); t.append(time.perf_counter() - t0)
    fn(xb); t0 = time.perf_counter()
    for _ in range(k): fn(xb)
    return np.percentile(t, 50) * 1e3, k * len(xb) / (time.perf_counter() - t0)

def copy_bundle(run, name):
    "A fresh copy of the run's bundle files (model, config, metrics, fp32 ONNX) in RUN/bench_inference/NAME"
    d = Path(run)/'bench_inference'/name
    shutil.rmtree(d, ignore_errors=True); d.mkdir(parents=True)
    for f in ('model.json', 'model.safetensors', 'metrics.json', 'model.onnx'): shutil.copy(Path(run)/f, d/f)
    return d

def images(run, inv, test=None):
    "(files, label indices, what they are): images neither calibration nor accuracy control sees (`test`: a labelled folder to use instead)"
    from tlhelpers.deploy import held_out
    from tlhelpers.data import items_df
    info, vocab = json.loads((run/'metrics.json').read_text()), json.loads((run/'model.json').read_text())['vocab']
    if test:
        df = items_df(Path(test)); df = df[df.label.isin(vocab)]
        return df.fname.tolist(), [vocab.index(l) for l in df.label], f'{len(df)} images of {test}, made apart from the training data'
    if info.get('n_test'):
        from tlhelpers.recipe import recipe_data
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            test = recipe_data(info['data'], csv=info.get('csv')).test
        assert len(test) == info['n_test'], (len(test), info['n_test'])
        return test.fname.tolist(), [vocab.index(l) for l in test.label], f'{len(test)} test images'
    held = set(held_out(run, inv=inv)[0])
    valid = inv.items.query('is_valid')
    valid = valid[~valid.fname.isin(held) & valid.label.isin(vocab)]
    if not len(valid): raise SystemExit(f'{run}: accuracy control takes every validation image and there is no test set: nothing left to measure on')
    return valid.fname.tolist(), [vocab.index(l) for l in valid.label], f'{len(valid)} validation images not used by accuracy control'

def main(runs, qat, tests=()):
    from tlhelpers.core import setup, get_settings
    from tlhelpers.inference import load_model
    from tlhelpers.runtime import OnnxClassifier, OpenVinoClassifier, preprocess
    from tlhelpers.deploy import export_onnx, export_int8, export_openvino, calibration_files, held_out, run_inventory, quantize_int8
    import onnxruntime, openvino
    setup(bars=False)
    for run in map(Path, runs):
        t_run = time.time()
        if not (run/'model.onnx').exists(): export_onnx(run)
        inv = run_inventory(run)
        files, held = calibration_files(run, inv=inv), held_out(run, inv=inv)
        train_files = inv.items.query('~is_valid').fname.tolist()
        fx, y, what = images(run, inv, dict(t.split('=', 1) for t in tests).get(str(run)))
        cfg = json.loads((run/'model.json').read_text())
        x = preprocess(fx, cfg)
        made = {}
        with warnings.catch_warnings():
            warnings.simplefilter('ignore')
            for name, kw in [('ort', dict(method='ort')), ('nncf', dict(qat=False))] + ([('qat', dict(qat=True))] if qat else []):
                d = copy_bundle(run, name); t0 = time.time()
                try: rep = export_int8(d, files, held, train_files, max_drop=get_settings().int8_max_drop, **kw)
                except ValueError as e:
                    rep = json.loads((d/'int8.json').read_text()); print(f'{name}: {e}', flush=True)
                    if name == 'ort': quantize_int8(d, files)  # refused by tlh export, measured here all the same
                rep['refused'] = not rep['written']
                rep['minutes'] = (time.time() - t0) / 60
                t0 = time.time()  # as tlh export --openvino: the default method's OpenVINO model by its own accuracy control, the others converted
                export_openvino(d, *((files, held) if name == 'nncf' else ()))
                rep['ov_minutes'] = (time.time() - t0) / 60
                made[name] = (d, rep)
        clf = load_model(run)
        net = clf.model.eval()
        def eager(a):
            with torch.no_grad(): return net(torch.from_numpy(a)).softmax(1).numpy()
        rows, ref = [], None
        variants = [('PyTorch eager', 'fp32', None, eager), ('onnxruntime', 'fp32', None, OnnxClassifier(run).run),
                    ('OpenVINO', 'fp32', None, OpenVinoClassifier(made['nncf'][0]).run)]
        labels = {'ort': "onnxruntime static (--method ort)", 'nncf': 'NNCF, accuracy control (default)', 'qat': 'NNCF QAT (--qat)'}
        refused = []
        for name, (d, rep) in made.items():
            if (d/'model.int8.onnx').exists(): variants.append(('onnxruntime', labels[name], (d, rep), OnnxClassifier(d, int8=True).run))
            else: refused.append(dict(runtime='onnxruntime', model=labels[name], note=f"refused: int8 {rep['accuracy_int8']:.4f} vs fp32 {rep['accuracy_fp32']:.4f} on held-out"))
            if (d/'model.int8.xml').exists(): variants.append(('OpenVINO', labels[name], (d, rep), OpenVinoClassifier(d, int8=True).run))
        for rt, model, made_by, fn in variants:
            p50, ips = timings(fn, x[:1], x[:32])
            pred = np.concatenate([fn(x[i:i + 32]).argmax(1) for i in range(0, len(x), 32)])
            ref = pred if ref is None else ref
            row = dict(runtime=rt, model=model, p50_ms_bs1=p50, images_per_s_bs32=ips, accuracy=(pred == np.array(y)).mean(), agreement=(pred == ref).mean())
            if made_by:
                d, rep = made_by
                onnx_row = rt == 'onnxruntime'
                row.update(layers_fp32=len(rep['layers_fp32']) if onnx_row else np.nan, export_min=rep['minutes'] if onnx_row else rep['ov_minutes'],
                           refused_by_export=rep['refused'] if onnx_row else False,
                           file_mib=(d/('model.int8.onnx' if onnx_row else 'model.int8.bin')).stat().st_size / 2**20)
            else: row['file_mib'] = (run/'model.onnx').stat().st_size / 2**20
            rows.append(row); print(row, flush=True)
        df = pd.DataFrame(rows + refused)
        df['accuracy_change_points'] = 100 * (df.accuracy - df.accuracy[0])
        df['speedup_vs_eager'] = df.images_per_s_bs32 / df.images_per_s_bs32[0]
        header = (f"## {time.strftime('%Y-%m-%d %H:%M')} {run} ({cfg['arch']}, {cfg['size'][0]} px, {len(cfg['vocab'])} classes; data {inv.root}); "
                  f"{what}\n\n{cpu()}; torch {torch.__version__} ({torch.get_num_threads()} threads), onnxruntime {onnxruntime.__version__}, "
                  f"OpenVINO {openvino.__version__.split('-')[0]}; calibration {len(files)} training images, accuracy control on {len(held[0])} "
                  f"held-out validation images (max drop {get_settings().int8_max_drop}); {(time.time() - t_run) / 60:.1f} min in all\n\n"
                  "accuracy and agreement (top-1 equal to PyTorch eager's) on those images; latency p50 at batch 1, throughput at batch 32, "
                  "the network alone; file: the int8 ONNX file or OpenVINO's int8 weights (.bin); export_min: quantizing (and checking) for that runtime; layers_fp32: kept in fp32 by accuracy control (ONNX); refused_by_export: `tlh export` measured a drop over "
                  "the tolerance on the held-out images and wrote no int8 model (for onnxruntime's static int8 the bench measures it anyway).\n")
        table = df.to_markdown(index=False, floatfmt='.4g')
        print('\n' + header + '\n' + table, flush=True)
        with open(Path(__file__).parent/'results'/'bench_inference.md', 'a') as f: f.write(header + '\n' + table + '\n\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--runs', nargs='+', required=True, help='run folders of tlh recipe / tlh train')
    p.add_argument('--qat', action='store_true', help='also quantization-aware fine-tuning (trains: minutes per run on a CPU)')
    p.add_argument('--test', nargs='*', default=[], help='RUN=FOLDER: measure RUN on the labelled images of FOLDER instead')
    a = p.parse_args()
    main(a.runs, a.qat, a.test)
