"""Deploy: ONNX parity with PyTorch, int8 agreement, torch-free prediction, `tlh predict --runtime`, and `tlh serve` answering
a gradio_client call and a real browser (headless Chromium, the system's, driven by playwright) with the right class."""
import json, os, shutil, socket, subprocess, sys, time
from pathlib import Path
import numpy as np, pandas as pd, pytest
from tlhelpers.data import items_df, locate

TLH = str(Path(sys.executable).parent/'tlh')
ENV = dict(os.environ, TLH_QUICK='1', CI='1', GRADIO_ANALYTICS_ENABLED='False')

def tlh(*args, timeout=600):
    r = subprocess.run([TLH, *map(str, args)], env=ENV, capture_output=True, text=True, timeout=timeout)
    assert r.returncode == 0, r.stderr[-3000:]
    return r

@pytest.fixture(scope='module')
def model(tmp_path_factory):
    "A quick `tlh train` run on ants and bees, exported by `tlh export --onnx --int8`"
    run = tmp_path_factory.mktemp('deploy')/'run'
    tlh('train', 'hymenoptera', '--quick', '--epochs', '0', '--size', '128', '--out', run)  # int8 of a 64 px model is degenerate
    r = tlh('export', run, '--onnx', '--int8')
    assert 'max |ONNX - PyTorch|' in r.stdout and (run/'model.onnx').exists() and (run/'model.int8.onnx').exists()
    return run

@pytest.fixture(scope='module')
def valid():
    df = items_df(locate('hymenoptera'))
    return df[df.is_valid == 1].groupby('label').head(20).reset_index(drop=True)

def test_onnx_matches_pytorch_and_int8_agrees(model, valid):
    from tlhelpers.deploy import onnx_parity
    from tlhelpers.runtime import OnnxClassifier
    assert onnx_parity(model, valid.fname[:32].tolist()) < 1e-4
    p32, p8 = (OnnxClassifier(model, int8=q).predict(valid.fname) for q in (False, True))
    sure = p32.max(1) > 0.9                                    # the quick model is unsure of many images; int8 must keep the clear calls
    assert sure.sum() >= 5 and (p32.argmax(1) == p8.argmax(1))[sure].mean() >= 0.9, (sure.sum(), (p32.argmax(1) == p8.argmax(1)).mean())
    assert (model/'model.int8.onnx').stat().st_size < (model/'model.onnx').stat().st_size / 2.5

def test_predict_runtimes_and_torch_free_import_graph(model, valid, tmp_path):
    from tlhelpers.runtime import TORCH_FREE_CHECK
    imgs = tmp_path/'imgs'; imgs.mkdir()
    for f in valid.fname: shutil.copy(f, imgs/f'{f.parent.name}_{f.name}')
    (imgs/'broken.jpg').write_text('not an image')
    r = subprocess.run([sys.executable, '-c', TORCH_FREE_CHECK, str(model), 'int8', str(imgs), str(tmp_path/'free.csv')],
                       capture_output=True, text=True, env=ENV, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    assert r.stdout.strip().split('\n')[-1] == f'{len(valid)} 1 []'          # every image predicted, the broken one skipped, no torch
    preds = {}
    for rt in ('torch', 'onnx', 'onnx-int8'):
        tlh('predict', model, imgs, '--runtime', rt, '--out', tmp_path/f'{rt}.csv')
        preds[rt] = pd.read_csv(tmp_path/f'{rt}.csv').set_index('filename')
    assert (preds['onnx-int8'].label == pd.read_csv(tmp_path/'free.csv').set_index('filename').label[preds['onnx-int8'].index]).all()
    for rt in ('onnx', 'onnx-int8'):
        assert sorted(preds[rt].index) == sorted(preds['torch'].index)
        assert (preds[rt].label == preds['torch'].label[preds[rt].index]).mean() >= 0.9, rt

def _free_port():
    with socket.socket() as s: s.bind(('127.0.0.1', 0)); return s.getsockname()[1]

@pytest.fixture(scope='module')
def served(model):
    "`tlh serve` running in its own process on a free port; its URL"
    port = _free_port()
    p = subprocess.Popen([TLH, 'serve', str(model), '--port', str(port)], env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    url, t0 = f'http://127.0.0.1:{port}/', time.time()
    while True:
        assert p.poll() is None, p.stdout.read()[-3000:]
        try:
            with socket.create_connection(('127.0.0.1', port), timeout=1): break
        except OSError: pass
        assert time.time() - t0 < 180, 'tlh serve did not start'
        time.sleep(0.5)
    yield url
    p.terminate(); p.wait(timeout=30)

def _right_image(model, valid):
    "A validation image, its true class, which the model gets right"
    from tlhelpers.inference import load_model
    clf = load_model(model)
    probs = clf.predict(valid.fname).numpy()
    hit = np.flatnonzero(np.array(clf.vocab)[probs.argmax(1)] == valid.label.values)
    assert len(hit), 'the quick model gets no validation image right'
    return str(valid.fname[hit[0]]), valid.label[hit[0]]

def test_serve_answers_gradio_client(model, valid, served):
    from gradio_client import Client, handle_file
    img, label = _right_image(model, valid)
    res = Client(served, verbose=False).predict(handle_file(img), api_name='/predict')
    assert res['label'] == label and {c['label'] for c in res['confidences']} == {'ants', 'bees'}

def test_serve_in_a_browser(model, valid, served, tmp_path):
    "Headless Chromium uploads an image to the page and sees the right class; the screenshot is kept (TLH_SCREENSHOTS=folder)"
    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    assert chromium, "Debian's chromium is not installed (.ci/run and `make browser` install it)"
    from playwright.sync_api import sync_playwright
    img, label = _right_image(model, valid)
    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=chromium, args=['--no-sandbox'])
        page = browser.new_page(viewport=dict(width=1200, height=900))
        errors = []
        page.on('pageerror', lambda e: errors.append(str(e)))
        page.goto(served, wait_until='networkidle')
        page.locator('input[type=file]').first.set_input_files(img)
        page.get_by_role('button', name='Submit').click()
        page.locator('[data-testid="label-output-value"]').first.wait_for(timeout=60_000)
        page.wait_for_function(f"document.body.innerText.includes('{label}')", timeout=60_000)
        shot = tmp_path/'serve.png'
        page.screenshot(path=str(shot), full_page=True)
        text = page.locator('[data-testid="label-output-value"]').first.inner_text()
        browser.close()
    assert label in text and not errors, (text, errors)
    if os.environ.get('TLH_SCREENSHOTS'): shutil.copy(shot, Path(os.environ['TLH_SCREENSHOTS'])/'serve.png')
