"""Execute the course in place: each notebook of nbs/ (or those named) in cpu mode without a GPU, full mode with one.

`make course` runs it. Every notebook is executed with its stored outputs replaced, its mode and minutes recorded in the
notebook's metadata (`tlhelpers`, kept by nbdev-clean) and in its title cell, then cleaned; bench/results/course_times.md
gets the notebook's minutes in that mode. `check` lists what is wrong with a notebook's stored outputs (tests/test_course.py).

Usage: .venv/bin/python tools/course.py [NOTEBOOK ...] [--mode cpu|full] [--timeout MINUTES]
"""
import argparse, os, platform, re, subprocess, sys, time
from pathlib import Path
import nbformat, pandas as pd

ROOT = Path(__file__).resolve().parents[1]
NBS, TIMES = ROOT/'nbs', ROOT/'bench'/'results'/'course_times.md'
COLS, NA = ['notebook', 'cpu_min', 'gpu_min', 'cpu_run', 'gpu_run'], '–'  # NA: not measured
TIME_LINE = re.compile(r'^\*Time to run:.*$', re.M)

def notebooks(names=()):
    "The course's notebooks in order, or those named (with or without `.ipynb`)"
    nbs = sorted(NBS.glob('[0-9]*.ipynb'))
    if not names: return nbs
    want = {Path(n).stem for n in names}
    if unknown := want - {p.stem for p in nbs}: raise SystemExit(f"No such notebook in nbs/: {', '.join(sorted(unknown))}")
    return [p for p in nbs if p.stem in want]

def read_times():
    "course_times.md's table as a DataFrame indexed by notebook (empty if there is none yet)"
    rows = [l.strip().strip('|').split('|') for l in TIMES.read_text().splitlines() if l.startswith('|')][2:] if TIMES.exists() else []
    df = pd.DataFrame([[c.strip() for c in r] for r in rows], columns=COLS[:len(rows[0])] if rows else COLS)
    return df.reindex(columns=COLS).fillna(NA).set_index('notebook')

def _minutes(v):
    try: return float(v)
    except ValueError: return float('nan')

def write_times(df):
    "Write course_times.md: a row per notebook, CPU and GPU minutes, totals"
    df = df.reindex([p.stem for p in notebooks()]).fillna(NA)
    cpu, gpu = df.cpu_min.map(_minutes), df.gpu_min.map(_minutes)
    head = ("# Course run times\n\nWritten by `make course` (tools/course.py): minutes to execute each notebook from a fresh kernel, "
            "in cpu mode on the CPU machine named in `cpu_run`, in full mode on the GPU named in `gpu_run`.\n\n"
            f"Total: {cpu.sum():.1f} min on CPU ({cpu.notna().sum()} of {len(df)} notebooks measured, longest {cpu.max():.1f} min); "
            f"{gpu.sum():.1f} min on GPU ({gpu.notna().sum()} measured).\n\n")
    TIMES.write_text(head + df.reset_index().to_markdown(index=False) + '\n')

def time_line(stem, times):
    "The title cell's line with the notebook's measured minutes"
    r = times.loc[stem] if stem in times.index else pd.Series({c: NA for c in COLS[1:]})
    fmt = lambda v: f'{v} min' if v != NA else 'not measured yet'
    return f"*Time to run: {fmt(r.cpu_min)} on a CPU (cpu mode), {fmt(r.gpu_min)} on a GPU (full mode); see `bench/results/course_times.md`.*"

def set_time_line(nb, line):
    "Put `line` at the end of the notebook's title cell (replacing an earlier one)"
    cell = next(c for c in nb.cells if c.cell_type == 'markdown' and c.source.lstrip().startswith('# '))
    src = TIME_LINE.sub('', cell.source).rstrip()
    cell.source = f'{src}\n\n{line}'

def check(path):
    "What is wrong with `path`'s stored outputs: none, or from quick mode, or no mode on record"
    nb = nbformat.read(path, as_version=4)
    mode = nb.metadata.get('tlhelpers', {}).get('mode')
    problems = [] if mode in ('cpu', 'full') else [f'mode on record is {mode!r}, not cpu or full: run `make course`']
    if not any(c.get('outputs') for c in nb.cells if c.cell_type == 'code'): problems.append('no stored outputs')
    return problems

def has_plot(path):
    "Does a stored output of `path` hold an image?"
    nb = nbformat.read(path, as_version=4)
    return any(k.startswith('image/') for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', []) for k in o.get('data', {}))

def execute(path, mode, timeout):
    "Execute `path` in place in `mode`; returns minutes"
    from nbclient import NotebookClient
    from fastcore.xtras import modified_env
    nb = nbformat.read(path, as_version=4)
    t0 = time.time()
    with modified_env('TLH_QUICK', TLH_MODE=mode, TLH_NO_BARS='1'):  # the kernel inherits this process's environment
        NotebookClient(nb, timeout=timeout * 60, kernel_name='python3', resources={'metadata': {'path': str(NBS)}}).execute()
    minutes = round((time.time() - t0) / 60, 1)
    nb.metadata['tlhelpers'] = dict(mode=mode, minutes=minutes, executed=time.strftime('%Y-%m-%d'))
    nbformat.write(nb, path)
    return minutes

def machine(mode):
    if mode == 'full':
        import torch
        if torch.cuda.is_available(): return torch.cuda.get_device_name()
    return f'{platform.machine()} x{os.cpu_count()}'

def main(names, mode, timeout):
    if mode is None:
        import torch
        mode = 'full' if torch.cuda.is_available() else 'cpu'
    col, failed = ('cpu' if mode == 'cpu' else 'gpu'), []
    for path in notebooks(names):
        print(f'{path.name}: executing in {mode} mode ...', flush=True)
        try: minutes = execute(path, mode, timeout)
        except Exception as e:  # the notebook keeps its stored outputs; the others still run
            print(f'{path.name}: FAILED, stored outputs kept: {str(e)[-2000:]}', flush=True)
            failed.append(path.name); continue
        times = read_times()
        times.loc[path.stem, [f'{col}_min', f'{col}_run']] = [f'{minutes:.1f}', f"{machine(mode)}, {time.strftime('%Y-%m-%d')}"]
        write_times(times)
        nb = nbformat.read(path, as_version=4); set_time_line(nb, time_line(path.stem, read_times())); nbformat.write(nb, path)
        subprocess.run([str(Path(sys.executable).parent/'nbdev-clean'), '--fname', str(path)], check=True, cwd=ROOT)
        print(f'{path.name}: {minutes:.1f} min', flush=True)
    if failed: raise SystemExit(f"Failed: {', '.join(failed)}")

if __name__ == '__main__':
    p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
    p.add_argument('notebooks', nargs='*', help='notebooks to run (default: all of nbs/)')
    p.add_argument('--mode', choices=['cpu', 'full'], help='default: full with a GPU, cpu without')
    p.add_argument('--timeout', type=float, default=30, help='minutes a cell may take')
    a = p.parse_args()
    main(a.notebooks, a.mode, a.timeout)
