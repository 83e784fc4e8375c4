"""Static int8 quantization variants of one exported model: top-1 agreement with ONNX fp32, accuracy and speed, side by side.

Run from the project root: `flock /tmp/heavy.lock .venv/bin/python bench/bench_int8_variants.py [--run RUN] [--calib 128]`
RUN holds `model.onnx` (`tlh export RUN --onnx`; default runs/bench_recipe/flowers). Every variant is onnxruntime's
`quantize_static` (QDQ, per-channel weights) of the same preprocessed model, calibrated on the same `--calib` training images
(`deploy.calibration_files`); the validation images are preprocessed once (the runtime's PIL pipeline). Variants: the
export's default (`deploy.quantize_int8`: int8 weights with reduce_range, uint8 activations, Percentile calibration),
full-range int8 weights, uint8 weights, MinMax calibration, the fastai head (or the stem too) left in fp32, and 16-bit
activations (A16W8). Two fp32 rows set the floor that agreement is read against: the fp32 model's top-1 under ±½ grey level of
uniform pixel noise (`deploy.noise_agreement`), and the fp32 model with only its weights rounded to per-channel int8 (the stem's
alone, then all: activations stay fp32). Speed: images/s of the network on batches of 32, two threads. Prints one table and
appends it to bench/results/bench_int8_variants.md.
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

P, M = CalibrationMethod.Percentile, CalibrationMethod.MinMax
VARIANTS = {  # name: quantize_static keywords on top of QDQ and per-channel weights
    'default: s8 weights (reduce_range), u8 activations, Percentile': dict(calibrate_method=P, reduce_range=True),
    's8 weights full range (AVX2 saturates)': dict(calibrate_method=P),
    'u8 weights, u8 activations': dict(calibrate_method=P, weight_type=QuantType.QUInt8),
    'default with MinMax calibration': dict(calibrate_method=M, reduce_range=True),
    'default, fastai head in fp32': dict(calibrate_method=P, reduce_range=True, exclude='head'),
    'default, stem and head in fp32': dict(calibrate_method=P, reduce_range=True, exclude='stem+head'),
    'A16W8: 16-bit activations, MinMax': dict(calibrate_method=M, activation_type=QuantType.QUInt16),
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

def predict(s, x, bs=32): return np.concatenate([s.run(None, {'image': x[i:i + bs]})[0] for i in range(0, len(x), bs)])

def main(run, n_calib):
    run, work = Path(run), Path(tempfile.mkdtemp())
    cfg = json.loads((run/'model.json').read_text())
    data = json.loads((run/'metrics.json').read_text())['data']
    valid = items_df(locate(data)).query('is_valid == 1')
    xv, yv = preprocess(valid.fname.tolist(), cfg), valid.label.map(cfg['vocab'].index).values
    xc = preprocess(calibration_files(run, n=n_calib), cfg)
    pre = work/'pre.onnx'; quant_pre_process(str(run/'model.onnx'), str(pre))
    names = [n.name for n in onnx.load(str(pre)).graph.node]
    groups = {'head': [n for n in names if n.startswith(('/0/0.1', '/1/'))], 'stem': [n for n in names if 'conv_stem' in n]}
    t0 = time.perf_counter(); fp32 = predict(session(pre), xv); secs = time.perf_counter() - t0
    rows = [dict(variant='ONNX fp32', agrees_with_fp32=1.0, valid_accuracy=(fp32.argmax(1) == yv).mean(), images_per_s=len(xv) / secs, quantize_s=0),
            dict(variant='fp32, ±½ grey level of pixel noise', agrees_with_fp32=noise_agreement(OnnxClassifier(run), xv))]
    for name, nodes in (('fp32, stem weights rounded to int8', groups['stem']), ('fp32, all conv weights rounded to int8', names)):
        p = predict(session(weights_rounded(pre, nodes, work/'w.onnx')), xv)
        rows.append(dict(variant=name, agrees_with_fp32=(p.argmax(1) == fp32.argmax(1)).mean(), valid_accuracy=(p.argmax(1) == yv).mean()))
    class Reader(CalibrationDataReader):
        def __init__(self): self.it = iter([{'image': xc[i:i + 16]} for i in range(0, len(xc), 16)])
        def get_next(self): return next(self.it, None)
    for name, kw in VARIANTS.items():
        kw = dict(kw); exclude = [n for g in kw.pop('exclude', '').split('+') if g for n in groups[g]]
        kw = dict(dict(activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8), **kw)
        t0 = time.perf_counter()
        quantize_static(str(pre), str(work/'q.onnx'), Reader(), quant_format=QuantFormat.QDQ, per_channel=True, nodes_to_exclude=exclude, **kw)
        q_s, s = time.perf_counter() - t0, session(work/'q.onnx')
        t0 = time.perf_counter(); p = predict(s, xv); secs = time.perf_counter() - t0
        rows.append(dict(variant=name, agrees_with_fp32=(p.argmax(1) == fp32.argmax(1)).mean(), valid_accuracy=(p.argmax(1) == yv).mean(),
                         images_per_s=len(xv) / secs, quantize_s=q_s))
        print(rows[-1], flush=True)
    df = pd.DataFrame(rows)
    df['accuracy_change_points'] = 100 * (df.valid_accuracy - df.valid_accuracy[0])
    header = (f"## {time.strftime('%Y-%m-%d %H:%M')} {run} ({cfg['arch']}, {cfg['size'][0]} px, {len(xv)} validation images of {data}, "
              f"{len(xc)} calibration images); {platform.machine()} x{os.cpu_count()}, onnxruntime {ort.__version__}\n\n"
              "agreement: top-1 equal to ONNX fp32's on the same preprocessed images; speed: the network alone, batches of 32.\n")
    table = df.to_markdown(index=False, floatfmt='.4g')
    print('\n' + header + '\n' + table)
    with open(Path(__file__).parent/'results'/'bench_int8_variants.md', 'a') as f: f.write(header + '\n' + table + '\n\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--run', default='runs/bench_recipe/flowers', help='run folder with model.onnx')
    p.add_argument('--calib', type=int, default=128, help='calibration images')
    a = p.parse_args()
    main(a.run, a.calib)
