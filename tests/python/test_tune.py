"""`autoguide tune` end to end on the tiny exported nets: every FD in tune.json is the FD of the images it wrote
(measured again by `autoguide fid` from the PNGs), every interval and paired difference matches the Python
reimplementation of test_fd_cli, the winners are the lowest of the finals, nested rounds never sample a seed twice,
a killed run resumed gives the same tune.json, two ranks give one process's, and bad spaces are refused.

The search itself (convergence, edges, elimination, image counts) is tested on synthetic objectives in
tests/cpp/test_guidance_search.cpp."""
import json
import os
import shutil
import signal
import subprocess
import time

import numpy as np
import pytest
from PIL import Image

from cli import BIN, autoguide, ok, requires_bin  # noqa: F401
from test_distributed import by_hand, codes, torchrun
from test_phema_set import series  # noqa: F401
from test_fd_cli import RESAMPLES, assert_close, fd, interval, paired, ref_stats
from test_sweep_compare import FAST, FD_RTOL, bad, metric, metric2  # noqa: F401

pytestmark = requires_bin


def tune_args(nets, metric, out, *extra, steps=4, final=16):
    fast = list(FAST)
    fast[fast.index('--steps') + 1] = steps
    return ['tune', '--net', nets['main'], '--gnet', nets['guide'], '--uncond', nets['uncond'],
            '--guidance', '1:3:0.25', '--first-num', 4, '--final-num', final, '--detector', metric['detector'],
            '--ref', metric['ref'], '--resamples', RESAMPLES, '--out', out, '--quiet', *fast, *extra]


@pytest.fixture(scope='module')
def tuned(nets, metric, tmp_path_factory):
    out = tmp_path_factory.mktemp('tune') / 'run'
    ok(*tune_args(nets, metric, out))
    return out, json.loads((out / 'tune.json').read_text())


def features_of(metric, folder, out):
    ok('fid', '--detector', metric['detector'], '--ref', metric['ref'], '--images', folder, '--features-out', out,
       '--resamples', 0, '--device', 'cpu', '--threads', 1, '-q')
    return np.load(out)


def test_every_fd_is_the_fd_of_its_images(tuned, metric, tmp_path):
    out, t = tuned
    ref = ref_stats(metric)
    assert t['state'] == 'done'
    cache = {}

    def feats(folder):
        if folder not in cache:
            cache[folder] = features_of(metric, out / folder, tmp_path / (folder.replace('/', '_') + '.npy'))
        return cache[folder]
    checked = 0
    for r in t['rounds']:
        n = r['n']
        leaders = {c['group']: c for c in r['candidates'] if c['measured'] and c['leader']}
        for c in r['candidates']:
            if not c['measured']:
                continue
            for e in c['evaluations']:
                f = feats(e['folder'])[:n]
                assert e['seeds'] == n and len(feats(e['folder'])) >= n
                assert e['fd']['value'] == pytest.approx(fd(f, ref), rel=FD_RTOL)
                assert_close(e['fd'], interval(f, ref))
                checked += 1
            best = next(e for e in c['evaluations'] if e['w'] == c['best_w'])
            if c['leader']:
                assert c['vs_leader'] is None
                continue
            lead = leaders[c['group']]
            lead_best = next(e for e in lead['evaluations'] if e['w'] == lead['best_w'])
            assert_close(c['vs_leader'], paired(feats(best['folder'])[:n], feats(lead_best['folder'])[:n], ref))
    assert checked >= 10
    # The finals: on --final-num seeds, ranked, one winner per group; autoguidance minus CFG paired.
    finals = {f['group']: f for f in t['finals'] if f['rank'] == 1}
    assert set(finals) == {'autoguidance', 'cfg'}
    for f in t['finals']:
        x = feats(f['folder'])
        assert len(x) == 16 and f['seeds'] == 16
        assert_close(f['estimates']['det'], interval(x, ref))
    for group, w in t['winners'].items():
        assert (w['candidate'], w['w']) == (finals[group]['candidate'], finals[group]['w'])
    a, b = (feats(finals[g]['folder']) for g in ('autoguidance', 'cfg'))
    assert_close(t['between_groups'], paired(a, b, ref))
    # A preset ready for configs/, and what was spent against the grid of the same lattice (9 weights, w=1 once).
    p = t['preset']['tuned-autoguidance']
    assert p['guidance'] == finals['autoguidance']['w'] and p['detector'] == str(metric['detector'])
    assert t['grid_images'] == (2 * 8 + 1) * 16
    assert t['images'] < t['grid_images']


def test_nested_rounds_sample_each_seed_once(tuned):
    """Each point's folder holds one PNG per seed it was measured on, however many rounds measured it; the images
    tune.json counts are exactly the PNGs written."""
    out, t = tuned
    pngs = list((out / 'images').rglob('*.png'))
    assert len(pngs) == t['images']
    most = {}
    for r in t['rounds']:
        for c in r['candidates']:
            for e in c.get('evaluations', []):
                most[e['folder']] = max(most.get(e['folder'], 0), r['n'])
    for f in t['finals']:
        most[f['folder']] = 16
    for folder, n in most.items():
        assert sorted(p.name for p in (out / folder).glob('*.png')) == [f'{s:06d}.png' for s in range(n)], folder
    # The rounds' seeds double up to --final-num.
    assert [r['n'] for r in t['rounds']] == [min(4 * 2 ** k, 16) for k in range(len(t['rounds']))]
    assert len(t['rounds']) >= 2


def test_killed_run_resumes_to_the_same_tune_json(tuned, nets, metric, tmp_path):
    out = tmp_path / 'run'
    args = tune_args(nets, metric, out, steps=16)
    full = tmp_path / 'full'
    ok(*tune_args(nets, metric, full, steps=16))
    proc = subprocess.Popen([BIN, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 120
    while time.time() < deadline:  # kill it once a round is saved and more is under way
        if (out / 'tune.json').exists() and json.loads((out / 'tune.json').read_text()).get('state') == 'running':
            break
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    killed = json.loads((out / 'tune.json').read_text())
    assert killed['state'] == 'running' and len(killed['rounds']) >= 1
    saved = {p.name: p.stat().st_mtime_ns for p in (out / 'points').glob('*.npy')}
    bad(*args, message='already exists; add --resume')
    ok(*args, '--resume')
    resumed = json.loads((out / 'tune.json').read_text())
    assert resumed == json.loads((full / 'tune.json').read_text())
    # The points measured before the kill were taken back, not sampled again, unless they needed more seeds.
    first = killed['rounds'][0]['n']
    for name, mtime in saved.items():
        x = np.load(out / 'points' / name)
        if len(x) == first and mtime == (out / 'points' / name).stat().st_mtime_ns:
            break
    else:
        pytest.fail('every saved point was rewritten')
    # --resume with other options is refused.
    bad(*tune_args(nets, metric, out, steps=16, final=32), '--resume', message='made with other options')


@pytest.mark.parametrize('launcher', ['by hand', 'torchrun'])
def test_two_ranks_equal_one_process(tuned, nets, metric, tmp_path, launcher):
    _, one = tuned
    if launcher == 'by hand':
        results = by_hand(2, *tune_args(nets, metric, tmp_path / 'two'))
        assert codes(results) == [0, 0], results
    else:
        if shutil.which('torchrun') is None:
            pytest.skip('torchrun not installed (python3-torch)')
        r = torchrun(2, *tune_args(nets, metric, tmp_path / 'two'), log_dir=tmp_path / 'logs')
        assert r.returncode == 0, r.stderr[-2000:]
    two = json.loads((tmp_path / 'two' / 'tune.json').read_text())

    def decisions(t):
        return ([[(c['candidate'], c['measured'], c.get('best_w'), c.get('dropped'), c.get('leader'))
                  for c in r['candidates']] for r in t['rounds']],
                [(f['candidate'], f['w'], f['rank']) for f in t['finals']], t['images'])
    assert decisions(two) == decisions(one)
    for ra, rb in zip(two['rounds'], one['rounds']):
        for ca, cb in zip(ra['candidates'], rb['candidates']):
            for ea, eb in zip(ca.get('evaluations', []), cb.get('evaluations', [])):
                assert ea['fd']['value'] == pytest.approx(eb['fd']['value'], rel=1e-6)


def test_other_spaces_are_reported(nets, metric, metric2, tmp_path):
    out = tmp_path / 'two-spaces'
    ok('tune', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '1:2:0.5', '--first-num', 12,
       '--final-num', 12, '--detector', metric['detector'], '--ref', metric['ref'], '--detector', metric2['detector'],
       '--ref', metric2['ref'], '--resamples', RESAMPLES, '--out', out, '--quiet', *FAST)
    t = json.loads((out / 'tune.json').read_text())
    assert [s['objective'] for s in t['spaces']] == [True, False]
    ref2 = ref_stats(metric2)
    e = t['rounds'][0]['candidates'][0]['evaluations'][1]
    x = features_of(metric2, out / e['folder'], tmp_path / 'x.npy')[:e['seeds']]
    assert e['other_spaces']['det2'] == pytest.approx(fd(x, ref2), rel=FD_RTOL)
    assert_close(t['finals'][0]['estimates']['det2'], interval(features_of(metric2, out / t['finals'][0]['folder'],
                                                                           tmp_path / 'y.npy'), ref2))


@pytest.mark.parametrize('args,message', [
    (['--gnet', None, '--uncond', None], 'no candidate to search'),
    (['--guidance', '2:2:0.1', '--uncond', None], 'nothing to search'),
    (['--guidance', '1,2,3'], 'tune searches a range'),
    (['--gnet', 'MAIN'], 'is the main net itself'),
    (['--budget', 20], 'cannot finish one round'),
    (['--num', 8], 'drop --num'),
    (['--final-num', 2], '--final-num'),
    (['--detector', None, '--ref', None], 'tune needs an objective'),
    (['--resume', True], 'does not exist; drop --resume'),
    (['--alpha', 0.5], 'not expected: 0.5 --alpha'),  # the mix is not searched
    (['--preset', 'demo-fmnist'], 'tune takes nets, not presets'),
])
def test_bad_spaces_are_refused(nets, metric, tmp_path, args, message):
    base = {'--net': nets['main'], '--gnet': nets['guide'], '--uncond': nets['uncond'], '--guidance': '1:3:0.25',
            '--first-num': 4, '--final-num': 16, '--detector': metric['detector'], '--ref': metric['ref']}
    for k, v in zip(args[::2], args[1::2]):
        base[k] = nets['main'] if v == 'MAIN' else v
    line = []
    for k, v in base.items():
        if v is True:
            line.append(k)
        elif v is not None:
            line += [k, v]
    out = tmp_path / 'out'
    bad('tune', *line, '--out', out, *FAST, message=message)
    assert not out.exists()


def test_without_budget_it_says_what_it_will_spend(nets, metric, tmp_path):
    r = ok(*[a for a in tune_args(nets, metric, tmp_path / 'o') if a != '--quiet'])
    first = r.stderr.splitlines()[0]
    assert 'Planned:' in first and 'no --budget' in first and 'the grid it replaces: 272' in first, first


def test_reuse_takes_another_objectives_points(nets, metric, metric2, tmp_path):
    """A second tune of the same nets with the other space as objective takes the first's points (the images are
    the same) and ends with the tune.json of a run that sampled everything itself."""
    def args(out, first, second, *extra, steps=4):
        fast = list(FAST)
        fast[fast.index('--steps') + 1] = steps
        return ['tune', '--net', nets['main'], '--gnet', nets['guide'], '--uncond', nets['uncond'], '--guidance',
                '1:3:0.25', '--first-num', 8, '--final-num', 16, '--detector', first['detector'], '--ref',
                first['ref'], '--detector', second['detector'], '--ref', second['ref'], '--resamples', RESAMPLES,
                '--out', out, *fast, *extra]
    ok(*args(tmp_path / 'a', metric, metric2, '-q'))
    r = ok(*args(tmp_path / 'b', metric2, metric, '--reuse', tmp_path / 'a'))
    taken = int(r.stderr.split('took ')[1].split()[0])
    sampled = int(r.stderr.split('sampled by this run: ')[1].split(')')[0])
    fresh = ok(*args(tmp_path / 'c', metric2, metric))
    spent = json.loads((tmp_path / 'c' / 'tune.json').read_text())['images']
    assert taken > 0 and sampled < spent, r.stderr
    assert int(fresh.stderr.split('sampled by this run: ')[1].split(')')[0]) == spent
    b, c = (json.loads((tmp_path / d / 'tune.json').read_text()) for d in ('b', 'c'))
    assert b == c
    # Other nets or settings: their images are not these.
    bad(*args(tmp_path / 'd', metric2, metric, '--reuse', tmp_path / 'a', steps=5), message='its images are not this run')
    assert not (tmp_path / 'd').exists()


def test_main_net_ema_lengths_are_an_axis(series, metric, tmp_path):
    """--net SET --net-ema A,B crosses the main net's lengths with the guides: a candidate each, an unguided point
    each, and a point's PNGs are generate's with the same lengths."""
    out = tmp_path / 'ema'
    ok('tune', '--net', series['set'], '--net-ema', '0.05,0.1', '--gnet', series['main'], '--guidance', '1:2:0.5',
       '--first-num', 4, '--final-num', 4, '--detector', metric['detector'], '--ref', metric['ref'],
       '--resamples', RESAMPLES, '--out', out, '-q', *FAST)
    t = json.loads((out / 'tune.json').read_text())
    assert [c['label'] for c in t['parameters']['candidates']] == ['main ema=0.050, main.pt', 'main ema=0.100, main.pt']
    assert [c['net_ema'] for c in t['parameters']['candidates']] == [0.05, 0.1]
    evals = [e for c in t['rounds'][0]['candidates'] for e in c['evaluations']]
    assert {e['folder'] for e in evals if e['w'] == 1} == {'images/unguided-main-ema0.050-w1.00',
                                                           'images/unguided-main-ema0.100-w1.00'}
    point = out / 'images' / 'main-ema0.100-main-w1.50'
    ok('generate', '--net', series['set'], '--net-ema', '0.1', '--gnet', series['main'], '--guidance', 1.5,
       '--seeds', '0-3', '--out', tmp_path / 'gen', '-q', *FAST)
    for seed in range(4):
        name = f'{seed:06d}.png'
        assert np.array_equal(np.asarray(Image.open(point / name)), np.asarray(Image.open(tmp_path / 'gen' / name)))
    bad('tune', '--net', series['set'], '--net-ema', '0.05', '--gnet', series['set'], '--gnet-ema', '0.05',
        '--guidance', '1:2:0.5', '--detector', metric['detector'], '--ref', metric['ref'], '--out', tmp_path / 'x',
        *FAST, message='is the main net itself')


def test_one_net_given_twice_is_searched_once(nets, metric, tmp_path):
    """A guide given under two names (here a copy; in the demo the snapshot set's 0.05, which is guide.pt) is one
    net: it is searched once, under the first name, and the search is the one of the net given once."""
    copy = tmp_path / 'guide-copy.pt'
    shutil.copyfile(nets['guide'], copy)
    twice = tmp_path / 'twice'
    args = tune_args(nets, metric, twice)
    args[args.index('--gnet') + 1] = f"{nets['guide']},{copy}"
    args.remove('--quiet')
    r = ok(*args)
    name = os.path.basename(nets['guide'])
    assert f'guide-copy.pt has the weights of {name}; searched once, as {name}' in r.stderr, r.stderr
    t = json.loads((twice / 'tune.json').read_text())
    assert t['merged'] == [{'candidate': 'guide-copy.pt', 'same_as': name}]
    assert [c['label'] for c in t['parameters']['candidates']] == [name, 'guide-copy.pt', os.path.basename(nets['uncond'])]
    assert all(c['candidate'] != 'guide-copy.pt' for r in t['rounds'] for c in r['candidates'])
    assert not any('guide-copy' in p.name for p in (twice / 'images').iterdir())
    ok(*tune_args(nets, metric, tmp_path / 'once'))
    once = json.loads((tmp_path / 'once' / 'tune.json').read_text())
    for key in ('rounds', 'finals', 'winners', 'images', 'grid_images', 'between_groups', 'stopped'):
        assert t[key] == once[key], key
    assert once['merged'] == []
