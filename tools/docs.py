"""`make docs`: render nbs/*.ipynb, with their stored outputs, into a static course site in `_docs/` (mkdocs-material +
mkdocs-jupyter) that loads nothing from the internet: the start page (index) as home, the lessons, then the appendix; each
lesson offers its practice copy from `clean/`, and cells that only run checks are folded. The source it renders is written
under `_build/`; this file is also the site's mkdocs hook (`on_page_content`)."""
import json, re, shutil, sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
sys.path.insert(0, str(ROOT/'tools'))
from course import notebooks, lessons, appendix
WIDGET = 'application/vnd.jupyter.widget-view+json'
MATHJAX = 'assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,offline'  # relative: pages sit at the site's top level
# The fonts jupyter-server-mathjax ships (MathJax's default TeX ones are absent), and no `url('about:blank')` font, an error in Chromium
MATHJAX_CFG = '''MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, imageFont: null, webFont: "STIX-Web",
                                    styles: {"@font-face": {src: "local(MathJax_Blank)"}}}});
MathJax.Ajax.loadComplete("[MathJax]/config/offline.js");'''
DOWNLOAD = '''{% extends "base.html" %}{% block content %}{% if page.file.src_uri.endswith('.ipynb') %}
<a href="{{ page.file.src_uri }}" download title="Download the notebook" class="md-content__button md-icon">
{% include ".icons/material/download.svg" %}</a>{% endif %}{% if page.file.src_uri in config.extra.practice %}
<a href="clean/{{ page.file.src_uri }}" download class="md-content__button md-icon practice-copy"
 title="Practice copy: code, headings and questions, no outputs or explanations">{% include ".icons/material/pencil.svg" %}</a>
{% endif %}{{ super() }}{% endblock %}'''  # on notebook pages a download button, and on lessons one for the practice copy (clean/)
TEST_CALLS = ('test_eq', 'test_ne', 'test_fail', 'test_close', 'test_is', 'test_shuffled', 'test_stdout', 'test_warns')

def nb_info(path):
    "Title (`# ...`) and summary (`> ...`) from the first markdown cell of the notebook at `path`"
    cell = next((c for c in json.loads(Path(path).read_text())['cells'] if c['cell_type'] == 'markdown'), dict(source=''))
    lines = ''.join(cell['source']).splitlines()
    title = next((l[2:].strip() for l in lines if l.startswith('# ')), Path(path).stem)
    return title, next((l.lstrip('> ').strip() for l in lines if l.startswith('>')), '')

def test_only(source):
    "Is a code cell nothing but checks (fastcore `test_*` calls and asserts), which a reader of the site can skip?"
    import ast
    try: body = ast.parse(source).body
    except SyntaxError: return False
    call = lambda n: isinstance(n, ast.Expr) and isinstance(n.value, ast.Call) and getattr(n.value.func, 'id', '') in TEST_CALLS
    return bool(body) and all(isinstance(n, ast.Assert) or call(n) for n in body)

def folded(source):
    "A markdown cell that shows `source` folded away under a 'checks' summary"
    import html
    return dict(cell_type='markdown', metadata={}, source=f'<details class="checks"><summary>checks</summary><pre><code>{html.escape(source)}</code></pre></details>')

def page_nb(path):
    "The notebook at `path` as the site shows it: no nbdev `#|` directives or `#| hide` cells, no ipywidgets (their renderer is on a CDN)"
    nb = json.loads(Path(path).read_text())
    nb['metadata'].pop('widgets', None)
    for c in nb['cells']:
        if c['cell_type'] != 'code': continue
        lines = ''.join(c['source']).splitlines(keepends=True)
        c['source'] = '' if any(l.startswith('#| hide') for l in lines) else ''.join(l for l in lines if not l.startswith('#|'))
        for o in c.get('outputs', []):
            if WIDGET in o.get('data', {}): o['data'] = {'text/plain': '(an interactive widget: run the notebook to use it)'}
    nb['cells'] = [c for c in nb['cells'] if ''.join(c['source']).strip() or c.get('outputs')]
    pages = {f.stem for f in notebooks()}
    for c in nb['cells']:  # a link to another notebook of the course goes to its page (Jupyter follows .ipynb links, the site its pages)
        if c['cell_type'] == 'markdown':
            c['source'] = re.sub(r'\]\(([\w-]+)\.ipynb(#[^)]*)?\)', lambda m: '](' + (f'{m[1]}.html' if m[1] in pages else f'{m[1]}.ipynb') + (m[2] or '') + ')',
                                 ''.join(c['source']))
    nb['cells'] = [folded(''.join(c['source'])) if c['cell_type'] == 'code' and not c.get('outputs') and test_only(''.join(c['source'])) else c
                   for c in nb['cells']]
    return json.dumps(nb)

def nav_item(f): return {nb_info(f)[0].replace('`', ''): f.name}

def write_source(build_dir=ROOT/'_build', site_dir=ROOT/'_docs'):
    "Write the docs source (home page, cleaned notebooks, MathJax) and `mkdocs.yml` under `build_dir`; return the config's path"
    import jupyter_server_mathjax, yaml
    build_dir, site_dir = Path(build_dir).resolve(), Path(site_dir).resolve()
    src, nbs = build_dir/'docs_src', notebooks()
    shutil.rmtree(src, ignore_errors=True); src.mkdir(parents=True)
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent/'static', src/'assets'/'mathjax')
    (src/'assets'/'mathjax'/'config'/'offline.js').write_text(MATHJAX_CFG)
    (build_dir/'theme').mkdir(exist_ok=True); (build_dir/'theme'/'main.html').write_text(DOWNLOAD)
    for f in nbs: (src/f.name).write_text(page_nb(f))
    cfg = dict(site_name='tlhelpers: practical transfer learning', docs_dir=str(src), site_dir=str(site_dir), use_directory_urls=False,
               strict=True, theme=dict(name='material', font=False, custom_dir=str(build_dir/'theme'), features=['navigation.sections']),
               hooks=[str(ROOT/'tools'/'docs.py')],
               nav=[dict(Home='index.ipynb'), dict(Lessons=[nav_item(f) for f in lessons() if f.stem != 'index']),
                    dict(Appendix=[nav_item(f) for f in appendix()])], markdown_extensions=['tables'],
               extra=dict(practice=[f.name for f in lessons()]),
               plugins=['search', {'mkdocs-jupyter': dict(execute=False, include_source=True, include_requirejs=False, no_prompt=True,
                        ignore_h1_titles=True, custom_mathjax_url=MATHJAX, cache_dir=str(ROOT/'_build'/'nb_cache'))}])
    (build_dir/'mkdocs.yml').write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return build_dir/'mkdocs.yml'

def build(site_dir=ROOT/'_docs', build_dir=ROOT/'_build'):
    "Render the course into `site_dir`; return it"
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config
    mkdocs_build(load_config(str(write_source(build_dir, site_dir))))
    shutil.copytree(ROOT/'clean', Path(site_dir)/'clean', dirs_exist_ok=True)  # the practice copies, offered for download
    return Path(site_dir)

def on_page_content(html, **kwargs):
    "mkdocs hook: drop nbconvert's mermaid loader (it imports from a CDN; the notebooks have no mermaid diagrams)"
    return re.sub(r'<script type="module">(?:(?!</script>).)*?jp-Mermaid.*?</script>', '', html, flags=re.S)

if __name__ == '__main__':
    import logging; logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')
    print(f'site in {build(*sys.argv[1:2]).resolve()}')
