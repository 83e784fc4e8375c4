"""`make test` on a fresh machine: the system packages the tests use (Chromium, Open MPI) are installed as root, or, without root,
`make` stops before running anything and prints the one command to run."""
import os, shutil, subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

def _make(tmp_path, uid, have=()):
    "`make system` with a PATH that holds only a fake `id` (printing `uid`) and the commands named in `have`"
    bin_ = tmp_path/'bin'; bin_.mkdir(exist_ok=True)
    for name, out in [('id', uid), *[(h, '') for h in have]]:
        (bin_/name).write_text(f'#!/bin/sh\necho {out}\n'); (bin_/name).chmod(0o755)
    return subprocess.run([shutil.which('make'), '-s', '-C', str(ROOT), 'system'], capture_output=True, text=True,
                          env={'PATH': str(bin_), 'HOME': os.environ.get('HOME', '/root')}, timeout=60)

def test_without_root_make_stops_with_the_install_command(tmp_path):
    r = _make(tmp_path, 1000)
    assert r.returncode != 0
    assert 'sudo apt-get install -y chromium openmpi-bin' in r.stdout + r.stderr

def test_nothing_to_do_when_both_are_there(tmp_path):
    r = _make(tmp_path, 1000, have=('chromium', 'mpirun'))
    assert r.returncode == 0 and r.stdout == '', r.stdout + r.stderr

def test_test_target_sets_up_the_system_first():
    make = (ROOT/'Makefile').read_text()
    assert 'test: $(STAMP) system' in make
    assert 'make browser mpi' not in (ROOT/'.ci'/'run').read_text()  # CI relies on `make test` alone, like a newcomer
