"""The BLAS check warns exactly when the netlib reference BLAS is the one loaded."""
import os
import subprocess

import pytest

from cli import BIN  # noqa: E402
NETLIB = '/usr/lib/x86_64-linux-gnu/blas/libblas.so.3'
OPENBLAS = '/usr/lib/x86_64-linux-gnu/openblas-pthread/libblas.so.3'


def run_with_blas(lib, tmp_path):
    d = tmp_path / 'blas'
    d.mkdir()
    (d / 'libblas.so.3').symlink_to(lib)
    env = dict(os.environ, LD_LIBRARY_PATH=str(d))
    # An error after the device is chosen: the check has run, no network is needed.
    return subprocess.run([BIN, 'generate', '--net', str(tmp_path / 'missing.pt'), '--seeds', '0',
                           '--npy', str(tmp_path / 'x.npy'), '--device', 'cpu'],
                          capture_output=True, text=True, env=env)


@pytest.mark.skipif(not (os.path.exists(BIN) and os.path.exists(NETLIB)), reason='needs build/autoguide and netlib BLAS')
def test_warns_with_reference_blas(tmp_path):
    r = run_with_blas(NETLIB, tmp_path)
    assert 'reference BLAS' in r.stderr and r.stderr.count('warning') == 1


@pytest.mark.skipif(not (os.path.exists(BIN) and os.path.exists(OPENBLAS)), reason='needs build/autoguide and OpenBLAS')
def test_silent_with_openblas(tmp_path):
    r = run_with_blas(OPENBLAS, tmp_path)
    assert 'warning' not in r.stderr and 'not found' in r.stderr
