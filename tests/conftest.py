import os, shutil, subprocess, sys
from pathlib import Path
import numpy as np, pytest
from PIL import Image

os.environ.setdefault('TLH_QUICK', '1')
sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'tools'))
from pgserver import throwaway_postgres

SHARED = Path(__file__).resolve().parents[2]/'shared'/'data'

@pytest.fixture(scope='session')
def hymenoptera():
    "The real ants/bees dataset, located the way users locate it"
    from tlhelpers.data import locate
    return locate('hymenoptera', download_missing=False)

def _png_with_size(path, w, h):
    "A tiny valid PNG whose header claims w x h pixels (a decompression-bomb stand-in)"
    import struct, zlib
    Image.new('L', (1, 1)).save(path)
    b = bytearray(path.read_bytes())
    b[16:24] = struct.pack('>II', w, h)
    b[29:33] = struct.pack('>I', zlib.crc32(bytes(b[12:29])))
    path.write_bytes(bytes(b))

@pytest.fixture
def messy_folder(tmp_path, hymenoptera):
    "Two classes of real photos plus one file of every bad and every convertible kind"
    for cls in ('ants', 'bees'):
        for split in ('train', 'val'):
            d = tmp_path/split/cls; d.mkdir(parents=True)
            for f in sorted((hymenoptera/split/cls).glob('*.jpg'))[:8]: shutil.copy(f, d)
    real = sorted((hymenoptera/'train'/'ants').glob('*.jpg'))[0]
    bad = tmp_path/'train'/'ants'
    (bad/'zero.jpg').touch()
    (bad/'text.jpg').write_text('this is not an image')
    data = real.read_bytes(); (bad/'truncated.jpg').write_bytes(data[:len(data) // 3])
    (bad/'corrupt.jpg').write_bytes(data[:200] + bytes(range(256)) * 20)
    Image.new('RGB', (5, 5)).save(bad/'tiny.png')
    _png_with_size(bad/'bomb.png', 40000, 40000)
    conv = tmp_path/'train'/'bees'
    src = Image.open(real).convert('RGB')
    src.convert('CMYK').save(conv/'cmyk.jpg')
    Image.fromarray((np.asarray(src.convert('L'), dtype=np.uint16) * 257)).save(conv/'deep16.png')
    src.convert('RGBA').save(conv/'rgba.png')
    src.convert('P').save(conv/'palette.png')
    src.convert('L').save(conv/'grey.jpg')
    return tmp_path

@pytest.fixture(scope='session')
def postgres_url():
    "A throwaway PostgreSQL server for the session (tools/pgserver.py); its SQLAlchemy URL"
    with throwaway_postgres() as url: yield url

# Running `tlh` in tests: as a subprocess, as a user would, or in-process (`main`) to save the start-up time
TLH = Path(sys.executable).parent/'tlh'

def tlh(*args, cwd):
    "Run `tlh args` in quick mode without progress bars; the CompletedProcess"
    env = dict(os.environ, TLH_QUICK='1', CI='1')
    return subprocess.run([str(TLH), *map(str, args)], cwd=cwd, env=env, capture_output=True, text=True, timeout=600)

def ok(r):
    assert r.returncode == 0, r.stderr[-3000:]
    return r

def refused(r, *words):
    "A clean failure: exit code 2, one `tlh: error:` line naming `words`, no traceback"
    assert r.returncode == 2, (r.returncode, r.stderr[-3000:])
    assert 'Traceback' not in r.stderr
    err = [l for l in r.stderr.splitlines() if l.startswith('tlh: error:')]
    assert len(err) == 1, r.stderr[-3000:]
    for w in words: assert w in err[0], err[0]

@pytest.fixture
def main(monkeypatch, capsys):
    "Call `tlh` in-process: (exit code, stdout, stderr)"
    monkeypatch.setenv('CI', '1'); monkeypatch.setenv('TLH_QUICK', '1')
    from tlhelpers.cli import main as tlh_main
    def run(*args):
        code = tlh_main([str(a) for a in args])
        out = capsys.readouterr()
        return code, out.out, out.err
    return run
