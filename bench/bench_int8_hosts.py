"""OpenVINO int8 with accuracy control under each instruction set this CPU offers: how many layers stay in fp32.

Run from the project root: `.venv/bin/python bench/bench_int8_hosts.py [--isas AVX2 AVX512_CORE_VNNI ALL]`
int8 kernels round differently with AVX2, AVX-512 VNNI and AMX, so the same model, calibration and held-out images can need a
different number of layers returned to fp32 before int8 changes no more than `int8_max_drop` of fp32's answers. Two models of
ants and bees at 128 px, as notebook 14a trains them: `quick` (quick mode: a head trained 2 epochs on 12 images a class,
calibrated on 16 images, 64 held-out) and `cpu` (cpu mode: 125 images a class, 8 head epochs, 128 calibration images, 153
held-out). For each instruction set (one process each, capped with oneDNN's `ONEDNN_MAX_CPU_ISA`; a cap above what the CPU has
changes nothing): plain post-training int8 (no accuracy control) and its top-1 agreement with fp32, then `export_openvino` with
accuracy control: layers kept in fp32, the IR's size, agreement. Prints a table and appends it to bench/results/bench_int8_hosts.md.
Run it under `flock /tmp/heavy.lock` on a shared machine.
"""
import argparse, json, os, subprocess, sys, tempfile, time, warnings
from pathlib import Path

def clean_env(**kw):
    "This process's environment without the settings' mode and oneDNN's cap, plus `kw`"
    e = {k: v for k, v in os.environ.items() if k not in ('TLH_QUICK', 'TLH_MODE', 'ONEDNN_MAX_CPU_ISA')}
    return {**e, 'TLH_NO_BARS': '1', **kw}

def one(model, run):
    "In this process (its instruction set fixed by the environment): plain int8 and accuracy-controlled int8 of `run`, as a dict"
    import openvino as ov
    from tlhelpers.deploy import export_onnx, held_out, calibration_files, quantize_nncf, export_openvino, openvino_check, ir_fp32_layers, compare
    from tlhelpers.runtime import OpenVinoClassifier
    held, files = held_out(run), calibration_files(run)
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        export_onnx(run); export_openvino(run)                      # model.onnx, model.xml
        quantize_nncf(run, files, None, backend='openvino')         # plain post-training int8: every layer
        plain = compare(OpenVinoClassifier(run), OpenVinoClassifier(run, int8=True), held)['agreement']
        t0 = time.time()
        export_openvino(run, files, held)                           # accuracy control, measured in OpenVINO
        r = openvino_check(run, held)
    every = ir_fp32_layers(ov.Core().read_model(run/'model.xml'))
    return dict(model=model, isa=os.environ.get('ONEDNN_MAX_CPU_ISA', 'ALL'), held_out=len(held[0]), calibration=len(files),
                accuracy_fp32=round(r['accuracy_fp32'], 4), plain_agreement=round(plain, 4), kept_fp32=f"{len(r['layers_fp32'])} of {len(every)}",
                mib_fp32=round((run/'model.bin').stat().st_size / 2**20, 1),
                mib_int8=round((run/'model.int8.bin').stat().st_size / 2**20, 1) if r['written'] else None,
                agreement=round(r['agreement'], 4), written=r['written'], control_s=round(time.time() - t0))

def train_models(tmp):
    "The two runs of notebook 14a's first cell, in quick and cpu mode"
    out = {}
    for model, env in (('quick', dict(TLH_QUICK='1')), ('cpu', dict(TLH_MODE='cpu'))):
        code = ("from tlhelpers.cli import train; from tlhelpers.core import get_settings; "
                f"train('hymenoptera', out={str(Path(tmp)/model)!r}, epochs=0, size=max(get_settings().size, 128))")
        subprocess.run([sys.executable, '-c', code], env=clean_env(**env), check=True, capture_output=True)
        out[model] = (Path(tmp)/model, env)
    return out

def main(isas):
    sys.path.insert(0, str(Path(__file__).parent))
    from bench_inference import cpu
    import pandas as pd
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for model, (run, env) in train_models(tmp).items():
            for isa in isas:
                e = clean_env(**env, **({} if isa == 'ALL' else dict(ONEDNN_MAX_CPU_ISA=isa)))
                p = subprocess.run([sys.executable, __file__, '--one', model, str(run)], env=e, capture_output=True, text=True)
                if p.returncode: sys.exit(f'{model} {isa} failed:\n{p.stderr[-3000:]}')
                rows.append(json.loads(p.stdout.strip().splitlines()[-1])); print(rows[-1], flush=True)
    import openvino, nncf
    table = pd.DataFrame(rows).to_markdown(index=False)
    head = (f"## {time.strftime('%Y-%m-%d %H:%M')} OpenVINO {openvino.__version__}, NNCF {nncf.__version__}, {cpu()}\n\n"
            "`plain_agreement`: top-1 agreement of post-training int8 without accuracy control with fp32 on the held-out images; "
            "`kept_fp32`: layers accuracy control kept in fp32 so that int8 changes at most `int8_max_drop` of fp32's answers; "
            "`mib_int8`, `agreement`: the IR it wrote. `isa`: oneDNN's cap (`ALL`: what the CPU has).\n\n")
    print(head + table)
    with open(Path(__file__).parent/'results'/'bench_int8_hosts.md', 'a') as f: f.write(head + table + '\n\n')

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('--isas', nargs='+', default=['AVX2', 'AVX512_CORE_VNNI', 'ALL'])
    p.add_argument('--one', nargs=2, metavar=('MODEL', 'RUN'), help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.one: print(json.dumps(one(a.one[0], Path(a.one[1]))))
    else: main(a.isas)
