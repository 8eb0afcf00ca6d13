"""A run in a batch job: progress lines in a log (stderr not a terminal)."""
import re

from cli import ok, requires_bin

pytestmark = requires_bin

PROGRESS = re.compile(r'autoguide: image (\d+)/(\d+)  step \d+/\d+  (\d+)%  elapsed \d+:\d\d:\d\d  '
                      r'[0-9.e+-]+ images/s  ETA (\d+:\d\d:\d\d|-:--:--)')


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
