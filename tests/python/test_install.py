"""`cmake --install`, `--version` and where presets come from: the installed binary finds its own presets from
any working directory, a ./configs there never overrides them, $AUTOGUIDE_CONFIGS does, and find_package
gives the library target."""
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from cli import BIN, requires_bin

ROOT = Path(__file__).resolve().parents[2]
BUILD = Path(BIN).resolve().parent
SHIPPED = sorted(p for f in (ROOT / 'configs').glob('*.json') for p in __import__('json').loads(f.read_text())['presets'])

pytestmark = requires_bin


def run(binary, *args, cwd=None, configs=None):
    env = {k: v for k, v in os.environ.items() if k != 'AUTOGUIDE_CONFIGS'}
    if configs is not None:
        env['AUTOGUIDE_CONFIGS'] = str(configs)
    r = subprocess.run([str(binary), *map(str, args)], capture_output=True, text=True, timeout=120, cwd=cwd, env=env)
    assert r.returncode == 0, r.stderr
    return r.stdout


def listed(stdout):
    return sorted(line.split()[0] for line in stdout.splitlines() if line.strip())


def decoy(folder):
    """A folder with a ./configs of its own, which must not change what the binary finds."""
    (folder / 'configs').mkdir(parents=True)
    (folder / 'configs' / 'decoy.json').write_text('{"presets": {"decoy": {"net": "decoy.pt", "guidance": 2}}}')
    return folder


@pytest.fixture(scope='module')
def installed(tmp_path_factory):
    if not (BUILD / 'CMakeCache.txt').exists():
        pytest.skip(f'{BUILD} is not a CMake build folder')
    prefix = tmp_path_factory.mktemp('prefix')
    r = subprocess.run(['cmake', '--install', str(BUILD), '--prefix', str(prefix)], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    return prefix


def test_install_layout(installed):
    assert os.access(installed / 'bin' / 'autoguide', os.X_OK)
    assert sorted(p.name for p in (installed / 'share' / 'autoguide' / 'configs').iterdir()) == sorted(
        p.name for p in (ROOT / 'configs').glob('*.json'))
    headers = {p.name for p in (installed / 'include' / 'autoguide').iterdir()}
    assert {'model.hpp', 'decoder.hpp', 'generate.hpp', 'preset.hpp', 'version.hpp', 'error.hpp'} <= headers
    assert not headers & {'crc32.hpp', 'sha256.hpp', 'text.hpp', 'json_input.hpp', 'atomic_file.hpp', 'pixels.hpp'}
    # Every public header is self-contained within the installed ones: its own includes are installed too.
    for h in (installed / 'include' / 'autoguide').iterdir():
        for inc in re.findall(r'#include "([^"]+)"', h.read_text()):
            assert (installed / 'include' / inc).exists(), f'{h.name} includes {inc}, which is not installed'
    assert list(installed.glob('lib*/cmake/autoguide/autoguideConfig.cmake'))
    assert list(installed.glob('lib*/libautoguide.a'))


def test_installed_binary_finds_its_presets_from_anywhere(installed, tmp_path):
    exe = installed / 'bin' / 'autoguide'
    for cwd in ('/', decoy(tmp_path / 'work')):
        assert listed(run(exe, 'presets', cwd=cwd)) == SHIPPED
    # A copy of the installed tree elsewhere (relocated) still finds its presets: nothing is baked in.
    moved = tmp_path / 'moved'
    shutil.copytree(installed, moved, symlinks=True)
    assert listed(run(moved / 'bin' / 'autoguide', 'presets', cwd=tmp_path / 'work')) == SHIPPED


def test_build_tree_binary_ignores_the_working_directory(tmp_path):
    assert listed(run(BIN, 'presets', cwd=decoy(tmp_path))) == SHIPPED


def test_autoguide_configs_overrides(tmp_path):
    mine = tmp_path / 'mine'
    mine.mkdir()
    (mine / 'a.json').write_text('{"presets": {"only-mine": {"net": "x.pt", "guidance": 1.5}}}')
    assert listed(run(BIN, 'presets', cwd=decoy(tmp_path / 'work'), configs=mine)) == ['only-mine']


def test_find_package_gives_the_library_target(installed, tmp_path):
    src = tmp_path / 'consumer'
    src.mkdir()
    (src / 'CMakeLists.txt').write_text(
        'cmake_minimum_required(VERSION 3.18)\nproject(consumer CXX)\nfind_package(autoguide 0.1 REQUIRED)\n'
        'if(NOT TARGET autoguide::autoguide)\n  message(FATAL_ERROR "no autoguide::autoguide")\nendif()\n'
        'get_target_property(inc autoguide::autoguide INTERFACE_INCLUDE_DIRECTORIES)\n'
        'message(STATUS "autoguide includes: ${inc}")\n')
    r = subprocess.run(['cmake', '-S', str(src), '-B', str(tmp_path / 'b'), f'-DCMAKE_PREFIX_PATH={installed}'],
                       capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert f'autoguide includes: {installed}/include' in r.stdout


def test_version_names_commit_libtorch_and_cuda():
    out = run(BIN, '--version')
    lines = out.splitlines()
    assert re.fullmatch(r'autoguide \d+\.\d+\.\d+', lines[0])
    commit = re.fullmatch(r'commit (\S+)', lines[1]).group(1)
    if commit != 'unknown':
        # git describe --always --dirty: a commit of this repository, perhaps marked dirty.
        sha = re.fullmatch(r'(?:.*-g)?([0-9a-f]{7,40})(-dirty)?', commit).group(1)
        r = subprocess.run(['git', '-C', str(ROOT), 'cat-file', '-e', sha + '^{commit}'], capture_output=True)
        assert r.returncode == 0, f'{sha} is not a commit of {ROOT}'
    assert re.fullmatch(r'LibTorch \d+\.\d+\.\d+', lines[2])  # TORCH_VERSION of the headers built against
    assert lines[3] == 'CUDA not available' or re.fullmatch(r'CUDA available \(\d+ devices?\)', lines[3])
    assert len(lines) == 4
