"""A run in a batch job: progress lines in a log (stderr not a terminal), and SIGTERM (Slurm's time limit) or
SIGINT (Ctrl-C) stopping `autoguide generate` between batches: the signal's exit status, one error line, no
lock or temporary file left, a manifest of exactly the images finished, and --resume completing the set with
the bytes of an uninterrupted run."""
import json
import os
import re
import signal
import subprocess
import time

import pytest

from cli import BIN, ok, requires_bin

pytestmark = requires_bin

PROGRESS = re.compile(r'autoguide: image (\d+)/(\d+)  step \d+/\d+  (\d+)%  elapsed \d+:\d\d:\d\d  '
                      r'[0-9.e+-]+ images/s  ETA (\d+:\d\d:\d\d|-:--:--)')
# Slow enough (one image a batch, many steps, one thread) that a signal lands mid-run.
SLOW = ['--seeds', '0-39', '--batch', 1, '--steps', 24, '--threads', 1, '--device', 'cpu']


def not_progress(stderr):
    return [line for line in stderr.strip().splitlines() if not PROGRESS.fullmatch(line)]


def test_log_gets_a_progress_line_every_five_percent(nets, tmp_path):
    r = ok('generate', '--net', nets['main'], '--seeds', '0-39', '--batch', 1, '--steps', 4, '--device', 'cpu',
           '--outdir', tmp_path / 'out')
    assert '\r' not in r.stderr  # a pipe gets plain lines, not the terminal's live line
    progress = [PROGRESS.fullmatch(line) for line in r.stderr.splitlines() if PROGRESS.fullmatch(line)]
    assert [int(m.group(3)) for m in progress] == list(range(5, 101, 5)), r.stderr
    assert all(m.group(2) == '40' for m in progress)
    assert progress[-1].group(1) == '40' and progress[-1].group(4) == '0:00:00'
    rest = not_progress(r.stderr)
    assert len(rest) == 1 and rest[0].startswith('autoguide: 40 images'), r.stderr
    quiet = ok('generate', '--net', nets['main'], '--seeds', '0-3', '--steps', 4, '--device', 'cpu',
               '--outdir', tmp_path / 'quiet', '--quiet')
    assert quiet.stderr == ''


@pytest.fixture(scope='module')
def clean_run(nets, tmp_path_factory):
    out = tmp_path_factory.mktemp('clean') / 'out'
    ok('generate', '--net', nets['main'], *SLOW, '--outdir', out, '--quiet')
    return out


def start_and_stop(args, out, sig, after_images=3):
    p = subprocess.Popen([BIN, *map(str, args)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while len(list(out.glob('*.png'))) < after_images:
        assert p.poll() is None, p.communicate()[1]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    p.send_signal(sig)
    _, err = p.communicate(timeout=120)
    return p.returncode, err


@pytest.mark.parametrize('sig,code', [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_between_batches_and_resume_finishes(nets, clean_run, tmp_path, sig, code):
    out = tmp_path / 'out'
    args = ['generate', '--net', nets['main'], *SLOW, '--outdir', out]
    rc, err = start_and_stop(args, out, sig)
    assert rc == code, err
    lines = not_progress(err)
    assert len(lines) == 1, err
    m = re.fullmatch(r'autoguide: error: interrupted by (SIG\w+) at image (\d+)/40; '
                     r'rerun the same command with --resume to finish', lines[0])
    assert m and m.group(1) == sig.name, err
    done = int(m.group(2))
    assert 3 <= done < 40, 'the run ended before the signal; make SLOW slower'
    # The first `done` seeds, each PNG complete; the manifest; no lock file, no temporary file.
    names = sorted(p.name for p in out.iterdir())
    assert names == [f'{s:06d}.png' for s in range(done)] + ['manifest.json'], names
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['complete'] is False
    assert manifest['interrupted'] == {'signal': sig.name, 'images_done': done, 'images_total': 40}
    assert [rec['seed'] for rec in manifest['images']] == list(range(done))
    assert [rec['file'] for rec in manifest['images']] == names[:-1]
    for name in names[:-1]:
        assert (out / name).read_bytes() == (clean_run / name).read_bytes(), name

    r = ok(*args, '--resume', '--quiet')
    assert r.stderr == ''
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in clean_run.iterdir())
    for png in clean_run.glob('*.png'):
        assert (out / png.name).read_bytes() == png.read_bytes(), png.name
    manifest = json.loads((out / 'manifest.json').read_text())
    assert manifest['complete'] is True and 'interrupted' not in manifest
    assert [rec['seed'] for rec in manifest['images']] == list(range(40))
    assert sum(bool(rec.get('resumed')) for rec in manifest['images']) == done


def test_sigterm_stops_a_sweep_and_releases_its_folder(nets, tmp_path):
    out = tmp_path / 'sweep'
    args = ['sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '1,2', *SLOW, '--outdir', out]
    rc, err = start_and_stop(args, out / 'unguided-w1.00', signal.SIGTERM)
    lines = err.strip().splitlines()
    assert rc == 143 and lines[-1].startswith('autoguide: error: interrupted by SIGTERM in setting 1/2'), err
    assert '--overwrite' in lines[-1]
    assert not list(out.rglob('.*')), 'a lock or temporary file was left'
    assert not (out / 'results.json').exists()
    again = ['sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '1,2', '--seeds', '0-39',
             '--steps', 2, '--device', 'cpu', '--outdir', out, '--overwrite', '--quiet']
    ok(*again)


def start_ranks(args, world):
    import socket
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        port = s.getsockname()[1]

    def env(r):  # torchrun's variables, as tests/python/test_distributed.py sets them
        return dict(os.environ, RANK=str(r), WORLD_SIZE=str(world), LOCAL_RANK=str(r), MASTER_ADDR='127.0.0.1',
                    MASTER_PORT=str(port), OMP_NUM_THREADS='1')
    return [subprocess.Popen([BIN, *map(str, args)], env=env(r), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                             text=True) for r in range(world)]


@pytest.mark.parametrize('signalled', [(0, 1), (1,)], ids=['every-rank', 'one-rank'])
def test_sigterm_under_a_launcher_ends_every_rank(nets, clean_run, tmp_path, signalled):
    # torchrun and srun signal every rank; a rank signalled alone tells the others. Nobody waits at a barrier.
    out = tmp_path / 'out'
    args = ['generate', '--net', nets['main'], *SLOW, '--outdir', out, '--dist-timeout', 60]
    procs = start_ranks(args, 2)
    deadline = time.monotonic() + 120
    while len(list(out.glob('*.png'))) < 4:
        assert all(p.poll() is None for p in procs), [p.communicate()[1] for p in procs]
        assert time.monotonic() < deadline
        time.sleep(0.005)
    for r in signalled:
        procs[r].send_signal(signal.SIGTERM)
    errs = [p.communicate(timeout=60)[1] for p in procs]
    expected = [143 if r in signalled else 1 for r in range(2)]
    assert [p.returncode for p in procs] == expected, errs
    for err in errs:
        lines = not_progress(err)
        assert len(lines) == 1 and 'interrupted by SIGTERM' in lines[0] and '--resume' in lines[0], err
    assert not list(out.glob('.*')), 'a lock, probe or temporary file was left'
    if 0 in signalled:  # rank 0 stopped itself: its manifest lists the complete images it saw, the other rank's too
        manifest = json.loads((out / 'manifest.json').read_text())
        listed = {rec['file'] for rec in manifest['images']}
        assert manifest['complete'] is False and manifest['interrupted']['images_done'] == len(listed) >= 4
        # The other rank may finish its batch in progress after rank 0 looked: never fewer files than listed.
        assert listed <= {p.name for p in out.glob('*.png')}
    ok(*args[:-2], '--resume', '--quiet')  # one process finishes what two began
    for png in clean_run.glob('*.png'):
        assert (out / png.name).read_bytes() == png.read_bytes(), png.name
