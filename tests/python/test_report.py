"""report.html in a real headless Chromium, opened from file:// with the network cut off (scripts/autoguide_py/
browser.py): the page of a small sweep and a small compare has no console error and no failed request; its
embedded data is the results file; it draws one curve per guide (compare: per mode) and feature space with a
point per setting, the table has the settings' labels and values, every image resolves, and a click on an image
shows its seed; the screenshot is not blank. A run with one setting, without a detector, or with PNGs missing
still renders and says what is missing; a two-rank run gives the one-process page; bad input to `autoguide
report` is refused (exit 2, one line, nothing written).

A tune's page: the winners, the paired autoguidance-vs-CFG difference and the images spent against the grid as
tune.json has them; one curve per candidate with a point per weight it measured, each at the most seeds it
reached; a block per round of the search trace; the finals with their images. A tune killed after a round still
renders and says it is unfinished; two ranks give the one-process page."""
import io
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from cli import autoguide, ok, requires_bin  # noqa: F401
from test_sweep_compare import FAST, metric, png_parameters  # noqa: F401  (the detector and reference statistics)
from test_distributed import by_hand
from test_tune import tune_args

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / 'scripts'))
from autoguide_py import browser as offline  # noqa: E402

pytestmark = [requires_bin, pytest.mark.skipif(offline.available() is not None, reason=str(offline.available()))]


@pytest.fixture(scope='module')
def browser():
    b = offline.OfflineBrowser()
    yield b
    b.close()


def embedded(page):
    """The page's data, as the page's script reads it."""
    html = Path(page).read_text()
    start = html.index('<script id="report-data" type="application/json">') + len(
        '<script id="report-data" type="application/json">')
    return json.loads(html[start:html.index('</script>', start)])


def render(browser, page):
    """Opens the page; asserts it rendered offline without errors and that every image resolved."""
    d = browser.open(page)
    assert browser.problems() == []
    images = d.execute_script('return [...document.images].map(i => [i.getAttribute("src"), i.naturalWidth])')
    assert images and all(w > 0 for _, w in images), images
    for src, _ in images:
        assert '://' not in src and not src.startswith('/'), src  # relative links only
    return d


def not_blank(png_bytes):
    pixels = np.asarray(Image.open(io.BytesIO(png_bytes)).convert('L'), dtype=np.float64)
    assert pixels.std() > 20, pixels.std()


def missing_notes(d):
    return d.execute_script('return [...document.querySelectorAll("#missing li")].map(li => li.textContent)')


def check_curves(d, settings, spaces, series_of):
    for space in spaces:
        groups = {}
        for s in settings:
            groups.setdefault(series_of(s), []).append(s)
        for name, members in groups.items():
            sel = f'path.curve[data-series="{name}"][data-space="{space}"]'
            curves = d.find_elements('css selector', sel)
            assert len(curves) == 1, sel
            assert int(curves[0].get_attribute('data-points')) == len(members)
            points = d.find_elements('css selector', f'.point[data-series="{name}"][data-space="{space}"]')
            assert sorted(float(p.get_attribute('data-fd')) for p in points) == sorted(
                m['estimates'][space]['value'] for m in members)
        assert len(d.find_elements('css selector', f'.point[data-space="{space}"]')) == len(settings)
        # Labelled axes.
        chart = d.find_element('css selector', f'svg.fd-chart[data-space="{space}"]')
        assert 'guidance weight w' in chart.find_element('css selector', '.x-label').text
        assert 'FD' in chart.find_element('css selector', '.y-label').text


def check_table(d, settings, spaces):
    rows = d.find_elements('css selector', '#settings-table tbody tr.setting')
    assert [r.get_attribute('data-label') for r in rows] == [s['label'] for s in settings]
    for row, s in zip(rows, settings):
        cells = row.find_elements('css selector', 'td')
        values = [c.get_attribute('data-value') for c in cells]
        assert float(values[3]) == s['w'] and int(values[4]) == s['images']
        assert float(values[5]) == pytest.approx(s['seconds'])
        for k, space in enumerate(spaces):
            assert float(values[6 + k * (len(values) - 7) // len(spaces)]) == s['estimates'][space]['value']
    # Sorting by w (descending after two clicks) reorders the rows.
    header = d.find_element('css selector', '#settings-table th[data-col="3"]')
    header.click()
    header.click()
    ws = [float(r.find_elements('css selector', 'td')[3].get_attribute('data-value'))
          for r in d.find_elements('css selector', '#settings-table tbody tr.setting')]
    assert ws == sorted(ws, reverse=True)


@pytest.fixture(scope='module')
def sweep_run(nets, metric, tmp_path_factory):
    out = tmp_path_factory.mktemp('report') / 'sweep'
    second = out.parent / 'second.pt'  # a second feature space (the same features under another name)
    shutil.copy(metric['detector'], second)
    ok('sweep', '--net', nets['main'], '--gnet', nets['guide'], '--uncond', nets['uncond'], '--guidance', '1,1.5,2.5',
       '--num', 6, '--grid-cols', 4, '--detector', metric['detector'], '--ref', metric['ref'], '--detector', second,
       '--ref', metric['ref'], '--resamples', 50, '--out', out, '--report', '--quiet', *FAST)
    return out


def test_sweep_report_in_a_browser(browser, sweep_run, tmp_path):
    page = sweep_run / 'report.html'
    results = json.loads((sweep_run / 'results.json').read_text())
    data = embedded(page)
    assert data['results'] == results and data['kind'] == 'sweep'  # the embedded JSON is results.json
    assert data['missing'] == []
    settings, spaces = results['settings'], [s['name'] for s in results['spaces']]
    d = render(browser, page)
    assert len(settings) == 6 and len({s['guide'] for s in settings}) == 2
    assert spaces == ['det', 'second']
    check_curves(d, settings, spaces, lambda s: s['guide'])
    assert d.find_elements('css selector', '.band')  # the interval band
    check_table(d, settings, spaces)
    # Paired differences against the best setting, with verdicts.
    for space in spaces:
        diffs = d.find_elements('css selector', f'table.differences-table[data-space="{space}"] tr.difference')
        vs_best = [s['estimates'][space]['vs_best'] for s in settings if s['estimates'][space]['vs_best']]
        assert [x.get_attribute('data-verdict') for x in diffs] == [v['verdict'] for v in vs_best]
    # A thumbnail shows its seed, class and parameters from the PNG.
    thumb = d.find_elements('css selector', 'img.thumb')[5]
    k, seed = int(thumb.get_attribute('data-setting')), int(thumb.get_attribute('data-seed'))
    thumb.click()
    meta = png_parameters(sweep_run / settings[k]['folder'] / f'{seed:06d}.png')
    assert d.find_element('css selector', '#details-seed').text == str(meta['seed']) == str(seed)
    assert d.find_element('css selector', '#details-class').text == str(meta['class'])
    assert 'PNG metadata' in d.find_element('css selector', '#details-list').text
    # The grid: the classes it records are those the PNGs carry; a click names the image under it.
    layout = results['grid_layout']
    assert layout['seeds'] == [0, 1, 2, 3]
    assert layout['classes'] == [png_parameters(sweep_run / settings[0]['folder'] / f'{s:06d}.png')['class']
                                 for s in layout['seeds']]
    assert browser.click_grid(4, 2) == ('2', str(layout['classes'][2]))
    assert d.find_element('css selector', '#details-setting').text == settings[4]['label']
    not_blank(browser.screenshot(tmp_path / 'sweep.png'))
    assert browser.problems() == []


def test_compare_report_in_a_browser(browser, nets, metric, tmp_path):
    out = tmp_path / 'cmp.png'
    ok('compare', '--net', nets['main'], '--gnet', nets['guide'], '--ag', 2.1, '--uncond', nets['uncond'], '--cfg', 1.4,
       '--num', 6, '--detector', metric['detector'], '--ref', metric['ref'], '--resamples', 50, '--out', out,
       '--report', '--quiet', *FAST)
    page = tmp_path / 'cmp.html'  # beside cmp.png, cmp.json and cmp.csv
    results = json.loads((tmp_path / 'cmp.json').read_text())
    assert embedded(page)['results'] == results
    rows, spaces = results['rows'], [s['name'] for s in results['spaces']]
    d = render(browser, page)
    check_curves(d, rows, spaces, lambda s: s['mode'])
    check_table(d, rows, spaces)
    for space in spaces:
        table = d.find_element('css selector', f'table.differences-table[data-space="{space}"]')
        shown = table.find_elements('css selector', 'tr.difference')
        assert [t.get_attribute('data-verdict') for t in shown] == [x['verdict'] for x in results['differences'][space]]
        assert len(d.find_elements('css selector', f'svg.forest[data-space="{space}"] .diff')) == len(shown)
    layout = results['grid_layout']
    assert browser.click_grid(1, 3) == ('3', str(layout['classes'][3]))
    assert d.find_element('css selector', '#details-setting').text == rows[1]['label']
    assert 'guidance' in d.find_element('css selector', '#details-list').text  # the row's parameters
    not_blank(browser.screenshot(tmp_path / 'cmp-shot.png'))
    # Without a detector: the grid and the table, and a line saying why there is no FD.
    ok('compare', '--net', nets['main'], '--uncond', nets['uncond'], '--cfg', 1.4, '--seeds', '0-2',
       '--out', tmp_path / 'plain.png', '--report', '--quiet', *FAST)
    d = render(browser, tmp_path / 'plain.html')
    assert 'No feature detector' in ' '.join(missing_notes(d))
    assert len(d.find_elements('css selector', '#settings-table tbody tr.setting')) == 2
    assert browser.click_grid(1, 2)[0] == '2'
    # --report=FILE elsewhere: the links are relative to that page.
    ok('report', tmp_path / 'cmp.json', '--out', tmp_path / 'pages' / 'cmp.html', '-q')
    render(browser, tmp_path / 'pages' / 'cmp.html')
    assert embedded(tmp_path / 'pages' / 'cmp.html')['grid'] == '../cmp.png'


def test_one_setting_without_detector_and_missing_pngs(browser, nets, tmp_path):
    out = tmp_path / 'one'
    ok('sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', 2, '--seeds', '0-3', '--out', out,
       '--report', '--quiet', *FAST)
    d = render(browser, out / 'report.html')
    notes = ' '.join(missing_notes(d))
    assert 'No feature detector' in notes and 'One setting only' in notes
    assert 'No FD measured' in d.find_element('css selector', '#charts').text
    assert len(d.find_elements('css selector', '#settings-table tbody tr.setting')) == 1
    not_blank(browser.screenshot(None))
    # A PNG and the grid gone: the page still renders, names them, and links nothing that is not there.
    (out / 'guide-w2.00' / '000002.png').unlink()
    (out / 'grid.png').unlink()
    ok('report', out, '--overwrite', '-q')
    d = render(browser, out / 'report.html')
    notes = ' '.join(missing_notes(d))
    assert 'guide-w2.00/000002.png' in notes and 'grid.png' in notes
    assert len(d.find_elements('css selector', 'span.thumb.missing')) == 1
    assert len(d.find_elements('css selector', 'img.thumb')) == 3
    # Text from the results is data, never markup: a label that closes the script element stays a label.
    results = json.loads((out / 'results.json').read_text())
    label = '</script><script>document.title="x"</script> & <!-- w=2'
    results['settings'][0]['label'] = label
    (out / 'results.json').write_text(json.dumps(results))
    ok('report', out, '--overwrite', '-q')
    assert embedded(out / 'report.html')['results'] == results
    d = render(browser, out / 'report.html')
    assert d.find_element('css selector', 'tr.setting').get_attribute('data-label') == label
    assert d.title != 'x'


def same(a, b, where=''):
    """a == b but for floats, which agree to ~1e-8: the bootstrap's float64 sums are reduced across ranks."""
    assert type(a) is type(b), where
    if isinstance(a, dict):
        assert a.keys() == b.keys(), where
        for k in a:
            same(a[k], b[k], f'{where}.{k}')
    elif isinstance(a, list):
        assert len(a) == len(b), where
        for k, (x, y) in enumerate(zip(a, b)):
            same(x, y, f'{where}[{k}]')
    elif isinstance(a, float):
        assert a == pytest.approx(b, rel=1e-7), where
    else:
        assert a == b, where


def test_page_is_the_same_from_two_ranks(nets, metric, tmp_path):
    args = ['sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '1,2', '--seeds', '0-4',
            '--detector', metric['detector'], '--ref', metric['ref'], '--resamples', 20, '--report', '--quiet', *FAST]
    ok(*args, '--out', tmp_path / 'one')
    ranks = by_hand(2, *args, '--out', tmp_path / 'two')
    assert all(code == 0 for code, _, _ in ranks), ranks
    pages = [embedded(tmp_path / run / 'report.html') for run in ('one', 'two')]

    def untimed(data):  # what differs between any two runs: the measured times
        data = json.loads(json.dumps(data))
        data['results'].pop('ranks', None)
        for s in data['results']['settings']:
            s['seconds'] = 0
        return data

    same(untimed(pages[0]), untimed(pages[1]))
    # Given the same results file, the rest of the page (the images' links and metadata, the grid) is the same
    # byte for byte: nothing else (no clock, no host) goes into it.
    shutil.copy(tmp_path / 'one' / 'results.json', tmp_path / 'two' / 'results.json')
    for run in ('one', 'two'):
        ok('report', tmp_path / run, '--overwrite', '-q')
    assert (tmp_path / 'one' / 'report.html').read_bytes() == (tmp_path / 'two' / 'report.html').read_bytes()


def bad(*args, message):
    r = autoguide(*args)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith('autoguide: error: ') and message in lines[0], r.stderr


def test_report_refuses_bad_input(nets, tmp_path):
    bad('report', tmp_path / 'nothing', message='does not exist')
    (tmp_path / 'empty').mkdir()
    bad('report', tmp_path / 'empty', message='holds no results.json')
    (tmp_path / 'broken.json').write_text('{"rows": [')
    bad('report', tmp_path / 'broken.json', message='is not valid JSON')
    (tmp_path / 'other.json').write_text('{"fd": 3}')
    bad('report', tmp_path / 'other.json', message='is not the results of a sweep')
    bad('report', tmp_path / 'other.json', '--out', tmp_path / 'other.json', '--overwrite', message='would replace')
    assert sorted(p.name for p in tmp_path.iterdir()) == ['broken.json', 'empty', 'other.json']
    out = tmp_path / 'run'
    ok('sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', 2, '--seeds', '0-1', '--out', out,
       '--report', '--quiet', *FAST)
    before = (out / 'report.html').read_bytes()
    bad('report', out, message='already exists; add --overwrite')
    bad('sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', 2, '--seeds', '0-1', '--out', out,
        '--report', *FAST, message='already exists')
    assert (out / 'report.html').read_bytes() == before
    bad('compare', '--net', nets['main'], '--gnet', nets['guide'], '--ag', 2, '--seeds', '0-1',
        '--out', tmp_path / 'c.png', '--report=' + str(tmp_path / 'c.json'), *FAST, message='would replace')
    assert not (tmp_path / 'c.png').exists()
    (tmp_path / 'file').write_text('')  # a file where the page's folder should be: refused before sampling
    bad('compare', '--net', nets['main'], '--gnet', nets['guide'], '--ag', 2, '--seeds', '0-1',
        '--out', tmp_path / 'c.png', '--report=' + str(tmp_path / 'file' / 'c.html'), *FAST,
        message='cannot create output folder')
    assert not (tmp_path / 'c.png').exists()
    # The same run gives the same page.
    ok('report', out, '--overwrite', '-q')
    assert (out / 'report.html').read_bytes() == before


def test_the_browser_sees_what_a_page_must_not_do(browser, tmp_path):
    """The checks above would pass vacuously if the browser did not report these: a missing image, a script from
    a CDN (the network is cut off), a script error."""
    page = tmp_path / 'bad.html'
    page.write_text('<!DOCTYPE html><html><head><link rel="icon" href="data:,"></head><body>'
                    '<img src="missing.png"><script src="https://cdn.example.com/lib.js"></script>'
                    '<script>undefined_function(); document.body.dataset.rendered = "true";</script>'
                    '<script>document.body.dataset.rendered = "true";</script></body></html>')
    browser.open(page)
    found = ' | '.join(browser.problems())
    assert 'missing.png' in found and 'cdn.example.com' in found and 'undefined_function' in found, found


# ---- tune ----------------------------------------------------------------------------------------------------

@pytest.fixture(scope='module')
def tune_run(nets, metric, tmp_path_factory):
    """A tiny tune (test_tune's: a guide and CFG, w in 1:3:0.25, rounds from 4 seeds, final on 16) with --report."""
    out = tmp_path_factory.mktemp('report-tune') / 'tune'
    ok(*tune_args(nets, metric, out, '--report'))
    return out


def objective_of(t):
    return next(s['name'] for s in t['spaces'] if s['objective'])


def expected_points(t):
    """candidate -> {w: (seeds, FD)}: each weight a candidate was measured at, at the most seeds it reached in a
    round or the final."""
    points = {}
    for r in t['rounds']:
        for c in r['candidates']:
            for e in c.get('evaluations', []) if c['measured'] else []:
                m = points.setdefault(c['candidate'], {})
                if e['w'] not in m or e['seeds'] >= m[e['w']][0]:
                    m[e['w']] = (e['seeds'], e['fd']['value'])
    for f in t.get('finals', []):
        m = points.setdefault(f['candidate'], {})
        if f['w'] not in m or f['seeds'] >= m[f['w']][0]:
            m[f['w']] = (f['seeds'], f['estimates'][objective_of(t)]['value'])
    return points


def check_tune_chart(d, t):
    objective = objective_of(t)
    expected = expected_points(t)
    for label, points in expected.items():
        measured = {e['w'] for r in t['rounds'] for c in r['candidates'] if c['candidate'] == label and c['measured']
                    for e in c['evaluations']}
        curves = d.find_elements('css selector', f'path.curve[data-series="{label}"][data-space="{objective}"]')
        assert len(curves) == 1 and int(curves[0].get_attribute('data-points')) == len(measured) == len(points), label
        shown = sorted((float(p.get_attribute('data-w')), int(p.get_attribute('data-n')), float(p.get_attribute('data-fd')))
                       for p in d.find_elements('css selector', f'.point[data-series="{label}"]'))
        assert shown == sorted((w, n, fd) for w, (n, fd) in points.items()), label
        # The N of each point is written beside it.
        labels = d.find_elements('css selector', f'g.series[data-series="{label}"] text.n-label')
        assert sorted(int(x.text) for x in labels) == sorted(n for n, _ in points.values())
    assert len(d.find_elements('css selector', 'path.curve')) == len(expected)
    chart = d.find_element('css selector', 'svg.tune-chart')
    assert 'guidance weight w' in chart.find_element('css selector', '.x-label').text
    assert f'FD in {objective}' in chart.find_element('css selector', '.y-label').text
    assert len(d.find_elements('css selector', '.errorbar')) == sum(map(len, expected.values()))


def check_trace(d, t):
    blocks = d.find_elements('css selector', '#trace-section div.round')
    assert len(blocks) == len(t['rounds'])
    for block, r in zip(blocks, t['rounds']):
        assert int(block.get_attribute('data-n')) == r['n']
        rows = block.find_elements('css selector', 'tr.trace')
        assert [x.get_attribute('data-candidate') for x in rows] == [c['candidate'] for c in r['candidates']]
        for row, c in zip(rows, r['candidates']):
            status = 'out' if not c['measured'] else 'dropped' if c['dropped'] else 'leader' if c['leader'] else 'kept'
            assert row.get_attribute('data-status') == status
            if c['measured']:
                assert float(row.get_attribute('data-best-w')) == c['best_w']


def test_tune_report_in_a_browser(browser, tune_run, tmp_path):
    t = json.loads((tune_run / 'tune.json').read_text())
    data = embedded(tune_run / 'report.html')
    assert data['kind'] == 'tune' and data['results'] == t and data['missing'] == []
    assert t['state'] == 'done' and len(t['rounds']) >= 2
    d = render(browser, tune_run / 'report.html')
    # The answer first: each group's winner with its interval, autoguidance vs CFG, images against the grid.
    assert set(t['winners']) == {'autoguidance', 'cfg'}
    for group, w in t['winners'].items():
        shown = d.find_element('css selector', f'#answer p.winner[data-group="{group}"]')
        assert shown.get_attribute('data-candidate') == w['candidate'] and w['candidate'] in shown.text
        assert float(shown.get_attribute('data-w')) == w['w']
        assert float(shown.get_attribute('data-fd')) == w['estimate']['value']
    between = d.find_element('css selector', '#between-groups')
    assert between.get_attribute('data-verdict') == t['between_groups']['verdict']
    assert float(between.get_attribute('data-value')) == t['between_groups']['value']
    assert t['between_groups']['a'] in between.text and t['between_groups']['b'] in between.text
    cost = d.find_element('css selector', '#tune-cost')
    assert f"{t['images']} spent" in cost.text and f"against {t['grid_images']}" in cost.text
    assert len(d.find_elements('css selector', 'circle.winner-mark')) == len(t['winners'])
    check_tune_chart(d, t)
    check_trace(d, t)
    # The finals, and their images: the first seeds, each clickable for its seed and class.
    rows = d.find_elements('css selector', '#finals-table tr.final')
    assert [(r.get_attribute('data-candidate'), float(r.get_attribute('data-w')), int(r.get_attribute('data-rank')))
            for r in rows] == [(f['candidate'], f['w'], f['rank']) for f in t['finals']]
    for row, f in zip(rows, t['finals']):  # (two finalists may be one point: w = 1 is the same for all)
        thumbs = row.find_elements('css selector', f'img.thumb[data-folder="{f["folder"]}"]')
        assert [int(x.get_attribute('data-seed')) for x in thumbs] == list(range(min(8, f['seeds'])))
    final = t['finals'][-1]
    rows[-1].find_elements('css selector', 'img.thumb')[3].click()
    meta = png_parameters(tune_run / final['folder'] / '000003.png')
    assert d.find_element('css selector', '#details-seed').text == str(meta['seed']) == '3'
    assert d.find_element('css selector', '#details-class').text == str(meta['class'])
    assert final['candidate'] in d.find_element('css selector', '#details-setting').text
    not_blank(browser.screenshot(tmp_path / 'tune.png'))
    assert browser.problems() == []


def test_unfinished_tune_report(browser, tune_run, tmp_path):
    """tune.json as a run killed after its first round leaves it (write_state before the final: no finals,
    winners or cost, state "running"): the page renders what there is and says the run is unfinished."""
    run = tmp_path / 'killed'
    shutil.copytree(tune_run, run)
    t = json.loads((run / 'tune.json').read_text())
    cut = {'tool': t['tool'], 'parameters': t['parameters'], 'rounds': t['rounds'][:1], 'state': 'running',
           'spaces': t['spaces']}
    (run / 'tune.json').write_text(json.dumps(cut, indent=2))
    ok('report', run, '--overwrite', '-q')
    d = render(browser, run / 'report.html')
    notes = ' '.join(missing_notes(d))
    assert 'Unfinished tune' in notes and f"after 1 round, the last on {cut['rounds'][0]['n']} seeds" in notes, notes
    assert '(unfinished)' in d.find_element('css selector', '#title').text
    assert 'no winner yet' in d.find_element('css selector', '#unfinished').text
    assert not d.find_elements('css selector', 'p.winner') and not d.find_elements('css selector', '#finals-table')
    check_tune_chart(d, cut)
    check_trace(d, cut)
    # In place of the finals' images, those of each candidate's best point in the round, on that round's seeds.
    measured = [c for c in cut['rounds'][0]['candidates'] if c['measured']]
    rows = d.find_elements('css selector', 'tr.last-best')
    assert [r.get_attribute('data-candidate') for r in rows] == [c['candidate'] for c in measured]
    for row in rows:
        assert len(row.find_elements('css selector', 'img.thumb')) == min(8, cut['rounds'][0]['n'])
    not_blank(browser.screenshot(None))
    # A tune.json cut off mid-write (tune writes it whole, by rename; a copy may not be) is refused, not drawn.
    (run / 'tune.json').write_text(json.dumps(cut)[:200])
    bad('report', run, '--overwrite', message='is not valid JSON')


def test_tune_page_is_the_same_from_two_ranks(tune_run, nets, metric, tmp_path):
    ranks = by_hand(2, *tune_args(nets, metric, tmp_path / 'two', '--report'))
    assert all(code == 0 for code, _, _ in ranks), ranks
    same(embedded(tmp_path / 'two' / 'report.html'), embedded(tune_run / 'report.html'))
    # From the same tune.json, the same page byte for byte.
    shutil.copy(tune_run / 'tune.json', tmp_path / 'two' / 'tune.json')
    ok('report', tmp_path / 'two', '--overwrite', '-q')
    assert (tmp_path / 'two' / 'report.html').read_bytes() == (tune_run / 'report.html').read_bytes()


def test_tune_report_refused_before_sampling(nets, metric, tmp_path):
    out = tmp_path / 'tune'
    bad(*tune_args(nets, metric, out, '--report=' + str(out / 'tune.json')), message='would replace')
    (tmp_path / 'page.html').write_text('')
    bad(*tune_args(nets, metric, out, '--report=' + str(tmp_path / 'page.html')), message='already exists')
    assert not (out / 'images').exists()


def test_tune_page_names_a_net_given_twice(browser, nets, metric, tmp_path):
    """A guide given under two names is searched once: the page counts the candidates searched and says which name
    was searched as which, and the trace has no row for the merged one."""
    copy = tmp_path / 'guide-copy.pt'
    shutil.copyfile(nets['guide'], copy)
    args = tune_args(nets, metric, tmp_path / 'run', '--report')
    args[args.index('--gnet') + 1] = f"{nets['guide']},{copy}"
    ok(*args)
    t = json.loads((tmp_path / 'run' / 'tune.json').read_text())
    assert len(t['parameters']['candidates']) == 3 and len(t['merged']) == 1
    d = render(browser, tmp_path / 'run' / 'report.html')
    assert d.find_element('css selector', '#title').text.startswith('autoguide tune of 2 candidates')
    guide = Path(nets['guide']).name
    assert f'guide-copy.pt searched as {guide} (the same weights)' in d.find_element('css selector', '#subtitle').text
    rows = d.find_elements('css selector', 'tr.trace')
    assert rows and 'guide-copy.pt' not in {r.get_attribute('data-candidate') for r in rows}
