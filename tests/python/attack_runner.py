"""Runs the attack corpus (attack_corpus.py) through each converter's own main(argv), all in this one process
(torch is imported once), under limits that turn unbounded work into a failure: the address space may grow by
at most 2 GiB past what the imports took (RLIMIT_AS), and each case has 120 s (SIGALRM).

    python3 tests/python/attack_runner.py WORKDIR REPORT.json [NAME...]

The report maps each attack to its exit status, stderr and stdout (captured at the file descriptors, where
TorchScript prints), seconds, peak resident memory, the files it left beside its inputs, and whether MARKER
appeared.
"""
import importlib.util
import json
import os
import resource
import signal
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SCRIPTS = os.path.join(os.path.dirname(os.path.dirname(HERE)), 'scripts')
sys.path[:0] = [SCRIPTS, HERE]

import torch  # noqa: E402,F401

from attack_corpus import ATTACKS  # noqa: E402
from autoguide_py import detectors, export, vae  # noqa: E402

SECONDS = 120
HEADROOM = 2 << 30


def _script_main(name):
    spec = importlib.util.spec_from_file_location(name.replace('.py', '_script'), os.path.join(SCRIPTS, name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.main


MAINS = {'export_edm2': export.main, 'export_vae': vae.main, 'export_detectors': detectors.main,
         'phema': _script_main('phema.py'), 'phema_set': _script_main('export_phema_set.py')}


def _status(key):
    with open('/proc/self/status') as f:
        for line in f:
            if line.startswith(key + ':'):
                return int(line.split()[1]) * 1024
    return 0


def _files(folder):
    return sorted(os.path.relpath(os.path.join(d, f), folder) for d, _, names in os.walk(folder) for f in names)


class _Timeout(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Timeout(f'still running after {SECONDS} s')


def _captured(call):
    """call()'s result with everything written to file descriptors 1 and 2 meanwhile."""
    saved = [os.dup(1), os.dup(2)]
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        sys.stdout.flush(), sys.stderr.flush()
        os.dup2(out.fileno(), 1), os.dup2(err.fileno(), 2)
        try:
            result = call()
        finally:
            sys.stdout.flush(), sys.stderr.flush()
            os.dup2(saved[0], 1), os.dup2(saved[1], 2)
            [os.close(fd) for fd in saved]
        out.seek(0), err.seek(0)
        return result, out.read().decode(errors='replace'), err.read().decode(errors='replace')


def run_case(attack, args):
    def call():
        signal.alarm(SECONDS)
        try:
            return MAINS[attack.converter](args)
        except SystemExit as e:
            return e.code
        except _Timeout as e:
            print(f'error: {e}', file=sys.stderr)
            return 'timeout'
        finally:
            signal.alarm(0)
    with open('/proc/self/clear_refs', 'w') as f:  # resets the peak resident size
        f.write('5')
    start = time.monotonic()
    rc, out, err = _captured(call)
    return rc, out, err, time.monotonic() - start


def main(workdir, report_path, names):
    cases = [a for a in ATTACKS if not names or a.name in names]
    prepared = []
    for attack in cases:
        folder = os.path.join(workdir, attack.name)
        os.makedirs(os.path.join(folder, 'out'))
        marker = os.path.join(folder, 'MARKER')
        prepared.append((attack, folder, marker, attack.arguments(folder, marker), _files(folder)))
    torch.set_num_threads(1)
    limit = _status('VmSize') + HEADROOM
    resource.setrlimit(resource.RLIMIT_AS, (limit, resource.getrlimit(resource.RLIMIT_AS)[1]))
    signal.signal(signal.SIGALRM, _on_alarm)
    report = {}
    for attack, folder, marker, args, before in prepared:
        rc, out, err, seconds = run_case(attack, args)
        report[attack.name] = dict(rc=rc, stdout=out, stderr=err, seconds=round(seconds, 3),
                                   peak_rss_mib=round(_status('VmHWM') / 2 ** 20, 1),
                                   new_files=sorted(set(_files(folder)) - set(before)),
                                   marker=os.path.exists(marker), converter=attack.converter, tries=attack.tries)
        print(f"{attack.name:32s} rc={rc} {seconds:6.2f}s {report[attack.name]['peak_rss_mib']:7.1f} MiB "
              f"{err.strip()[:110]}", file=sys.stderr)
    with open(report_path, 'w') as f:
        json.dump(dict(address_space_limit_mib=limit >> 20, cases=report), f, indent=1)


if __name__ == '__main__':
    main(sys.argv[1], sys.argv[2], set(sys.argv[3:]))
