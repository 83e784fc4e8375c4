"The course as its learners meet it: every notebook stored executed from a cpu- or full-mode run, within its time budget"
import sys
from pathlib import Path
import nbformat
sys.path.insert(0, str(Path(__file__).resolve().parents[1]/'tools'))
from course import (notebooks, lessons, check, has_plot, shrink_figures, read_times, set_time_line, TIME_LINE, NBS, page_problems, lesson_problems,
                    unbacked_numbers, stored_verdicts, GAIN_LESSONS, MIN_QUESTIONS)

def _copy(tmp_path, name, edit):
    nb = nbformat.read(Path(__file__).resolve().parents[1]/'nbs'/name, as_version=4)
    edit(nb)
    nbformat.write(nb, tmp_path/name)
    return tmp_path/name

def _strip(nb):
    for c in nb.cells:
        if c.cell_type == 'code': c.outputs = []

def test_check_catches_stripped_and_quick_notebooks(tmp_path):
    name = '05a_audit.ipynb'
    ok = _copy(tmp_path, name, lambda nb: nb.metadata.update(tlhelpers=dict(mode='cpu', minutes=1.0)))
    assert check(ok) == []
    assert has_plot(ok)
    stripped = _copy(tmp_path, name, lambda nb: (_strip(nb), nb.metadata.update(tlhelpers=dict(mode='cpu'))))
    assert check(stripped) == ['no stored outputs'] and not has_plot(stripped)
    quick = _copy(tmp_path, name, lambda nb: nb.metadata.update(tlhelpers=dict(mode='quick')))
    assert 'not cpu or full' in check(quick)[0]
    unknown = _copy(tmp_path, name, lambda nb: nb.metadata.pop('tlhelpers', None))
    assert 'make course' in check(unknown)[0]

def test_time_line_replaces_the_earlier_one():
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell('# Title\n\n> What it teaches')])
    set_time_line(nb, '*Time to run: 1.0 min ...*'); set_time_line(nb, '*Time to run: 2.0 min ...*')
    assert nb.cells[0].source == '# Title\n\n> What it teaches\n\n*Time to run: 2.0 min ...*'
    assert len(TIME_LINE.findall(nb.cells[0].source)) == 1

# Known gaps of issue 17, as ratchets: a notebook leaves a set as soon as it no longer belongs there, or the tests fail.
NOT_YET_EXECUTED = set()  # none since 2026-12-03
OVER_BUDGET = set()

def test_every_notebook_is_stored_executed_from_a_real_run():
    problems = {p.stem: check(p) for p in notebooks()}
    assert not {k: v for k, v in problems.items() if v and k not in NOT_YET_EXECUTED}, 'run `make course` for these'
    assert not {k for k in NOT_YET_EXECUTED if not problems[k]}, 'executed now: remove from NOT_YET_EXECUTED'
    assert NOT_YET_EXECUTED or sum(map(has_plot, notebooks())) >= 12  # the bar, once the whole course is executed

def test_course_times_within_budget():
    times = read_times()
    stems = [p.stem for p in notebooks() if p.stem not in NOT_YET_EXECUTED]
    cpu = times.cpu_min.reindex(stems).map(float)  # a notebook without a measurement reads '–' and fails here
    assert cpu.notna().all() and cpu.sum() <= 120, cpu.sort_values().tail()
    assert set(cpu[cpu > 10].index) == OVER_BUDGET, cpu.sort_values().tail()

def test_readme_is_a_short_front_door():
    readme = (Path(__file__).resolve().parents[1]/'README.md').read_text()
    assert len(readme) <= 8000, len(readme)
    assert 'make demo' in readme and 'make test' in readme
    assert not [p.stem for p in notebooks() if f'| `{p.stem}` |' not in readme], 'every notebook in the outline'

# Issue 27: what a learner reads. Each check is shown to fail on a planted copy; notebooks still to be brought up to it are listed
# as ratchets: one leaves its set as soon as it passes, or the test fails.
PAGE_NOT_CLEAN_YET = set()
NO_LESSON_END_YET = set()
UNBACKED_NUMBERS_YET = set()

def _plant(tmp_path, name, edit):
    return _copy(tmp_path, name, lambda nb: edit(nb.cells))

def _out(text, name='stdout'): return nbformat.v4.new_output('stream', name=name, text=text)

def test_page_check_catches_warnings_paths_ansi_and_empty_rows(tmp_path):
    name = '04_freezing.ipynb'
    def only(*outs):  # a copy whose one stored output (in its first code cell) is `outs`
        def edit(cells):
            code = [c for c in cells if c.cell_type == 'code']
            for c in code: c.outputs = []
            code[0].outputs = list(outs)
        return _plant(tmp_path, name, edit)
    assert page_problems(only()) == []
    cases = {'warning box': _out('/x/y.py:3: FutureWarning: deprecated\n', 'stderr'),
             'local path': _out('wrote /tmp/tmpab12cd/run\n'), 'ANSI': _out('\x1b[32m[I 2026]\x1b[0m done\n'),
             'chatter': _out('[I 2026-12-06 19:44:04,769] A new study created in RDB with name: bayes\n'),
             'onnxruntime': _out('2026-12-06 [W:onnxruntime:, graph.cc:1] Removing initializer\n', 'stderr')}
    for what, out in cases.items(): assert what in ' '.join(page_problems(only(out))), (what, page_problems(only(out)))
    assert 'empty columns' in ' '.join(page_problems(only(_out('epoch  train_loss  valid_loss  accuracy  time\n0  00:36\n'))))
    assert page_problems(only(_out('epoch  train_loss  valid_loss  accuracy  time\n0  1.2  0.9  0.8  00:36\n'))) == []
    assert page_problems(only(_out("tlh: error: 'x' is not a folder\n", 'stderr'))) == []  # a command's own error message is part of the lesson

def _figure(w, h, seed=0):
    "A display_data output holding a `w`x`h` PNG of noise (a photo grid compresses about as badly)"
    import base64, io, numpy as np
    from PIL import Image
    buf = io.BytesIO(); Image.fromarray(np.random.default_rng(seed).integers(0, 256, (h, w, 3), dtype=np.uint8)).save(buf, 'PNG')
    return nbformat.v4.new_output('display_data', data={'image/png': base64.b64encode(buf.getvalue()).decode(), 'text/plain': '<Figure>'})

def test_page_check_catches_heavy_figures_and_course_shrinks_them(tmp_path):
    name = '04_freezing.ipynb'
    def with_fig(out):
        def edit(cells): next(c for c in cells if c.cell_type == 'code').outputs = [out]
        return _plant(tmp_path, name, edit)
    heavy = with_fig(_figure(400, 300))  # about 350 KB of noise
    assert 'figure of' in ' '.join(page_problems(heavy)), page_problems(heavy)
    nb = nbformat.read(heavy, as_version=4)
    assert page_problems(with_fig(_figure(100, 100))) == []  # (a new copy in the same place)
    assert shrink_figures(nb) == 1
    nbformat.write(nb, heavy)
    assert page_problems(heavy) == [], page_problems(heavy)
    assert shrink_figures(nb) == 0  # nothing left to shrink

def test_lesson_check_catches_a_missing_ending(tmp_path):
    name = '04_freezing.ipynb'
    assert lesson_problems(NBS/name) == []
    no_quiz = _plant(tmp_path, name, lambda cells: [cells.remove(c) for c in list(cells) if c.source.startswith('## Questionnaire')])
    assert lesson_problems(no_quiz) == ['no "Questionnaire" section']
    def shorten(cells):
        q = next(c for c in cells if c.source.startswith('## Questionnaire'))
        q.source = '## Questionnaire\n\n1. One?\n2. Two?'
    assert lesson_problems(_plant(tmp_path, name, shorten)) == [f'questionnaire has 2 questions, fewer than {MIN_QUESTIONS}']
    def cut(cells):  # one question short of the bar
        q = next(c for c in cells if c.source.startswith('## Questionnaire'))
        q.source = '## Questionnaire\n\n' + '\n'.join(f'{k}. Q{k}?' for k in range(1, MIN_QUESTIONS))
    assert lesson_problems(_plant(tmp_path, name, cut)) == [f'questionnaire has {MIN_QUESTIONS - 1} questions, fewer than {MIN_QUESTIONS}']
    gone = _plant(tmp_path, name, lambda cells: [cells.remove(c) for c in list(cells) if c.source.startswith(('## What we learned', '## Further'))])
    assert lesson_problems(gone) == ['no "What we learned" section', 'no "Further research" section']

def test_number_check_catches_numbers_no_output_shows(tmp_path):
    name = '04_freezing.ipynb'
    add = lambda text: _plant(tmp_path, name, lambda cells: cells.append(nbformat.v4.new_markdown_cell(text)))
    n = len(nbformat.read(NBS/name, as_version=4).cells)  # the planted cell's index
    assert unbacked_numbers(add('Head only scored 0.98765 and fine_tune 97.531%.')) == [f'cell {n}: 0.98765', f'cell {n}: 97.531%']
    assert unbacked_numbers(add('Version 2.14.1, a 1.5x speed-up, 3 epochs, 12.5 px.')) == []  # not scores: no decimals to check
    shown = _plant(tmp_path, name, lambda cells: (next(c for c in cells if c.cell_type == 'code').update(
        outputs=[nbformat.v4.new_output('execute_result', data={'text/plain': 'accuracy 0.987654'})]), cells.append(nbformat.v4.new_markdown_cell('It scored 0.98765, 98.77%.'))))
    assert unbacked_numbers(shown) == []  # rounded from what an output shows
    bench = add('At full size 94.02% (`bench/results/bench_recipe.md`).')
    assert unbacked_numbers(bench) == [] and '0.9402' in (NBS.parent/'bench'/'results'/'bench_recipe.md').read_text()
    assert unbacked_numbers(add('At full size 94.02%.')) != []  # the same number without the file it comes from

def test_every_page_is_clean():
    problems = {p.stem: page_problems(p) for p in notebooks()}
    assert not {k: v for k, v in problems.items() if v and k not in PAGE_NOT_CLEAN_YET}
    assert not {k for k in PAGE_NOT_CLEAN_YET if not problems[k]}, 'clean now: remove from PAGE_NOT_CLEAN_YET'

def test_every_lesson_ends_with_what_we_learned_questions_and_research():
    problems = {p.stem: lesson_problems(p) for p in lessons() if p.stem != 'index'}
    assert not {k: v for k, v in problems.items() if v and k not in NO_LESSON_END_YET}
    assert not {k for k in NO_LESSON_END_YET if not problems[k]}, 'done now: remove from NO_LESSON_END_YET'

def test_numbers_in_prose_are_ones_a_reader_can_see():
    problems = {p.stem: unbacked_numbers(p) for p in lessons()}
    assert not {k: v for k, v in problems.items() if v and k not in UNBACKED_NUMBERS_YET}
    assert not {k for k in UNBACKED_NUMBERS_YET if not problems[k]}, 'done now: remove from UNBACKED_NUMBERS_YET'

def test_practice_copies_are_in_sync(tmp_path):
    "clean/ holds every lesson's practice copy as `make practice` writes it: run it after editing a lesson"
    from practice import write_all, practice_nb
    fresh = write_all(tmp_path)
    committed = NBS.parent/'clean'
    assert sorted(p.name for p in committed.glob('*.ipynb')) == sorted(p.name for p in fresh), 'run `make practice`'
    stale = [p.name for p in fresh if (committed/p.name).read_text() != p.read_text()]
    assert not stale, f'run `make practice`: {stale}'
    nb = practice_nb(NBS/'04_freezing.ipynb')
    assert not any(c.get('outputs') for c in nb.cells if c.cell_type == 'code')
    text = '\n'.join(c.source for c in nb.cells)
    assert '## Questionnaire' in text and 'freezing_experiment(' in text and 'A pretrained backbone' not in text

def test_readme_outline_shows_the_measured_minutes(tmp_path):
    "`make course` writes each notebook's minutes into the README's outline table as well as course_times.md"
    from course import update_readme, ROOT
    times, readme = read_times(), (ROOT/'README.md').read_text()
    for stem in times.index: assert f"| {times.loc[stem, 'cpu_min']} | {times.loc[stem, 'gpu_min']} |" in next(l for l in readme.splitlines() if l.startswith(f'| `{stem}` |')), stem
    stale = tmp_path/'README.md'; stale.write_text(readme.replace(f"| {times.loc['00_core', 'cpu_min']} | {times.loc['00_core', 'gpu_min']} |", '| 99.9 | – |', 1))
    update_readme(times, stale)
    assert stale.read_text() == readme

# Issue 39: each lesson whose point is a technique's gain stores a paired comparison of it (interval, McNemar, verdict), and its
# stored cpu-mode run shows the technique `better` than the same run without it, in at least 7 of the 9. The lessons whose stored
# run cannot show it within the CPU budget (each says so in one plain sentence), as a ratchet:
NO_GAIN_SHOWN_YET = {'08_backbones', '09_hparam_search'}

def test_verdict_check_reads_comparison_tables(tmp_path):
    name = '12_ensembles.ipynb'
    assert 'better' in stored_verdicts(NBS/name)
    assert stored_verdicts(_copy(tmp_path, name, _strip)) == []
    def only(text):  # a copy whose one stored output is `text`
        return _copy(tmp_path, name, lambda nb: (_strip(nb), next(c for c in nb.cells if c.cell_type == 'code').outputs.append(
            nbformat.v4.new_output('execute_result', data={'text/plain': text}))))
    table = ('            accuracy  diff  lo  hi  gained  lost  p_mcnemar       verdict\nvariant\nhead only      0.70  0.00 NaN NaN  0  0  NaN  baseline\n'
             'fine_tune      0.78  0.08  0.03  0.12  20  4  0.001  better\nfreeze too little  0.20 -0.5 -0.6 -0.4  1 99  1e-20  worse\n')
    assert stored_verdicts(only(table)) == ['baseline', 'better', 'worse']
    summary = '          seeds  accuracy  diff  better  within noise  worse\nvariant\nfine_tune      3  0.78  0.08  3  0  0\n'  # a seeds summary has no verdict column
    assert stored_verdicts(only(summary)) == []

def test_gain_lessons_store_a_paired_comparison_and_show_their_gain():
    verdicts = {n: stored_verdicts(NBS/f'{n}.ipynb') for n in GAIN_LESSONS}
    assert not [n for n, v in verdicts.items() if not v], 'every one of these lessons stores a comparison table with a verdict'
    no_gain = {n for n, v in verdicts.items() if 'better' not in v}
    assert no_gain <= NO_GAIN_SHOWN_YET, f'no stored `better` verdict: {sorted(no_gain - NO_GAIN_SHOWN_YET)}'
    assert not NO_GAIN_SHOWN_YET - no_gain, f'shown now: remove {sorted(NO_GAIN_SHOWN_YET - no_gain)} from NO_GAIN_SHOWN_YET'
    assert len(GAIN_LESSONS) - len(no_gain) >= 7, f'only {len(GAIN_LESSONS) - len(no_gain)} of {len(GAIN_LESSONS)} lessons show their gain'
