"""Static int8 quantization variants of one exported model: top-1 agreement with ONNX fp32, accuracy and speed, side by side.

Run from the project root: `flock /tmp/heavy.lock .venv/bin/python bench/bench_int8_variants.py [--run RUN] [--calib 128]`
(about 10 min on 2 cores). RUN holds `model.onnx` (`tlh export RUN --onnx`; default runs/bench_recipe/flowers). Every variant
is onnxruntime's `quantize_static` (QDQ, per-channel weights) of the same preprocessed model, calibrated on the same `--calib`
training images (`deploy.calibration_files`; each calibration method runs once, then its cached ranges are reused); the
validation images are preprocessed once (the runtime's PIL pipeline). Variants: the export's default (`deploy.quantize_int8`:
int8 weights with reduce_range, uint8 activations, Percentile calibration), full-range int8 weights, uint8 weights, MinMax and
Entropy calibration, 16-bit activations (A16W8), and the default with one part of the network left in fp32 (the stem, each
stage of blocks, the conv head, the fastai head). fp32 rows set the floor that agreement is read against: the fp32 model's
top-1 under ±½ grey level of uniform pixel noise (`deploy.noise_agreement`), and the fp32 model with only weights rounded to
per-channel int8 (activations stay fp32): the stem's, every convolution's, and each convolution's alone (the least and the
most harmful). lost / gained: validation images fp32 gets right and the variant wrong, and the reverse. Speed: images/s of
the network on batches of 32, two threads. Prints one table and appends it to bench/results/bench_int8_variants.md.
"""
import argparse, json, os, platform, tempfile, time
os.environ.pop('TLH_QUICK', None)
from pathlib import Path
import numpy as np, pandas as pd, onnx, onnxruntime as ort
from onnx import numpy_helper
from onnxruntime.quantization import quantize_static, QuantFormat, QuantType, CalibrationDataReader, CalibrationMethod
from onnxruntime.quantization.shape_inference import quant_pre_process
from tlhelpers.runtime import preprocess, OnnxClassifier
from tlhelpers.deploy import calibration_files, noise_agreement
from tlhelpers.data import items_df, locate

DEFAULT = dict(calibrate_method=CalibrationMethod.Percentile, reduce_range=True, weight_type=QuantType.QInt8, activation_type=QuantType.QUInt8)
VARIANTS = {  # name: quantize_static keywords that replace the default's
    'default: s8 weights (reduce_range), u8 activations, Percentile': {},
    's8 weights full range (AVX2 saturates)': dict(reduce_range=False),
    'u8 weights, u8 activations': dict(weight_type=QuantType.QUInt8),
    'default with MinMax calibration': dict(calibrate_method=CalibrationMethod.MinMax),
    'default with Entropy calibration': dict(calibrate_method=CalibrationMethod.Entropy),
    'A16W8: 16-bit activations, MinMax': dict(calibrate_method=CalibrationMethod.MinMax, activation_type=QuantType.QUInt16, reduce_range=False),
}

def session(f):
    o = ort.SessionOptions(); o.intra_op_num_threads = os.cpu_count()
    return ort.InferenceSession(str(f), o, providers=['CPUExecutionProvider'])

def weights_rounded(pre, nodes, out):
    "Write `pre` with the weights of the convolutions among `nodes` rounded to symmetric per-output-channel int8 and back (fp32 activations)"
    m = onnx.load(str(pre)); inits = {i.name: i for i in m.graph.initializer}
    for n in (n for n in m.graph.node if n.name in nodes and n.op_type == 'Conv'):
        w = numpy_helper.to_array(inits[n.input[1]]); s = np.abs(w).max(axis=tuple(range(1, w.ndim)), keepdims=True) / 127
        inits[n.input[1]].CopyFrom(numpy_helper.from_array((np.round(w / np.where(s == 0, 1, s)) * s).astype(w.dtype), n.input[1]))
    onnx.save(m, str(out)); return out

def parts(names):
    "Node names of the network's parts: stem, each stage of blocks, conv head, fastai head"
    g = {'stem': [n for n in names if '/conv_stem/' in n or '/0/0.0/bn1/' in n]}
    for b in sorted({n.split('blocks/blocks.')[1].split('/')[0] for n in names if 'blocks/blocks.' in n}): g[f'blocks.{b}'] = [n for n in names if f'blocks/blocks.{b}/' in n]
    g['conv head'] = [n for n in names if '/conv_head/' in n or '/0/0.0/bn2/' in n]
    g['fastai head'] = [n for n in names if n.startswith(('/0/0.1', '/1/'))]
    return g

def predict(s, x, bs=32): return np.concatenate([s.run(None, {'image': x[i:i + bs]})[0] for i in range(0, len(x), bs)])

def main(run, n_calib):
    run, work = Path(run), Path(tempfile.mkdtemp())
    cfg = json.loads((run/'model.json').read_text())
    data = json.loads((run/'metrics.json').read_text())['data']
    valid = items_df(locate(data)).query('is_valid == 1')
    xv, yv = preprocess(valid.fname.tolist(), cfg), valid.label.map(cfg['vocab'].index).values
    xc = preprocess(calibration_files(run, n=n_calib), cfg)
    pre = work/'pre.onnx'; quant_pre_process(str(run/'model.onnx'), str(pre))
    nodes = onnx.load(str(pre)).graph.node
    convs, groups = [n.name for n in nodes if n.op_type == 'Conv'], parts([n.name for n in nodes])
    t0 = time.perf_counter(); fp32 = predict(session(pre), xv); secs = time.perf_counter() - t0
    ok = fp32.argmax(1) == yv
    def row(variant, p, **kw):
        right = p.argmax(1) == yv
        return dict(variant=variant, agrees_with_fp32=(p.argmax(1) == fp32.argmax(1)).mean(), valid_accuracy=right.mean(),
                    lost=int((ok & ~right).sum()), gained=int((~ok & right).sum()), **kw)
    rows = [row('ONNX fp32', fp32, images_per_s=len(xv) / secs),
            dict(variant='fp32, ±½ grey level of pixel noise', agrees_with_fp32=noise_agreement(OnnxClassifier(run), xv))]
    for name, ns in (('fp32, stem weights rounded to int8', groups['stem']), ('fp32, all conv weights rounded to int8', convs)):
        rows.append(row(name, predict(session(weights_rounded(pre, ns, work/'w.onnx')), xv)))
    one = [row(c, predict(session(weights_rounded(pre, [c], work/'w.onnx')), xv)) for c in convs]
    for which, r in (('least', max(one, key=lambda r: r['agrees_with_fp32'])), ('most', min(one, key=lambda r: r['agrees_with_fp32']))):
        rows.append(dict(r, variant=f"fp32, one conv's weights rounded, the {which} harmful of {len(convs)}: {r['variant'].removeprefix('/0/0.0/').removesuffix('/Conv')}"))
    print(*rows, sep='\n', flush=True)
    class Reader(CalibrationDataReader):
        def __init__(self): self.it = iter([{'image': xc[i:i + 16]} for i in range(0, len(xc), 16)])
        def get_next(self): return next(self.it, None)
    variants = {**VARIANTS, **{f'default, {g} in fp32': dict(exclude=ns) for g, ns in groups.items()}}
    for name, kw in variants.items():
        kw = {**DEFAULT, **kw}; exclude = kw.pop('exclude', [])
        quantize_static(str(pre), str(work/'q.onnx'), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, nodes_to_exclude=exclude,
                        calibration_cache_path=work/f"{kw['calibrate_method'].name}.json", **kw)
        s = session(work/'q.onnx')
        t0 = time.perf_counter(); p = predict(s, xv); secs = time.perf_counter() - t0
        rows.append(row(name, p, images_per_s=len(xv) / secs)); print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df['accuracy_change_points'] = 100 * (df.valid_accuracy - df.valid_accuracy[0])
    header = (f"## {time.strftime('%Y-%m-%d %H:%M')} {run} ({cfg['arch']}, {cfg['size'][0]} px, {len(xv)} validation images of {data}, "
              f"{len(xc)} calibration images); {platform.machine()} x{os.cpu_count()}, onnxruntime {ort.__version__}\n\n"
              "agreement: top-1 equal to ONNX fp32's on the same preprocessed images; lost / gained: images fp32 gets right and the variant "
              "wrong / the reverse; speed: the network alone, batches of 32.\n")
    table = df.to_markdown(index=False, floatfmt='.4g')
    print('\n' + header + '\n' + table)
    with open(Path(__file__).parent/'results'/'bench_int8_variants.md', 'a') as f: f.write(header + '\n' + table + '\n\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--run', default='runs/bench_recipe/flowers', help='run folder with model.onnx')
    p.add_argument('--calib', type=int, default=128, help='calibration images')
    a = p.parse_args()
    main(a.run, a.calib)
