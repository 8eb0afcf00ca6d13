"""A CLI smoke set for the sanitizer build: each command on the tiny fixture nets, and bad inputs, with the exit
status it must end with. Under AddressSanitizer + UndefinedBehaviorSanitizer any report ends a run with status
99 (tests/sanitize/env.sh), so the expected status is also the check that nothing was found.

    python3 tests/sanitize/cli_smoke.py build-asan/autoguide build-asan/fixtures
"""
import os
import shutil
import subprocess
import sys
import tempfile
import time

import torch


class MeanDetector(torch.nn.Module):
    """A stand-in feature detector: per-channel means and spreads of uint8 images [N,C,H,W] -> [N,2C]."""

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        x = images.float() / 255
        return torch.cat([x.mean([2, 3]), x.std([2, 3])], 1)


def cases(fx, work):
    net, guide, uncond = (os.path.join(fx, n) for n in ('main.pt', 'guide.pt', 'uncond.pt'))
    nan_guide, faulty = os.path.join(fx, 'guide_nan.pt'), os.path.join(fx, 'faulty.pt')
    w = lambda *names: os.path.join(work, *names)  # noqa: E731
    base = ['generate', '--net', net, '--steps', '4', '-q']
    return [
        ('generate autoguidance, grid, npy', 0, base + ['--gnet', guide, '--guidance', '2', '--seeds', '0-3',
                                                        '--batch', '3', '--outdir', w('ag'), '--grid', w('ag.png'),
                                                        '--npy', w('ag.npy')]),
        ('generate CFG with churn', 0, base + ['--gnet', uncond, '--guidance', '1.5', '--seeds', '0-1',
                                               '--S_churn', '10', '--outdir', w('cfg')]),
        ('generate mix, interval, euler, bf16', 0, base + ['--gnet', guide, '--uncond', uncond, '--alpha', '0.5',
                                                           '--guidance', '2', '--seeds', '0-1', '--sampler', 'euler',
                                                           '--interval-sigma', '0.1,10', '--dtype', 'bf16',
                                                           '--npy', w('mix.npy')]),
        ('generate --resume', 0, base + ['--gnet', guide, '--guidance', '2', '--seeds', '0-4', '--batch', '3',
                                         '--outdir', w('ag'), '--resume']),
        ('sweep', 0, ['sweep', '--net', net, '--gnet', guide, '--guidance', '1,2', '--seeds', '0-1', '--steps', '3',
                      '--outdir', w('sweep'), '-q']),
        ('info', 0, ['info', net]),
        ('info --json', 0, ['info', '--json', guide]),
        ('ref', 0, ['ref', '--detector', w('detector.pt'), '--images', w('ag'), '--out', w('ref.npz'),
                    '--features-out', w('features.npy'), '-q']),
        ('fid with --pr', 0, ['fid', '--detector', w('detector.pt'), '--images', w('ag'), '--ref', w('ref.npz'),
                              '--ref-images', w('features.npy'), '--pr', '-q']),
        ('bad: guidance beyond float32', 2, base + ['--gnet', guide, '--guidance', '1e308', '--seeds', '0',
                                                    '--outdir', w('bad')]),
        ('bad: reversed seed range', 2, base + ['--seeds', '5-3', '--outdir', w('bad')]),
        ('bad: truncated model', 2, base + ['--net', w('cut.pt'), '--seeds', '0', '--outdir', w('bad')]),
        ('bad: existing outputs', 2, base + ['--seeds', '0', '--outdir', w('ag')]),
        ('bad: info on an array', 2, ['info', w('ag.npy')]),
        ('bad: damaged statistics', 2, ['fid', '--detector', w('detector.pt'), '--images', w('ag'), '--ref',
                                        w('cut.npz')]),
        ('bad: damaged image in folder', 2, ['ref', '--detector', w('detector.pt'), '--images', w('broken'),
                                             '--out', w('bad.npz')]),
        ('bad: malformed presets', 2, base + ['--preset', 'x', '--seeds', '0', '--outdir', w('bad')]),
        ('fault: NaN guide', 1, base + ['--gnet', nan_guide, '--guidance', '2', '--seeds', '0', '--outdir', w('nan')]),
        ('fault: net breaks mid-run', 1, ['generate', '--net', faulty, '--seeds', '0-3', '--batch', '1', '-q',
                                          '--outdir', w('faulty')]),
    ]


def prepare(fx, work):
    torch.jit.script(MeanDetector()).save(os.path.join(work, 'detector.pt'))
    with open(os.path.join(fx, 'main.pt'), 'rb') as f:
        data = f.read()
    with open(os.path.join(work, 'cut.pt'), 'wb') as f:
        f.write(data[:len(data) // 2])
    os.makedirs(os.path.join(work, 'broken'))
    with open(os.path.join(work, 'broken', 'x.png'), 'wb') as f:
        f.write(b'\x89PNG\r\n\x1a\n' + bytes(40))
    os.makedirs(os.path.join(work, 'configs'))
    with open(os.path.join(work, 'configs', 'deep.json'), 'w') as f:
        f.write('{"presets": ' + '[' * 5000 + ']' * 5000 + '}')


def main(binary, fx):
    work = tempfile.mkdtemp(prefix='autoguide-smoke-')
    prepare(fx, work)
    env = dict(os.environ, AUTOGUIDE_CONFIGS=os.path.join(work, 'configs'))
    failed = 0
    for step, (name, expected, args) in enumerate(cases(fx, work)):
        if step == 9:  # the statistics exist now; a cut copy of them is the next bad input
            with open(os.path.join(work, 'ref.npz'), 'rb') as f, open(os.path.join(work, 'cut.npz'), 'wb') as g:
                g.write(f.read()[:-40])
        start = time.monotonic()
        r = subprocess.run([binary, *args], capture_output=True, text=True, env=env, timeout=600)
        report = 'Sanitizer' in r.stderr or 'runtime error' in r.stderr
        good = r.returncode == expected and not report
        failed += not good
        print(f"{'ok  ' if good else 'FAIL'} {name:38s} exit {r.returncode} (expected {expected}) "
              f'{time.monotonic() - start:5.1f} s', flush=True)
        if not good:
            print(r.stderr[-4000:], flush=True)
    shutil.rmtree(work)
    print(f'cli smoke: {failed} of {len(cases(fx, work))} runs failed' if failed else 'cli smoke: all runs passed')
    return 1 if failed else 0


if __name__ == '__main__':
    sys.exit(main(sys.argv[1], sys.argv[2]))
