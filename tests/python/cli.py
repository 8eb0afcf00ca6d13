"""Running build/autoguide from the tests: the binary's path, a skip marker when it is not built, and runners."""
import os
import subprocess
from pathlib import Path

import pytest

BIN = os.environ.get('AUTOGUIDE_BIN', str(Path(__file__).resolve().parents[2] / 'build' / 'autoguide'))
requires_bin = pytest.mark.skipif(not os.path.exists(BIN), reason='build/autoguide not built (scripts/build.sh)')


def autoguide(*args, **kwargs):
    return subprocess.run([BIN, *map(str, args)], capture_output=True, text=True, timeout=300, **kwargs)


def ok(*args, **kwargs):
    r = autoguide(*args, **kwargs)
    assert r.returncode == 0, r.stderr
    return r
