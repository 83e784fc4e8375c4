"""Execute the course in place: each notebook of nbs/ (or those named) in cpu mode without a GPU, full mode with one.

`make course` runs it. Every notebook is executed with its stored outputs replaced, its mode and minutes recorded in the
notebook's metadata (`tlhelpers`, kept by nbdev-clean) and in its title cell, then cleaned; bench/results/course_times.md
and the README's outline table get the notebook's minutes in that mode. `check` lists what is wrong with a notebook's stored outputs (tests/test_course.py).

Usage: .venv/bin/python tools/course.py [NOTEBOOK ...] [--mode cpu|full] [--timeout MINUTES]
"""
import argparse, base64, io, os, platform, re, subprocess, sys, time
from pathlib import Path
import nbformat, pandas as pd

ROOT = Path(__file__).resolve().parents[1]
NBS, TIMES = ROOT/'nbs', ROOT/'bench'/'results'/'course_times.md'
COLS, NA = ['notebook', 'cpu_min', 'gpu_min', 'cpu_run', 'gpu_run'], '–'  # NA: not measured
TIME_LINE = re.compile(r'^\*Time to run:.*$', re.M)

# Reference pages for the library's plumbing, after the lessons in the site's navigation; every other notebook is a lesson.
APPENDIX = ('00_core', '00a_weights', '00b_images', '14b_runtime', '14c_serve', '16_cli', '17_scaling_out')
LESSON_END = ('## What we learned', '## Questionnaire', '## Further research')
MIN_QUESTIONS = 15  # fastbook's questionnaires run 25-40
MAX_FIGURE_KB = 300  # a stored figure a page should load quickly
# The lessons whose point is a technique's gain: each stores a paired comparison of it (a `compare_preds` table, verdict column last)
GAIN_LESSONS = ('03_lr_and_epochs', '04_freezing', '06_augmentation', '07_progressive_resizing', '08_backbones', '09_hparam_search',
                '10_full_data', '11_tta', '12_ensembles')
VERDICT_ROW = re.compile(r'^\S.*\s(better|worse|within noise|baseline)\s*$', re.M)
LOCAL_PATH = re.compile(r'(?<![\w.~-])(?:/(?:work|tmp|root|home|Users|private|mnt|var/folders)/|[A-Za-z]:\\\\(?:Users|Documents))')
ANSI = re.compile(r'\x1b\[')
CHATTER = re.compile(r'A new study created|\[[WE]:onnxruntime')  # library log lines that tell a reader nothing: optuna's study notice, onnxruntime's warnings
WARNING = re.compile(r'\w*Warning\b|^WARNING|Traceback \(most recent call last\)', re.M)  # a stderr box a reader should not meet
PROSE_NUMBER = re.compile(r'(?<![\w.])(\d+\.\d+)(%?)(?![\w.]\d|\d)')  # 0.8656, 1.11, 94.0% (not 2.14.1, not 1.5x)
NUMBER = re.compile(r'(?<![\w.])-?\d+(?:\.\d+)?(?:e-?\d+)?')
BENCH_LINK = re.compile(r'bench/(?:results/)?([\w-]+)\.(?:md|py)')

def notebooks(names=()):
    "The course's notebooks in order, or those named (with or without `.ipynb`)"
    nbs = [p for p in [NBS/'index.ipynb'] if p.exists()] + sorted(NBS.glob('[0-9]*.ipynb'))  # the start page first
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

def update_readme(times, readme=ROOT/'README.md'):
    "Put each notebook's measured minutes into the README's outline table (its last two columns: CPU and GPU minutes)"
    lines = readme.read_text().splitlines(keepends=True)
    for i, l in enumerate(lines):
        m = re.match(r'^\| `([\w]+)` \|', l)
        if not m or m[1] not in times.index: continue
        cells = l.rstrip('\n').rstrip('|').split('|')
        cells[-2:] = [f' {times.loc[m[1], "cpu_min"]} ', f' {times.loc[m[1], "gpu_min"]} ']
        lines[i] = '|'.join(cells) + '|\n'
    readme.write_text(''.join(lines))

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

def lessons():
    "The course's lessons in order: `index` (the start page) and every numbered notebook not in the appendix"
    return [p for p in notebooks() if p.stem not in APPENDIX]

def appendix():
    "The appendix's reference notebooks, in order"
    return [p for p in notebooks() if p.stem in APPENDIX]

def output_text(o):
    "The text a stored output shows: a stream's text, or an execute result's / display's text, html and markdown"
    if o.get('output_type') == 'stream': return o.get('text', '')
    if o.get('output_type') == 'error': return '\n'.join(o.get('traceback', []))
    d = o.get('data', {})
    return '\n'.join(d.get(k, '') if isinstance(d.get(k, ''), str) else ''.join(d[k]) for k in ('text/plain', 'text/html', 'text/markdown'))

def page_problems(path):
    "What a reader should not meet in `path`'s stored outputs: warning boxes, local paths, ANSI codes, library chatter, figures over `MAX_FIGURE_KB`, empty epoch-log rows"
    nb, problems = nbformat.read(path, as_version=4), []
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'code': continue
        cols = None
        for o in c.get('outputs', []):
            t = output_text(o)
            if o.get('output_type') == 'stream' and o.get('name') == 'stderr' and WARNING.search(t): problems.append(f'cell {i}: warning box: {t.strip()[:80]!r}')
            if m := LOCAL_PATH.search(t): problems.append(f'cell {i}: local path {t[m.start():m.start() + 60].split()[0]!r}')
            if ANSI.search(t): problems.append(f'cell {i}: ANSI escape code')
            if m := CHATTER.search(t): problems.append(f'cell {i}: library chatter: {m.group()!r}')
            if 'image/png' in o.get('data', {}) and (kb := _png_kb(o)) > MAX_FIGURE_KB: problems.append(f'cell {i}: figure of {kb:.0f} KB, over {MAX_FIGURE_KB} KB')
            if o.get('output_type') != 'stream' or o.get('name') != 'stdout': continue
            for line in t.splitlines():  # an epoch log (core.EpochLog): a header, then one row per epoch with every column filled
                if line.startswith('epoch  '): cols = len(line.split()); continue
                if cols and line.split() and line.split()[0].isdigit() and len(line.split()) < cols:
                    problems.append(f'cell {i}: epoch-log row with empty columns: {line.strip()!r}')
    return problems

def lesson_problems(path):
    "Which of a lesson's closing sections `path` lacks: What we learned, a questionnaire of `MIN_QUESTIONS` or more questions, Further research"
    text = '\n\n'.join(c.source for c in nbformat.read(path, as_version=4).cells if c.cell_type == 'markdown')
    problems = [f'no "{h[3:]}" section' for h in LESSON_END if not re.search(rf'^{re.escape(h)}\s*$', text, re.M)]
    if '## Questionnaire' in text:
        quiz = re.split(r'^## ', text.split('## Questionnaire', 1)[1], flags=re.M)[0]
        if (n := len(re.findall(r'^\s*\d+\.\s', quiz, re.M))) < MIN_QUESTIONS: problems.append(f'questionnaire has {n} questions, fewer than {MIN_QUESTIONS}')
    return problems

def stored_verdicts(path):
    "The verdicts of the paired comparisons (`compare_preds` tables, verdict column last) that `path`'s stored outputs show, in order"
    nb = nbformat.read(path, as_version=4)
    texts = [output_text(o) for c in nb.cells if c.cell_type == 'code' for o in c.get('outputs', [])]
    return [v for t in texts if re.search(r'\bverdict\b', t) for v in VERDICT_ROW.findall(t)]

def _backs(values, num, pct):
    "Does one of `values` (numbers a reader can see, sign dropped: prose says 'lost 0.75 point' of a change of -0.75) round to the prose number `num` (a percentage when `pct`)?"
    d, x = len(num.split('.')[1]), float(num)
    return any(round(v, d) == x or (pct and round(v * 100, d) == x) or (not pct and round(v / 100, d) == x) for v in map(abs, values))

def _numbers(text): return {float(m) for m in NUMBER.findall(text)}

def unbacked_numbers(path):
    "Numbers in `path`'s prose (two or more decimals, or a percentage with a decimal) that none of its code or outputs shows, nor a bench file the paragraph (or, for a table, the one above it) names"
    nb = nbformat.read(path, as_version=4)
    seen = _numbers('\n'.join(c.source + '\n' + '\n'.join(output_text(o) for o in c.get('outputs', [])) for c in nb.cells if c.cell_type == 'code'))
    out = []
    for i, c in enumerate(nb.cells):
        if c.cell_type != 'markdown': continue
        paras = re.split(r'\n\s*\n', c.source)
        for k, para in enumerate(paras):
            prose = re.sub(r'\*Time to run:.*?\*', '', para)
            named = BENCH_LINK.findall(prose) + BENCH_LINK.findall(paras[k - 1] if k else '')  # a table's files: named in it or just above
            bench = set().union(*[_numbers(f.read_text()) for f in {ROOT/'bench'/'results'/f'{b}.md' for b in named} if f.exists()])
            for num, pct in PROSE_NUMBER.findall(prose):
                if (pct or len(num.split('.')[1]) >= 2) and not _backs(seen | bench, num, bool(pct)): out.append(f'cell {i}: {num}{pct}')
    return out

def _png_kb(o): return len(base64.b64decode(o['data']['image/png'])) / 1024

def shrink_figures(nb, limit=MAX_FIGURE_KB):
    "Re-encode `nb`'s stored PNG figures over `limit` KB (photo grids) with a 256-colour palette, then smaller, until they fit; returns how many"
    from PIL import Image
    n = 0
    for c in nb.cells:
        for o in c.get('outputs', []) if c.cell_type == 'code' else []:
            if 'image/png' not in o.get('data', {}) or _png_kb(o) <= limit: continue
            im, scale = Image.open(io.BytesIO(base64.b64decode(o['data']['image/png']))).convert('RGB'), 1.0
            while True:
                small = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS) if scale < 1 else im
                buf = io.BytesIO(); small.quantize(256, method=Image.Quantize.MEDIANCUT).save(buf, 'PNG', optimize=True)
                if buf.tell() / 1024 <= limit or scale < 0.3: break
                scale *= 0.85
            o['data']['image/png'] = base64.b64encode(buf.getvalue()).decode(); n += 1
    return n

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
    shrink_figures(nb)
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
        write_times(times); update_readme(read_times())
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
