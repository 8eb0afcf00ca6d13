"""The attack corpus (attack_corpus.py): every hostile input to every converter is refused with exit status 2
and one line naming the problem, runs nothing (no MARKER), writes nothing, within bounded memory and time
(attack_runner.py enforces both); and each payload is real: a stock loader does run it."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

from attack_corpus import ATTACKS
from autoguide_py.edm2_unpickler import EDM2Unpickler, EasyDict, load_edm2_pickle
from autoguide_py.errors import ExportError

HERE = Path(__file__).resolve().parent


@pytest.fixture(scope='module')
def report(tmp_path_factory):
    work = tmp_path_factory.mktemp('attacks')
    r = subprocess.run([sys.executable, str(HERE / 'attack_runner.py'), str(work / 'cases'), str(work / 'report.json')],
                       capture_output=True, text=True, timeout=1800)
    assert r.returncode == 0, r.stderr[-3000:]
    return json.loads((work / 'report.json').read_text())['cases']


def test_the_corpus_covers_every_converter_with_at_least_25_cases():
    assert len(ATTACKS) >= 25 and len({a.name for a in ATTACKS}) == len(ATTACKS)
    assert {a.converter for a in ATTACKS} == {'export_edm2', 'export_vae', 'phema', 'phema_set', 'export_detectors'}


@pytest.mark.parametrize('attack', ATTACKS, ids=lambda a: a.name)
def test_attack_is_refused_without_side_effects(report, attack):
    case = report[attack.name]
    lines = case['stderr'].strip().splitlines()
    assert case['rc'] == 2 and len(lines) == 1 and lines[0].startswith('error: '), case
    assert attack.expect in lines[0], lines[0]
    assert not case['marker'] and 'RAN' not in case['stdout'], case
    assert case['new_files'] == [], case


STOCK = {  # how a stock tool loads each kind of file; P is the file's path
    'pickle': 'import pickle; pickle.load(open(P, "rb"))',
    'torch.load': 'import torch; torch.load(P, weights_only=False)',
    'torch.load-weights-only': 'import torch; torch.load(P, weights_only=True)',
}


@pytest.mark.parametrize('attack', [a for a in ATTACKS if a.stock], ids=lambda a: a.name)
def test_payload_runs_under_a_stock_loader(attack, tmp_path):
    # Proves that the refusals above refuse something real. The stock loader runs in a throwaway process on our
    # own test payload, which at most touches a file in tmp_path.
    marker = tmp_path / 'MARKER'
    path = tmp_path / f'input{attack.suffix}'
    path.write_bytes(attack.make(str(marker)))
    r = subprocess.run([sys.executable, '-c', f'P = {str(path)!r}; {STOCK[attack.stock]}'], cwd=tmp_path,
                       capture_output=True, text=True, timeout=300)
    assert marker.exists() or f'RAN {marker}' in r.stdout, (r.stdout, r.stderr[-2000:])


def test_refused_build_leaves_the_readers_own_classes_and_functions_alone(tmp_path):
    attacks = {a.name: a for a in ATTACKS}
    rebuild_tensor_v2 = EDM2Unpickler.GLOBALS[('torch._utils', '_rebuild_tensor_v2')]
    before = (dict(vars(EasyDict)), rebuild_tensor_v2.__defaults__)
    for name in ('build_on_reader_class', 'build_on_reader_function'):
        path = tmp_path / f'{name}.pkl'
        path.write_bytes(attacks[name].make(str(tmp_path / 'MARKER')))
        with pytest.raises(ExportError, match='BUILD'):
            load_edm2_pickle(str(path))
    assert (dict(vars(EasyDict)), rebuild_tensor_v2.__defaults__) == before
