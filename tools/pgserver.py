"A throwaway PostgreSQL server for tests and benchmarks: initdb + pg_ctl in a temp folder, on a unix socket, removed afterwards"
import os, shutil, subprocess, tempfile
from contextlib import contextmanager
from pathlib import Path

@contextmanager
def throwaway_postgres():
    "Start a PostgreSQL server for the `with` block; yields its URL, for optuna's RDB storage (SQLAlchemy 2.1's default driver for it: psycopg 3, the postgres extra)"
    initdb, pg_ctl = shutil.which('initdb'), shutil.which('pg_ctl')
    if not (initdb and pg_ctl): raise RuntimeError('PostgreSQL (initdb and pg_ctl on the PATH) is needed: apt-get install postgresql')
    d = Path(tempfile.mkdtemp(prefix='tlh-pg-'))
    as_pg = ['runuser', '-u', 'postgres', '--'] if os.geteuid() == 0 else []  # initdb refuses to run as root
    if as_pg: shutil.chown(d, 'postgres')
    run = lambda *a: subprocess.run([*as_pg, *a], check=True, capture_output=True, text=True)
    try:
        run(initdb, '-D', str(d/'data'), '-A', 'trust', '-U', 'tlh', '--no-sync')
        run(pg_ctl, '-D', str(d/'data'), '-o', f'-k {d} -c listen_addresses= -c fsync=off', '-w', '-l', str(d/'log'), 'start')
        try: yield f'postgresql://tlh@/postgres?host={d}'
        finally: run(pg_ctl, '-D', str(d/'data'), '-m', 'immediate', 'stop')
    finally: shutil.rmtree(d, ignore_errors=True)
