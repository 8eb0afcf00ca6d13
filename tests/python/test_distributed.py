"""Many ranks on 127.0.0.1 (CPU, Gloo, one thread each): `generate` under torchrun, mpirun and a one-node Slurm
against a one-process run (PNGs byte for byte, each rank's batches against an independent numpy version of
EDM2's rank split, the merged manifest), the FD of `sweep`, `compare`, `ref` and `fid` against one process, a
killed rank and the resumed run, and the bad inputs of the many-process issue. Processes started here with
RANK/WORLD_SIZE set by hand are torchrun's environment without its agent: our own failure handling, alone."""
import getpass
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest

from cli import BIN, autoguide, ok, requires_bin  # noqa: F401
from test_sweep_compare import metric  # noqa: F401  (the detector and reference statistics)

pytestmark = requires_bin

SEEDS = [20, *range(9), 15]  # 11 seeds, not in order: positions and seeds differ
SEED_TEXT = '20,0-8,15'
BATCH = 2
FAST = ['--batch', BATCH, '--steps', 4, '--device', 'cpu', '--threads', 1]
FD_RTOL = 1e-9
TIMEOUT = 3  # --dist-timeout of the runs that must fail


def edm2_rank_batches(n, max_batch, rank, world):
    """generate_images.py's split, written from the reference: indices into the seed list."""
    num_batches = max((n - 1) // (max_batch * world) + 1, 1) * world
    return [b.tolist() for b in np.array_split(np.arange(n), num_batches)[rank::world] if len(b)]


def free_port():
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        return s.getsockname()[1]


def rank_env(rank, world, port, **extra):
    env = dict(os.environ, RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank), MASTER_ADDR='127.0.0.1',
               MASTER_PORT=str(port), OMP_NUM_THREADS='1')
    env.update(extra)
    return env


def by_hand(world, *args, cwd=None, envs=None, timeout=120):
    """Starts `world` ranks with torchrun's variables; returns (returncode, stdout, stderr) per rank."""
    port = free_port()
    procs = [subprocess.Popen([BIN, *map(str, args)], env=(envs or {}).get(r, rank_env(r, world, port)),
                              cwd=(cwd or {}).get(r), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
             for r in range(world)]
    outs = [p.communicate(timeout=timeout) for p in procs]
    return [(p.returncode, out, err) for p, (out, err) in zip(procs, outs)]


def codes(results):
    return [r[0] for r in results]


def one_line_error(stderr, message):
    # In a log (stderr a pipe) rank 0's progress lines of the work done before the failure come first.
    lines = [line for line in stderr.strip().splitlines() if not re.search(r'  \d+%  elapsed .* ETA ', line)]
    assert len(lines) == 1 and lines[0].startswith('autoguide: error: '), stderr
    assert message in lines[0], lines[0]


def files_under(path):
    return sorted(str(p.relative_to(path)) for p in Path(path).rglob('*') if p.is_file())


def generate_args(nets, outdir):
    return ['generate', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', 2, '--seeds', SEED_TEXT,
            '--outdir', outdir, *FAST]


@pytest.fixture(scope='module')
def one_process(nets, tmp_path_factory):
    out = tmp_path_factory.mktemp('one') / 'out'
    ok(*generate_args(nets, out), '--quiet')
    return out


def assert_same_images_and_split(out, one, world):
    """The union of the ranks' PNGs is the one-process set byte for byte; each rank made EDM2's batches; the
    merged manifest lists every seed once, in order."""
    pngs = sorted(p.name for p in one.glob('*.png'))
    assert files_under(out) == sorted(pngs + ['manifest.json'])
    for name in pngs:
        assert (out / name).read_bytes() == (one / name).read_bytes(), name
    manifest = json.loads((out / 'manifest.json').read_text())
    assert [r['seed'] for r in manifest['images']] == SEEDS
    ranks = manifest['ranks']
    assert ranks['world'] == world and sorted(e['rank'] for e in ranks['ranks']) == list(range(world))
    for e in ranks['ranks']:
        expected = [[SEEDS[i] for i in b] for b in edm2_rank_batches(len(SEEDS), BATCH, e['rank'], world)]
        assert e['batches'] == expected, e['rank']
    assert manifest['network_evaluations'] == json.loads((one / 'manifest.json').read_text())['network_evaluations']
    return manifest


def torchrun(world, *args, log_dir):
    # Debian's torchrun (torch 1.13, Python 3.11) needs single-bit --redirects/--tee (README, "Many GPUs").
    cmd = ['torchrun', '--nproc_per_node', str(world), '--master_port', str(free_port()), '--redirects', '2',
           '--tee', '1', '--log_dir', str(log_dir), '--no_python', BIN, *map(str, args)]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=180, env=dict(os.environ, OMP_NUM_THREADS='1'))


def test_edm2_split_example():
    # The reference's numbers (shared/reference): 11 seeds, batch 2, 3 ranks -> batches 0,3 / 1,4 / 2,5.
    assert edm2_rank_batches(11, 2, 0, 3) == [[0, 1], [6, 7]]
    assert edm2_rank_batches(11, 2, 2, 3) == [[4, 5], [10]]


@pytest.mark.skipif(shutil.which('torchrun') is None, reason='torchrun not installed (python3-torch)')
def test_torchrun_three_ranks_make_the_one_process_images(nets, one_process, tmp_path):
    r = torchrun(3, *generate_args(nets, tmp_path / 'out'), log_dir=tmp_path / 'logs')
    assert r.returncode == 0, r.stdout + r.stderr
    assert assert_same_images_and_split(tmp_path / 'out', one_process, 3)['ranks']['launcher'] == 'torchrun'


@pytest.mark.skipif(shutil.which('mpirun') is None, reason='mpirun not installed (openmpi-bin)')
def test_mpirun_two_ranks_make_the_one_process_images(nets, one_process, tmp_path):
    cmd = ['mpirun', '--oversubscribe', '-np', '2', '-x', f'MASTER_PORT={free_port()}', '-x', 'OMP_NUM_THREADS=1', BIN,
           *map(str, generate_args(nets, tmp_path / 'out'))]
    if os.geteuid() == 0:
        cmd.insert(1, '--allow-run-as-root')
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stdout + r.stderr
    assert assert_same_images_and_split(tmp_path / 'out', one_process, 2)['ranks']['launcher'] == 'mpirun'


def test_by_hand_rank_zero_alone_reports(nets, one_process, tmp_path):
    args = generate_args(nets, tmp_path / 'out')
    results = by_hand(3, *args)
    assert codes(results) == [0, 0, 0], results
    assert results[0][2].count('autoguide: 11 images') == 1 and 'on 3 ranks' in results[0][2]
    assert results[1][2] == results[2][2] == ''
    assert_same_images_and_split(tmp_path / 'out', one_process, 3)


# ---------------------------------------------------------------- Slurm: a one-node cluster, or its variables

SLURM_CONF = """ClusterName=autoguide-test
SlurmctldHost={host}(127.0.0.1)
SlurmctldPort={ctld_port}
SlurmdPort={d_port}
SlurmUser={user}
SlurmdUser={user}
AuthType=auth/munge
AuthInfo=socket={dir}/munge.sock
CredType=cred/munge
StateSaveLocation={dir}/state
SlurmdSpoolDir={dir}/spool
SlurmctldPidFile={dir}/slurmctld.pid
SlurmdPidFile={dir}/slurmd.pid
SlurmctldLogFile={dir}/slurmctld.log
SlurmdLogFile={dir}/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SchedulerType=sched/builtin
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
MpiDefault=none
ReturnToService=2
NodeName={host} NodeAddr=127.0.0.1 CPUs={cpus} State=UNKNOWN
PartitionName=test Nodes={host} Default=YES MaxTime=INFINITE State=UP OverSubscribe=FORCE
"""


def die_with_parent():
    """In a daemon's child process: end it when the test process ends, even when that is killed and
    the fixture's teardown never runs (PR_SET_PDEATHSIG)."""
    import ctypes
    ctypes.CDLL('libc.so.6', use_errno=True).prctl(1, signal.SIGTERM)


def start_slurm(d, procs):
    """munged, slurmctld and slurmd in `d` (no cgroups: linuxproc process tracking, no task plugin). Returns the
    environment for srun, or raises RuntimeError saying why the daemons did not come up."""
    for tool in ('munged', 'slurmctld', 'slurmd', 'srun', 'sinfo'):
        if shutil.which(tool) is None:
            raise RuntimeError(f'{tool} is not installed (slurm-wlm, munge)')
    (d / 'state').mkdir()
    (d / 'spool').mkdir()
    key = d / 'munge.key'
    key.write_bytes(os.urandom(1024))
    key.chmod(0o600)
    host = socket.gethostname().split('.')[0]  # slurmd finds its node by the short host name
    conf = d / 'slurm.conf'
    conf.write_text(SLURM_CONF.format(host=host, ctld_port=free_port(), d_port=free_port(), user=getpass.getuser(),
                                      dir=d, cpus=os.cpu_count()))
    env = dict(os.environ, SLURM_CONF=str(conf))
    daemons = [['munged', '--foreground', '--force', f'--socket={d}/munge.sock', f'--key-file={key}',
                f'--pid-file={d}/munged.pid', f'--log-file={d}/munged.log', f'--seed-file={d}/munge.seed'],
               ['slurmctld', '-D', '-f', str(conf)], ['slurmd', '-D', '-f', str(conf)]]
    for cmd in daemons:
        procs.append(subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=open(d / f'{cmd[0]}.err', 'w'),
                                      preexec_fn=die_with_parent))
        time.sleep(0.5)
    for _ in range(60):
        for p, cmd in zip(procs, daemons):
            if p.poll() is not None:
                raise RuntimeError(f'{cmd[0]} exited with {p.returncode}: ' + (d / f'{cmd[0]}.err').read_text()[-300:])
        state = subprocess.run(['sinfo', '-h', '-o', '%T'], env=env, capture_output=True, text=True).stdout.strip()
        if state == 'idle':
            return env
        time.sleep(0.5)
    raise RuntimeError(f'the node did not become idle within 30 s (sinfo: {state!r})')


@pytest.fixture(scope='module')
def slurm(tmp_path_factory):
    """The environment for srun on a one-node Slurm started here, or the reason it could not start."""
    procs = []
    try:
        yield start_slurm(tmp_path_factory.mktemp('slurm'), procs), None
    except RuntimeError as e:
        yield None, str(e)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()


def test_slurm_two_tasks_make_the_one_process_images(nets, one_process, slurm, tmp_path):
    env, why_not = slurm
    args = generate_args(nets, tmp_path / 'out')
    if env is not None:
        env = dict(env, MASTER_PORT=str(free_port()), OMP_NUM_THREADS='1')
        if 'MASTER_ADDR' in env:
            del env['MASTER_ADDR']  # the address comes from the step's node list
        r = subprocess.run(['srun', '-n', '2', BIN, *map(str, args)], env=env, capture_output=True, text=True,
                           timeout=180)
        assert r.returncode == 0, r.stdout + r.stderr
    else:
        # No daemons in this sandbox: the binary under the variables srun sets.
        print(f'one-node Slurm could not start ({why_not}); running under Slurm variables')
        port = free_port()
        base = {k: v for k, v in os.environ.items() if not k.startswith(('RANK', 'WORLD_SIZE', 'MASTER', 'OMPI'))}
        envs = {r: dict(base, SLURM_STEP_ID='0', SLURM_PROCID=str(r), SLURM_NTASKS='2', SLURM_LOCALID=str(r),
                        SLURM_JOB_ID=str(port - 29500), SLURM_STEP_NODELIST='localhost', OMP_NUM_THREADS='1')
                for r in range(2)}
        assert codes(by_hand(2, *args, envs=envs)) == [0, 0]
    assert assert_same_images_and_split(tmp_path / 'out', one_process, 2)['ranks']['launcher'] == 'srun'


# ---------------------------------------------------------------- metrics across ranks


def sweep_args(nets, metric, out):
    return ['sweep', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', '1,2', '--seeds', SEED_TEXT,
            '--detector', metric['detector'], '--ref', metric['ref'], '--outdir', out, '--quiet', *FAST]


def assert_estimates_match(ours, theirs, rtol=1e-6):
    """An FD (or paired difference) with its interval, from ranks and from one process."""
    for k in ('value', 'se', 'lo', 'hi'):
        assert abs(ours[k] - theirs[k]) <= rtol * max(abs(theirs[k]), 1e-9), (k, ours, theirs)
    assert (ours['n'], ours['resamples']) == (theirs['n'], theirs['resamples'])


def assert_fds_match(ours, theirs):
    assert len(ours) == len(theirs)
    for a, b in zip(ours, theirs):
        assert abs(a - b) <= FD_RTOL * abs(b), (a, b)


@pytest.mark.skipif(shutil.which('torchrun') is None, reason='torchrun not installed (python3-torch)')
def test_sweep_fd_under_torchrun_equals_one_process(nets, metric, tmp_path):
    ok(*sweep_args(nets, metric, tmp_path / 'one'))
    r = torchrun(3, *sweep_args(nets, metric, tmp_path / 'three'), log_dir=tmp_path / 'logs')
    assert r.returncode == 0, r.stdout + r.stderr
    one, three = (json.loads((tmp_path / d / 'results.json').read_text())['settings'] for d in ('one', 'three'))
    assert_fds_match([s['fd'] for s in three], [s['fd'] for s in one])
    for a, b in zip(three, one):  # the intervals and differences to the best, from features gathered to rank 0
        assert_estimates_match(a['estimates']['det'], b['estimates']['det'])
        assert (a['estimates']['det']['vs_best'] is None) == (b['estimates']['det']['vs_best'] is None)
        if b['estimates']['det']['vs_best']:
            assert_estimates_match(a['estimates']['det']['vs_best'], b['estimates']['det']['vs_best'])
    assert files_under(tmp_path / 'three') == files_under(tmp_path / 'one')
    for f in files_under(tmp_path / 'one'):  # the grid gathers each row's first images from the ranks
        if f.endswith('.png'):
            assert (tmp_path / 'three' / f).read_bytes() == (tmp_path / 'one' / f).read_bytes(), f


def test_compare_fd_by_hand_equals_one_process(nets, metric, tmp_path):
    def args(out):
        return ['compare', '--net', nets['main'], '--gnet', nets['guide'], '--ag', 2, '--uncond', nets['uncond'],
                '--cfg', 1.5, '--seeds', SEED_TEXT, '--detector', metric['detector'], '--ref', metric['ref'],
                '--out', out, '--quiet', *FAST]

    def fds(stdout):
        return [float(line.split('\tfd ')[1].split(' ')[0]) for line in stdout.splitlines() if '\t' in line]
    one = fds(ok(*args(tmp_path / 'one.png')).stdout)
    results = by_hand(2, *args(tmp_path / 'two.png'))
    assert codes(results) == [0, 0], results
    assert_fds_match(fds(results[0][1]), one)
    assert len(one) == 3 and results[1][1] == ''
    assert (tmp_path / 'two.png').read_bytes() == (tmp_path / 'one.png').read_bytes()
    one_json, two_json = (json.loads((tmp_path / f).read_text()) for f in ('one.json', 'two.json'))
    for a, b in zip(two_json['rows'], one_json['rows']):
        assert_estimates_match(a['estimates']['det'], b['estimates']['det'])
    for a, b in zip(two_json['differences']['det'], one_json['differences']['det']):
        assert (a['a'], a['b']) == (b['a'], b['b'])
        assert_estimates_match(a, b)


def test_ref_and_fid_by_hand_equal_one_process(metric, tmp_path):
    rng = np.random.default_rng(1)
    images = tmp_path / 'images.npy'
    np.save(images, rng.integers(0, 256, size=(13, 3, 8, 8), dtype=np.uint8))
    common = ['--detector', metric['detector'], '--device', 'cpu', '--threads', 1, '--batch', 2, '--quiet']
    ok('ref', '--images', images, '--out', tmp_path / 'one.npz', '--features-out', tmp_path / 'one.npy', *common)
    results = by_hand(3, 'ref', '--images', images, '--out', tmp_path / 'three.npz', '--features-out',
                      tmp_path / 'three.npy', *common)
    assert codes(results) == [0, 0, 0], results
    one, three = np.load(tmp_path / 'one.npz'), np.load(tmp_path / 'three.npz')
    assert int(three['num_images']) == 13
    for k in ('mu', 'sigma'):
        assert np.abs(three[k] - one[k]).max() <= FD_RTOL * np.abs(one[k]).max()
    assert np.array_equal(np.load(tmp_path / 'three.npy'), np.load(tmp_path / 'one.npy'))  # gathered in order

    fid = ['fid', '--images', images, '--ref-images', Path(metric['ref']).with_suffix('.npy'), '--pr', '--json',
           *common]
    single = json.loads(ok(*fid).stdout)
    results = by_hand(3, *fid)
    assert codes(results) == [0, 0, 0], results
    ranked = json.loads(results[0][1])
    assert results[1][1] == results[2][1] == ''
    assert_fds_match([ranked['fd']], [single['fd']])
    assert (ranked['precision'], ranked['recall'], ranked['n']) == (single['precision'], single['recall'], 13)


def test_fid_interval_and_fd_infinity_by_hand_equal_one_process(metric, tmp_path):
    """1,000 images measured by two ranks: the features gathered to rank 0 give one process's interval and FD-inf."""
    images = tmp_path / 'images.npy'
    np.save(images, np.random.default_rng(2).integers(0, 256, size=(1000, 3, 8, 8), dtype=np.uint8))
    fid = ['fid', '--images', images, '--detector', metric['detector'], '--ref', metric['ref'], '--resamples', 3,
           '--json', '--device', 'cpu', '--threads', 1, '--batch', 64, '--quiet']
    single = json.loads(ok(*fid).stdout)['estimate']
    results = by_hand(2, *fid)
    assert codes(results) == [0, 0], results
    ranked = json.loads(results[0][1])['estimate']
    assert results[1][1] == ''
    assert single['fd_inf'] is not None and single['n'] == 1000
    assert_estimates_match(ranked, single)
    assert_estimates_match(ranked['fd_inf'], single['fd_inf'])


# ---------------------------------------------------------------- faults


def kill_mid_run(args, out, world, victim, message):
    """Starts `world` ranks, SIGKILLs `victim` once the first PNG exists, and checks that every other rank
    exits with 1 and one line containing `message` within the timeout plus 5 s."""
    port = free_port()
    procs = [subprocess.Popen([BIN, *map(str, args), '--dist-timeout', str(TIMEOUT)], env=rank_env(r, world, port),
                              stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) for r in range(world)]
    deadline = time.monotonic() + 60
    while not list(out.glob('*.png')) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert procs[victim].poll() is None, f'rank {victim} finished before it could be killed'
    procs[victim].send_signal(signal.SIGKILL)
    killed = time.monotonic()
    for r in range(world):
        if r == victim:
            continue
        _, err = procs[r].communicate(timeout=TIMEOUT + 30)
        assert time.monotonic() - killed < TIMEOUT + 5, f'rank {r} took {time.monotonic() - killed:.1f} s'
        assert procs[r].returncode == 1, err
        one_line_error(err, message)
    procs[victim].communicate()
    assert not (out / 'manifest.json').exists()


def slow_args(nets, out):
    return ['generate', '--net', nets['main'], '--seeds', '0-11', '--batch', 1, '--steps', 24, '--device', 'cpu',
            '--threads', 1, '--outdir', out]


def test_killed_rank_stops_the_others_and_resume_completes(nets, tmp_path):
    out = tmp_path / 'out'
    args = slow_args(nets, out)
    kill_mid_run(args, out, 3, 1, 'rank 1 stopped responding')
    made_before = {p.name for p in out.glob('*.png')}
    assert 0 < len(made_before) < 12

    results = by_hand(2, *args, '--resume')  # on another world size
    assert codes(results) == [0, 0], results
    assert f'{12 - len(made_before)} images' in results[0][2]
    ok(*args[:-1], tmp_path / 'one', '--quiet')
    pngs = sorted(p.name for p in (tmp_path / 'one').glob('*.png'))
    assert sorted(p.name for p in out.glob('*.png')) == pngs
    for name in pngs:
        assert (out / name).read_bytes() == (tmp_path / 'one' / name).read_bytes(), name
    manifest = json.loads((out / 'manifest.json').read_text())
    assert [r['seed'] for r in manifest['images']] == list(range(12))
    assert sum(bool(r.get('resumed')) for r in manifest['images']) == len(made_before)


def test_killed_rank_zero_takes_the_rendezvous_with_it(nets, tmp_path):
    kill_mid_run(slow_args(nets, tmp_path / 'out'), tmp_path / 'out', 2, 0, 'rank 0 or the launcher has ended')


# ---------------------------------------------------------------- bad input: one line, exit 2, nothing written


@pytest.mark.parametrize('env, message', [
    ({'WORLD_SIZE': '2'}, 'WORLD_SIZE is set but RANK is not'),
    ({'RANK': '2', 'WORLD_SIZE': '2'}, 'RANK=2 is not below WORLD_SIZE=2'),
    ({'OMPI_COMM_WORLD_RANK': '0'}, 'OMPI_COMM_WORLD_SIZE is not'),
], ids=['world-without-rank', 'rank-too-large', 'half-mpi'])
def test_bad_launch_variables(nets, tmp_path, env, message):
    clean = {k: v for k, v in os.environ.items() if not k.startswith(('RANK', 'WORLD_SIZE', 'OMPI', 'SLURM'))}
    r = autoguide(*generate_args(nets, tmp_path / 'out'), env=dict(clean, **env))
    assert r.returncode == 2
    one_line_error(r.stderr, message)
    assert not (tmp_path / 'out').exists()


def test_nobody_listening_on_master_port(nets, tmp_path):
    start = time.monotonic()
    r = autoguide(*generate_args(nets, tmp_path / 'out'), '--dist-timeout', 2, env=rank_env(1, 2, free_port()))
    assert r.returncode == 2 and time.monotonic() - start < 2 + 5
    one_line_error(r.stderr, 'nobody answers at 127.0.0.1')
    assert not (tmp_path / 'out').exists()


def test_ranks_started_with_different_options(nets, tmp_path):
    port = free_port()
    args = ['generate', '--net', nets['main'], '--seeds', SEED_TEXT, '--outdir', tmp_path / 'out', '--threads', 1]
    procs = [subprocess.Popen([BIN, *map(str, args), '--steps', str(4 + r)], env=rank_env(r, 2, port),
                              stderr=subprocess.PIPE, text=True) for r in range(2)]
    for p in procs:
        _, err = p.communicate(timeout=60)
        assert p.returncode == 2
        one_line_error(err, "--steps is '5' on rank 1 but '4' on rank 0")
    assert not (tmp_path / 'out').exists()


def test_output_folder_rank_zero_cannot_see(nets, tmp_path):
    # The same relative --outdir from different working folders: node-local disks.
    cwd = {r: tmp_path / f'node{r}' for r in range(2)}
    for d in cwd.values():
        d.mkdir()
    results = by_hand(2, *generate_args(nets, 'out'), cwd=cwd)
    for code, _, err in results:
        assert code == 2
        one_line_error(err, 'rank 0 cannot see the files rank 1 writes')
    assert files_under(tmp_path) == []
