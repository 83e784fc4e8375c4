"""`make docs`: render nbs/*.ipynb, with their stored outputs, into a static course site in `_docs/` (mkdocs-material +
mkdocs-jupyter) that loads nothing from the internet. The source it renders is written under `_build/`; this file is also
the site's mkdocs hook (`on_page_content`)."""
import json, re, shutil, sys, tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
NBS = ROOT/'nbs'
sys.path.insert(0, str(ROOT/'tools'))
from course import read_times, NA  # bench/results/course_times.md, written by `make course`
WIDGET = 'application/vnd.jupyter.widget-view+json'
MATHJAX = 'assets/mathjax/MathJax.js?config=TeX-AMS-MML_HTMLorMML-full,Safe,offline'  # relative: pages sit at the site's top level
# The fonts jupyter-server-mathjax ships (MathJax's default TeX ones are absent), and no `url('about:blank')` font, an error in Chromium
MATHJAX_CFG = '''MathJax.Hub.Config({"HTML-CSS": {availableFonts: [], preferredFont: null, imageFont: null, webFont: "STIX-Web",
                                    styles: {"@font-face": {src: "local(MathJax_Blank)"}}}});
MathJax.Ajax.loadComplete("[MathJax]/config/offline.js");'''
DOWNLOAD = '''{% extends "base.html" %}{% block content %}{% if page.file.src_uri.endswith('.ipynb') %}
<a href="{{ page.file.src_uri }}" download title="Download the notebook" class="md-content__button md-icon">
{% include ".icons/material/download.svg" %}</a>{% endif %}{{ super() }}{% endblock %}'''  # a download button on notebook pages

def nb_info(path):
    "Title (`# ...`) and summary (`> ...`) from the first markdown cell of the notebook at `path`"
    cell = next((c for c in json.loads(Path(path).read_text())['cells'] if c['cell_type'] == 'markdown'), dict(source=''))
    lines = ''.join(cell['source']).splitlines()
    title = next((l[2:].strip() for l in lines if l.startswith('# ')), Path(path).stem)
    return title, next((l.lstrip('> ').strip() for l in lines if l.startswith('>')), '')

def index_md(nbs):
    "The home page: the course outline, one row per notebook"
    times, desc = read_times(), tomllib.loads((ROOT/'pyproject.toml').read_text())['project']['description']
    rows = ['| # | Lesson | What it covers | CPU min | GPU min |', '|---|---|---|--:|--:|']
    for f in nbs:
        (title, summary), num = nb_info(f), f.stem.split('_')[0]
        cpu, gpu = times.loc[f.stem, ['cpu_min', 'gpu_min']] if f.stem in times.index else (NA, NA)
        rows.append(f'| {num} | [{title}]({f.name}) | {summary.replace("|", "&#124;")} | {cpu} | {gpu} |')
    return '\n'.join([f'# tlhelpers\n\n{desc}.\n\n## Course outline\n', *rows,
                      f'\nMinutes to run each notebook: `bench/results/course_times.md` ({NA}: not measured).\n'])

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
    return json.dumps(nb)

def write_source(build_dir=ROOT/'_build', site_dir=ROOT/'_docs'):
    "Write the docs source (home page, cleaned notebooks, MathJax) and `mkdocs.yml` under `build_dir`; return the config's path"
    import jupyter_server_mathjax, yaml
    build_dir, site_dir = Path(build_dir).resolve(), Path(site_dir).resolve()
    src, nbs = build_dir/'docs_src', sorted(NBS.glob('[0-9]*.ipynb'))
    shutil.rmtree(src, ignore_errors=True); src.mkdir(parents=True)
    shutil.copytree(Path(jupyter_server_mathjax.__file__).parent/'static', src/'assets'/'mathjax')
    (src/'assets'/'mathjax'/'config'/'offline.js').write_text(MATHJAX_CFG)
    (src/'index.md').write_text(index_md(nbs))
    (build_dir/'theme').mkdir(exist_ok=True); (build_dir/'theme'/'main.html').write_text(DOWNLOAD)
    for f in nbs: (src/f.name).write_text(page_nb(f))
    cfg = dict(site_name='tlhelpers: practical transfer learning', docs_dir=str(src), site_dir=str(site_dir), use_directory_urls=False,
               strict=True, theme=dict(name='material', font=False, custom_dir=str(build_dir/'theme')), hooks=[str(ROOT/'tools'/'docs.py')],
               nav=[dict(Home='index.md'), *({nb_info(f)[0].replace('`', ''): f.name} for f in nbs)], markdown_extensions=['tables'],
               plugins=['search', {'mkdocs-jupyter': dict(execute=False, include_source=True, include_requirejs=False, no_prompt=True,
                        ignore_h1_titles=True, custom_mathjax_url=MATHJAX, cache_dir=str(ROOT/'_build'/'nb_cache'))}])
    (build_dir/'mkdocs.yml').write_text(yaml.safe_dump(cfg, sort_keys=False, allow_unicode=True))
    return build_dir/'mkdocs.yml'

def build(site_dir=ROOT/'_docs', build_dir=ROOT/'_build'):
    "Render the course into `site_dir`; return it"
    from mkdocs.commands.build import build as mkdocs_build
    from mkdocs.config import load_config
    mkdocs_build(load_config(str(write_source(build_dir, site_dir))))
    return Path(site_dir)

def on_page_content(html, **kwargs):
    "mkdocs hook: drop nbconvert's mermaid loader (it imports from a CDN; the notebooks have no mermaid diagrams)"
    return re.sub(r'<script type="module">(?:(?!</script>).)*?jp-Mermaid.*?</script>', '', html, flags=re.S)

if __name__ == '__main__':
    import logging; logging.basicConfig(level=logging.WARNING, format='%(levelname)s %(message)s')
    print(f'site in {build(*sys.argv[1:2]).resolve()}')
