"""Two runs on one output folder: the second is refused while the first writes (one line naming the process
that holds the folder, exit 2), and the first's images equal a run that had the machine to itself."""
import os
import subprocess
import time

from cli import BIN, autoguide, requires_bin

pytestmark = requires_bin

ARGS = ['--seeds', '0-11', '--steps', 24, '--batch', 2, '--device', 'cpu', '--threads', 1, '--quiet']


def test_second_run_on_a_busy_folder_is_refused_and_the_first_completes(nets, tmp_path):
    out = tmp_path / 'out'
    first = subprocess.Popen([BIN, 'generate', '--net', str(nets['main']), '--gnet', str(nets['guide']), '--guidance', '2',
                              '--outdir', str(out), *map(str, ARGS)], stderr=subprocess.PIPE, text=True)
    lock = out / '.autoguide.lock'
    deadline = time.time() + 60
    while not lock.exists() and time.time() < deadline and first.poll() is None:
        time.sleep(0.02)
    assert lock.exists(), 'the first run never claimed its folder'
    second = autoguide('generate', '--net', nets['main'], '--outdir', out, '--resume', *ARGS)
    assert first.wait(timeout=300) == 0, first.stderr.read()
    assert second.returncode == 2, second.stderr
    lines = second.stderr.strip().splitlines()
    assert len(lines) == 1 and 'is being written by another autoguide process' in lines[0], lines
    assert f'(pid {first.pid})' in lines[0]
    assert not lock.exists()  # released when the first run ended
    alone = tmp_path / 'alone'
    r = autoguide('generate', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', 2, '--outdir', alone,
                  *ARGS)
    assert r.returncode == 0, r.stderr
    names = sorted(p.name for p in out.iterdir())
    assert names == sorted(p.name for p in alone.iterdir())
    for name in names:
        if name.endswith('.png'):
            assert (out / name).read_bytes() == (alone / name).read_bytes(), name
    # Once the folder is free, the same second command runs (and, with --resume, keeps what is there).
    r = autoguide('generate', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', 2, '--outdir', out,
                  '--resume', *ARGS)
    assert r.returncode == 0, r.stderr
    assert os.listdir(out) and not lock.exists()
