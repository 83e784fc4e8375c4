"""`make practice`: the lessons' practice copies in `clean/`, as fastbook ships them: every code cell without its outputs, the
headings, and the closing questionnaire and further research; the explanations and results are left out, so a learner runs each
cell and predicts what it will show. tests/test_course.py checks that `clean/` is in sync with the lessons.

Usage: .venv/bin/python tools/practice.py [FOLDER]   (default: clean/)"""
import re, sys
from pathlib import Path
import nbformat

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT/'tools'))
from course import lessons

KEEP_WHOLE = ('## Questionnaire', '## Further research')  # sections a practice copy keeps in full
NOTE = ("*Practice copy of [{name}](../nbs/{name}): code, headings and questions only. Before running a cell, say what you expect "
        "it to show; the lesson explains what it does.*")

def practice_nb(path):
    "The practice copy of the lesson at `path`: code cells without outputs, heading lines, and the questionnaire and exercises"
    nb = nbformat.read(path, as_version=4)
    cells = []
    for c in nb.cells:
        if c.cell_type == 'code':
            if c.source.lstrip().startswith('#| hide'): continue
            src = '\n'.join(l for l in c.source.splitlines() if not l.startswith('#|')).strip('\n')  # nbdev's directives: not for practice
            if src: cells.append(nbformat.v4.new_code_cell(src))
        elif c.source.lstrip().startswith(KEEP_WHOLE): cells.append(nbformat.v4.new_markdown_cell(c.source))
        elif heads := [l for l in c.source.splitlines() if re.match(r'#{1,6} ', l)]:
            cells.append(nbformat.v4.new_markdown_cell('\n\n'.join(heads)))
    title = next((i for i, c in enumerate(cells) if c.cell_type == 'markdown' and c.source.startswith('# ')), -1)
    cells.insert(title + 1, nbformat.v4.new_markdown_cell(NOTE.format(name=path.name)))
    out = nbformat.v4.new_notebook(cells=cells, metadata={k: v for k, v in nb.metadata.items() if k in ('kernelspec', 'language_info')})
    for i, c in enumerate(out.cells): c.id = f'{path.stem[:20]}-{i}'  # stable ids: the copy changes only when the lesson does
    return out

def write_all(folder=ROOT/'clean'):
    "Write every lesson's practice copy into `folder` (a copy of a lesson that no longer exists is removed); their paths"
    folder = Path(folder); folder.mkdir(exist_ok=True)
    paths = []
    for p in lessons():
        paths.append(folder/p.name)
        nbformat.write(practice_nb(p), paths[-1])
    for old in set(folder.glob('*.ipynb')) - set(paths): old.unlink()
    return paths

if __name__ == '__main__':
    print(f'{len(write_all(*sys.argv[1:2]))} practice copies in {sys.argv[1] if len(sys.argv) > 1 else "clean/"}')
