"""The course site (`make docs`) in a real browser (headless Chromium, the system's, driven by playwright): every page answers 200
with no console or page errors, no failed, erroring or non-local requests and no broken images; the home page and the navigation
list every lesson in order; 05a's stored plots render. Full-page screenshots are kept in _build/screenshots/."""
import functools, http.server, importlib.util, json, shutil, threading, urllib.request
from pathlib import Path
import pytest

ROOT = Path(__file__).resolve().parents[1]
SHOTS = ROOT/'_build'/'screenshots'
_spec = importlib.util.spec_from_file_location('tlh_docs', ROOT/'tools'/'docs.py')
docs = importlib.util.module_from_spec(_spec); _spec.loader.exec_module(docs)
LESSONS = [f'{f.stem}.html' for f in docs.lessons() if f.stem != 'index']
APPENDIX = [f'{f.stem}.html' for f in docs.appendix()]

FACTS = """() => {
  const ok = i => i.complete && i.naturalWidth > 0, links = sel => [...document.querySelectorAll(sel)].map(a => a.href.split('#')[0]);
  return {broken: [...document.images].filter(i => !ok(i)).map(i => i.src.slice(0, 100)),
          plots: [...document.querySelectorAll('.jp-OutputArea-output img')].filter(ok).length,
          nav: [...document.querySelectorAll('.md-sidebar--primary .md-nav--primary a.md-nav__link')]
               .filter(a => !a.closest('.md-nav--secondary')).map(a => a.href.split('#')[0]).filter((h, i, all) => all.indexOf(h) === i),
          sections: [...document.querySelectorAll('.md-sidebar--primary .md-nav--primary > .md-nav__list > .md-nav__item--nested')]
               .map(li => [li.querySelector('label, a').textContent.trim(),
                           [...li.querySelectorAll('nav a.md-nav__link')].filter(a => !a.closest('.md-nav--secondary')).map(a => a.href.split('#')[0])]),
          practice: document.querySelector('article a.practice-copy')?.href,
          folded: document.querySelectorAll('details.checks').length,
          links: links('article a[href]'), download: document.querySelector('article a[download]')?.href}
}"""

class _Quiet(http.server.SimpleHTTPRequestHandler):
    def log_message(self, *args): pass

def serve(folder):
    "An http server for `folder` on a free local port, in a daemon thread; its base URL and the server"
    srv = http.server.ThreadingHTTPServer(('127.0.0.1', 0), functools.partial(_Quiet, directory=str(folder)))
    threading.Thread(target=srv.serve_forever, daemon=True).start()
    return f'http://127.0.0.1:{srv.server_port}/', srv

@pytest.fixture(scope='module')
def browser():
    chromium = shutil.which('chromium') or shutil.which('chromium-browser')
    assert chromium, "Debian's chromium is not installed: run `make system` (`make test` does it first)"
    from playwright.sync_api import sync_playwright
    with sync_playwright() as pw:
        b = pw.chromium.launch(executable_path=chromium, args=['--no-sandbox'])
        yield b
        b.close()

def visit(browser, base, name, shot=None):
    "Open `base+name`; its status, problems (console and page errors, failed, erroring or non-local requests, broken images) and facts"
    ctx = browser.new_context(viewport=dict(width=1280, height=900))
    problems = []
    def route(r):
        if r.request.url.startswith(base) or r.request.url.startswith('data:'): return r.continue_()
        problems.append(f'external request {r.request.url}'); r.abort()
    ctx.route('**/*', route)
    page = ctx.new_page()
    page.on('console', lambda m: m.type == 'error' and problems.append(f'console error: {m.text}'))
    page.on('pageerror', lambda e: problems.append(f'page error: {e}'))
    page.on('requestfailed', lambda r: problems.append(f'request failed: {r.url} {r.failure}'))
    page.on('response', lambda r: r.status >= 400 and problems.append(f'HTTP {r.status}: {r.url}'))
    resp = page.goto(base + name, wait_until='networkidle')
    page.wait_for_timeout(200)                                           # let MathJax finish typesetting
    facts = page.evaluate(FACTS)
    if shot: page.screenshot(path=str(shot), full_page=True)
    ctx.close()
    problems += [f'broken image {s}' for s in facts['broken']]
    return resp.status, problems, facts

@pytest.fixture(scope='module')
def site(tmp_path_factory, browser):
    "The site `make docs` builds (here into a temporary folder), served over http; its URL and every page's (status, problems, facts)"
    tmp = tmp_path_factory.mktemp('docs')
    site = docs.build(site_dir=tmp/'site', build_dir=tmp/'build')
    shutil.rmtree(SHOTS, ignore_errors=True); SHOTS.mkdir(parents=True)
    base, srv = serve(site)
    pages = sorted(p.name for p in site.glob('*.html'))
    yield base, {p: visit(browser, base, p, SHOTS/f'{Path(p).stem}.png') for p in pages}
    srv.shutdown()

def test_every_page_loads_cleanly(site):
    base, pages = site
    assert set(LESSONS) | set(APPENDIX) | {'index.html', '404.html'} <= set(pages), sorted(pages)
    bad = {p: (status, problems) for p, (status, problems, _) in pages.items() if status != 200 or problems}
    assert not bad, bad

def test_home_page_and_navigation_list_every_lesson(site):
    "The start page is the home page and links every lesson; the navigation: home, the lessons in order, then the appendix apart"
    base, pages = site
    want, extra = [base + p for p in LESSONS], [base + p for p in APPENDIX]
    assert 'Your first classifier' in (ROOT/'nbs'/'index.ipynb').read_text()
    assert [l for l in want + extra if l not in pages['index.html'][2]['links']] == []
    for p in ['index.html', *LESSONS, *APPENDIX]:
        facts = pages[p][2]
        assert facts['nav'] == [base + 'index.html', *want, *extra], p
        assert [s for s, _ in facts['sections']] == ['Lessons', 'Appendix'] and facts['sections'][1][1] == extra, (p, facts['sections'])

def test_lesson_pages_offer_their_practice_copy_and_fold_checks(site):
    base, pages = site
    for p in ['index.html', *LESSONS]:
        url = pages[p][2]['practice']
        assert url == base + 'clean/' + p.replace('.html', '.ipynb'), (p, url)
        with urllib.request.urlopen(url) as r: nb = json.load(r)
        assert not any(c.get('outputs') for c in nb['cells']), url
    assert not any(pages[p][2]['practice'] for p in APPENDIX)
    assert pages['04_freezing.html'][2]['folded'] >= 2  # its test-only cells, under "checks"

def test_test_only_cells_are_recognised():
    assert docs.test_only('test_eq(a, 1)\nassert b')
    assert not docs.test_only('x = 1\ntest_eq(x, 1)') and not docs.test_only('show_doc(f)') and not docs.test_only('')

def test_lesson_pages_offer_their_notebook(site):
    base, pages = site
    for p in ['index.html', *LESSONS, *APPENDIX]:
        url = pages[p][2]['download']
        assert url == base + p.replace('.html', '.ipynb'), (p, url)
        with urllib.request.urlopen(url) as r: assert json.load(r)['cells'], url

def test_stored_plots_render(site):
    "05a's stored image outputs are drawn in its page and show in its screenshot"
    assert site[1]['05a_audit.html'][2]['plots'] >= 3
    assert (SHOTS/'05a_audit.png').stat().st_size > 100_000

def test_the_check_catches_a_broken_page(browser, tmp_path):
    "A page with a missing image, a script error and a CDN script fails the checks above"
    (tmp_path/'bad.html').write_text('<img src="missing.png"><script>throw new Error("boom")</script>'
                                     '<script src="https://cdn.jsdelivr.net/npm/x.js"></script>')
    base, srv = serve(tmp_path)
    try: status, problems, facts = visit(browser, base, 'bad.html')
    finally: srv.shutdown()
    text = '\n'.join(problems)
    assert status == 200 and facts['broken'] and 'HTTP 404' in text and 'boom' in text, text
    assert 'external request https://cdn.jsdelivr.net' in text, text

def test_links_between_notebooks_go_to_their_pages():
    page = json.loads(docs.page_nb(ROOT/'nbs'/'index.ipynb'))
    text = '\n'.join(c['source'] for c in page['cells'] if c['cell_type'] == 'markdown')
    assert '](01_data.html)' in text and '](01_data.ipynb)' not in text
