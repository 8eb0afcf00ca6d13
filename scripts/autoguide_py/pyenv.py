"""Find a Python that has PyTorch before a CLI script imports it.

Stdlib only: this runs under whichever `python3` the user happened to call, which on
many machines is a virtualenv or pyenv shim without the distribution's python3-torch.
"""

import os
import subprocess
import sys

_DEFAULT_PYTHON = '/usr/bin/python3'
_REEXEC_MARKER = 'AUTOGUIDE_PYENV_REEXEC'
_MESSAGE = 'error: PyTorch not found; run scripts/setup.sh (installs python3-torch) or set AUTOGUIDE_PYTHON'


def _has_torch(python):
    try:
        probe = subprocess.run([python, '-c', 'import torch'], stdin=subprocess.DEVNULL,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, timeout=120)
    except (OSError, subprocess.SubprocessError):
        return False
    return probe.returncode == 0


def _same_interpreter(python):
    try:
        return os.path.samefile(python, sys.executable)
    except OSError:
        return False


def ensure_torch():
    """Return if `import torch` works here; else re-exec this script under a Python that has it.

    An explicit $AUTOGUIDE_PYTHON is the only candidate when set (the user chose it);
    otherwise /usr/bin/python3 is tried. Exits with status 2 and one line on stderr when
    no candidate has torch.
    """
    try:
        import torch  # noqa: F401
        return
    except ImportError:
        pass

    explicit = os.environ.get('AUTOGUIDE_PYTHON')
    candidate = explicit if explicit else _DEFAULT_PYTHON
    # The marker stops a loop when the candidate imports torch in the probe but not in the script.
    if (os.environ.get(_REEXEC_MARKER) != '1' and not _same_interpreter(candidate)
            and _has_torch(candidate)):
        env = dict(os.environ)
        env[_REEXEC_MARKER] = '1'
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            os.execve(candidate, [candidate, os.path.abspath(sys.argv[0])] + sys.argv[1:], env)
        except OSError:
            pass
    print(_MESSAGE, file=sys.stderr)
    sys.exit(2)
