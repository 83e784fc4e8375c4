"""Scaling out on one machine: data-parallel training with 1 vs 2 processes, and a shared search with 1 vs 2 workers.

Run from the project root: `flock /tmp/heavy.lock .venv/bin/python bench/bench_scale.py [--data flowers] [--mode cpu] [--epochs 2]`
Training: `tlh train DATA` started by `accelerate launch` (CPU processes through Open MPI, GPUs through torchrun), the
machine's cores split between the processes, the same batch size per process. Seconds per unfrozen epoch (training and
validation) come from the run's epoch log; each process count is run `--repeats` times, interleaved. Search: `tlh search` grid workers sharing one study on a throwaway PostgreSQL
server (tools/pgserver.py), features cached beforehand. Prints one table and appends it to bench/results/bench_scale.md.
"""
import argparse, datetime, json, os, platform, re, shutil, subprocess, sys, tempfile, time
from pathlib import Path
import pandas as pd, torch
from fastcore.xtras import modified_env
sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'tools'))
from pgserver import throwaway_postgres
from tlhelpers.distributed import launch, rank_digests

def epoch_seconds(log):
    "Seconds of each epoch of the last fit in an epoch log (the unfrozen stage)"
    last = log[log.rindex('train_loss'):]
    return [int(m) * 60 + int(s) for m, s in re.findall(r'^\d+\s.*\s(\d\d):(\d\d)\s*$', last, re.M)]

def train(processes, data, epochs, bs, work, gpu):
    out = work/f'train-{processes}'
    t = time.perf_counter()
    with modified_env(OMP_NUM_THREADS=str(max(1, os.cpu_count() // processes)), CI='1'):
        r = launch(['train', data, '--epochs', epochs, '--bs', bs, '--out', out], processes, cpu=not gpu)
    wall = time.perf_counter() - t
    if r.returncode: raise RuntimeError(r.stdout[-2000:] + r.stderr[-2000:])
    m, secs = json.loads((out/'metrics.json').read_text()), epoch_seconds(r.stdout)
    return dict(part='train', workers=processes, threads_each=max(1, os.cpu_count() // processes), bs_each=bs,
                s_per_epoch=sum(secs) / len(secs), images_per_s=m['n_train'] / (sum(secs) / len(secs)),
                accuracy=m['accuracy'], same_weights=len(set(rank_digests(r.stdout).values())) <= 1, wall_min=wall / 60)

def search(workers, data, url, work):
    tlh, study = str(Path(sys.executable).parent/'tlh'), f'scale-{workers}'
    t = time.perf_counter()
    with modified_env(OMP_NUM_THREADS=str(max(1, os.cpu_count() // workers)), CI='1'):
        procs = [subprocess.Popen([tlh, 'search', data, '--kind', 'grid', '--storage', url, '--study', study, '--out', str(work/f'{study}-{i}')],
                                  stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for i in range(workers)]
        logs = [p.communicate()[0] for p in procs]
    wall = time.perf_counter() - t
    if any(p.returncode for p in procs): raise RuntimeError('\n'.join(l[-2000:] for l in logs))
    import optuna
    trials = [t for t in optuna.load_study(study_name=study, storage=url).trials if t.state.name == 'COMPLETE']
    cells = {tuple(sorted(t.params.items())) for t in trials}
    return dict(part='search', workers=workers, threads_each=max(1, os.cpu_count() // workers), trials=len(trials),
                cells_run_twice=len(trials) - len(cells), accuracy=max(t.value for t in trials), wall_min=wall / 60)

def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument('--data', default='flowers'); ap.add_argument('--mode', default='cpu', help='settings mode of the training runs')
    ap.add_argument('--epochs', type=int, default=2); ap.add_argument('--bs', type=int, default=32)
    ap.add_argument('--search-data', default='hymenoptera')
    ap.add_argument('--repeats', type=int, default=2, help='training runs per process count, interleaved (1, 2, 1, 2): this machine is noisy')
    a = ap.parse_args()
    gpu = torch.cuda.is_available()
    work = Path(tempfile.mkdtemp(prefix='bench_scale_'))
    rows = []
    with modified_env(TLH_MODE=a.mode, TLH_QUICK='0'):
        for r in range(a.repeats):
            for n in (1, 2): rows.append(dict(train(n, a.data, a.epochs, a.bs, work/f'r{r}', gpu), repeat=r)); print(rows[-1], flush=True)
    with modified_env(TLH_MODE='full', TLH_QUICK='0'):
        from tlhelpers.search import trial_features
        trial_features(a.search_data)  # cached once, so both searches start from the same features
        with throwaway_postgres() as url:
            for n in (1, 2): rows.append(search(n, a.search_data, url, work)); print(rows[-1], flush=True)
    shutil.rmtree(work, ignore_errors=True)
    table = pd.DataFrame(rows)
    md = table.to_markdown(index=False, floatfmt='.3f')
    where = f"{torch.cuda.get_device_name()} x{torch.cuda.device_count()}" if gpu else f'CPU, {os.cpu_count()} cores, {platform.machine()}'
    head = (f"## {datetime.datetime.now():%Y-%m-%d %H:%M} {where}; train: tlh train {a.data}, {a.mode} mode, {a.epochs} unfrozen epochs, "
            f"bs {a.bs} per process; search: tlh search {a.search_data} --kind grid (full mode) on PostgreSQL")
    print(head, md, sep='\n\n')
    with open(Path(__file__).parent/'results'/'bench_scale.md', 'a') as f: f.write(f'{head}\n\n{md}\n\n')

if __name__ == '__main__': main()
