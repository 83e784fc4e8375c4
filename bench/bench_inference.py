"""CPU inference: PyTorch eager vs ONNX fp32 vs ONNX int8, side by side in one run.

Run from the project root: `.venv/bin/python bench/bench_inference.py [--run RUN] [--data flowers]`
RUN is a run folder of `tlh train`/`tlh recipe` (default: trains `tlh train flowers --epochs 0` into runs/bench_inference
first); it is exported with `tlh export --onnx --int8` if its ONNX files are missing. For each runtime: single-image latency
(p50/p95 over 100 calls of the network on one preprocessed image), batch throughput (images/s, batches of 32, network only),
and validation accuracy end to end (each runtime with its own preprocessing: fastai's pipeline for PyTorch, PIL's for ONNX),
plus the top-1 agreement of each with PyTorch. Prints a table and appends it to bench/results/bench_inference.md.
Run it under `flock /tmp/heavy.lock` on a shared machine.
"""
import argparse, os, platform, time
os.environ.pop('TLH_QUICK', None)
os.environ.setdefault('TLH_NO_BARS', '1')
from pathlib import Path
import numpy as np, pandas as pd, torch

def timings(fn, x1, xb, n=100, warm=5):
    "(p50 ms, p95 ms) of `fn(x1)` and images/s of `fn(xb)`"
    for _ in range(warm): fn(x1)
    t = []
    for _ in range(n):
        t0 = time.perf_counter(); fn(x1); t.append(time.perf_counter() - t0)
    fn(xb); t0, k = time.perf_counter(), 5
    for _ in range(k): fn(xb)
    return np.percentile(t, 50) * 1e3, np.percentile(t, 95) * 1e3, k * len(xb) / (time.perf_counter() - t0)

def main(run, data):
    from tlhelpers.core import setup
    from tlhelpers.data import items_df, locate
    from tlhelpers.inference import load_model
    from tlhelpers.runtime import OnnxClassifier, preprocess
    from tlhelpers.cli import train, export_model
    s = setup(bars=False)
    if run is None:
        run = Path('runs/bench_inference')
        if not (run/'model.json').exists(): run, _ = train(data, epochs=0, out=run)
    run = Path(run)
    if not (run/'model.int8.onnx').exists(): export_model(run, int8=True)
    valid = items_df(locate(json_data(run) or data)).query('is_valid == 1')
    clf = load_model(run)
    x = preprocess(valid.fname[:32].tolist(), clf.config)
    models = {'PyTorch eager': clf, 'ONNX fp32': OnnxClassifier(run), 'ONNX int8': OnnxClassifier(run, int8=True)}
    def torch_net(a):
        with torch.no_grad(): return clf.model.eval()(torch.from_numpy(a)).softmax(1).numpy()
    rows, ref, ref_onnx = [], None, None
    for name, m in models.items():
        fn = torch_net if name == 'PyTorch eager' else m.run
        p50, p95, ips = timings(fn, x[:1], x)
        t0 = time.perf_counter(); probs = np.asarray(m.predict(valid.fname.tolist(), bs=32)); secs = time.perf_counter() - t0
        pred = np.array(m.vocab)[probs.argmax(1)]
        ref = pred if ref is None else ref
        ref_onnx = pred if name == 'ONNX fp32' else ref_onnx
        rows.append(dict(runtime=name, p50_ms=p50, p95_ms=p95, batch_images_per_s=ips, valid_accuracy=(pred == valid.label.values).mean(),
                         agrees_with_pytorch=(pred == ref).mean(), agrees_with_onnx_fp32=(pred == ref_onnx).mean() if ref_onnx is not None else np.nan,
                         end_to_end_s=secs,
                         file_mib=sum(f.stat().st_size for f in run.glob({'PyTorch eager': 'model.safetensors', 'ONNX fp32': 'model.onnx',
                                                                          'ONNX int8': 'model.int8.onnx'}[name])) / 2**20))
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df['speedup_vs_eager'] = df.batch_images_per_s / df.batch_images_per_s[0]
    cfg = clf.config
    header = (f"## {time.strftime('%Y-%m-%d %H:%M')} {run} ({cfg['arch']}, {cfg['size'][0]} px, {len(valid)} validation images of {json_data(run) or data}); "
              f"{platform.processor() or platform.machine()} x{os.cpu_count()}, torch {torch.__version__} ({torch.get_num_threads()} threads), "
              f"onnxruntime {__import__('onnxruntime').__version__}\n\nlatency: the network on one preprocessed image; batch: 32 images; "
              "accuracy: end to end, each runtime with its own preprocessing; agreement: top-1 equal to PyTorch's, and to ONNX fp32's (the model int8 is quantized from).\n")
    table = df.to_markdown(index=False, floatfmt='.4g')
    print('\n' + header + '\n' + table)
    with open(Path(__file__).parent/'results'/'bench_inference.md', 'a') as f: f.write(header + '\n' + table + '\n\n')

def json_data(run):
    import json
    return json.loads((Path(run)/'metrics.json').read_text()).get('data') if (Path(run)/'metrics.json').exists() else None

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--run', help='run folder with a model bundle (default: train one on --data)')
    p.add_argument('--data', default='flowers')
    a = p.parse_args()
    main(a.run, a.data)
