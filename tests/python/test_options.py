"""The option registry: each subcommand's --help lists exactly the options the table gives it, the README's
table is the tool's, bounds are refused at parse time in the library's words, and the library names fields,
never flags."""
import json
import re
from pathlib import Path

import pytest

from cli import autoguide, ok, requires_bin

pytestmark = requires_bin
ROOT = Path(__file__).resolve().parents[2]
SUBCOMMANDS = ['generate', 'sweep', 'compare', 'ref', 'fid', 'info', 'presets', 'options']


def table():
    return json.loads(ok('options', '--json').stdout)


def help_flags(command):
    """Every long or short flag that --help lists as an option (lines that start with one)."""
    flags = set()
    for line in ok(command, '--help').stdout.splitlines():
        m = re.match(r'\s+((?:-{1,2}[\w-]+,?)+)', line)
        if m:
            flags.update(f for f in m.group(1).split(',') if f)
    return flags


@pytest.mark.parametrize('command', SUBCOMMANDS)
def test_help_lists_exactly_the_options_the_table_gives_the_subcommand(command):
    expected = {'-h', '--help'}
    for o in table():
        if command in o['commands']:
            expected |= {o['name'], *o['aliases']}
    assert help_flags(command) == expected
    assert 'Examples:' in ok(command, '--help').stdout


def test_every_option_is_declared_once_and_grouped():
    names = [n for o in table() for n in [o['name'], *o['aliases']]]
    assert len(names) == len(set(names))
    assert all(o['group'] and o['help'] and o['commands'] for o in table())
    # The same name means the same thing everywhere: one entry, whatever subcommands take it.
    by_name = {o['name']: o for o in table()}
    assert set(by_name['--gnet']['commands']) == {'generate', 'sweep', 'compare', 'tune'}
    assert '--outdir' in by_name['--out']['aliases']
    assert by_name['--steps']['field'] == 'num_steps' and by_name['--models']['env'] == 'AUTOGUIDE_MODELS'


def test_readme_table_is_the_tools():
    readme = (ROOT / 'README.md').read_text()
    section = readme.split('<!-- options:begin -->\n')[1].split('<!-- options:end -->')[0]
    assert section == ok('options', '--markdown').stdout


def test_help_shows_live_defaults_and_bounds_from_the_library():
    text = ok('generate', '--help').stdout
    assert re.search(r'--steps INT>=2=32', text) and re.search(r'--seeds LIST=16-19', text)
    assert re.search(r'--batch INT>=1=64', ok('fid', '--help').stdout)  # fid's own default, same option


@pytest.mark.parametrize('command', ['generate', 'sweep', 'compare'])
def test_steps_1_is_refused_at_parse_time_in_the_librarys_words(command, tmp_path):
    missing = tmp_path / 'never-opened.pt'
    r = autoguide(command, '--net', missing, '--gnet', missing, '--ag' if command == 'compare' else '--guidance',
                  2, '--steps', 1, '--out', tmp_path / 'o')
    assert r.returncode == 2
    assert r.stderr == 'autoguide: error: --steps must be at least 2 (got 1)\n'
    assert list(tmp_path.iterdir()) == []


def test_library_errors_are_said_with_the_flags(nets, tmp_path):
    # The library refuses interval_steps beyond num_steps; the user reads the flags they typed.
    r = autoguide('generate', '--net', nets['main'], '--gnet', nets['guide'], '--guidance', 2, '--steps', 3,
                  '--interval-steps', '2,5', '--seeds', 0, '--out', tmp_path / 'o')
    assert r.returncode == 2
    assert r.stderr == 'autoguide: error: --interval-steps 2,5 lies outside the steps 0-2 of --steps 3\n'
    r = autoguide('generate', '--net', nets['main'], '--guidance', 2, '--seeds', 0, '--out', tmp_path / 'o')
    assert r.stderr == 'autoguide: error: --guidance 2 needs a guiding net: give --gnet\n'


def test_uncond_alone_is_cfg_as_gnet_is(nets, tmp_path):
    common = ['--net', nets['main'], '--guidance', 1.5, '--seeds', '0-1', '--steps', 4, '--quiet']
    ok('generate', *common, '--uncond', nets['uncond'], '--out', tmp_path / 'u')
    ok('generate', *common, '--gnet', nets['uncond'], '--outdir', tmp_path / 'g')
    for name in ('000000.png', '000001.png'):
        assert (tmp_path / 'u' / name).read_bytes() == (tmp_path / 'g' / name).read_bytes()


def test_lists_refuse_an_empty_item(nets, tmp_path):
    r = autoguide('sweep', '--net', nets['main'], '--gnet', f"{nets['guide']},", '--out', tmp_path / 's')
    assert r.returncode == 2 and 'has an empty item' in r.stderr and not (tmp_path / 's').exists()


def test_no_flag_is_named_outside_the_cli():
    """The library speaks its own fields: no string literal in src/ or include/ outside src/cli names a flag."""
    offenders = []
    files = [*ROOT.glob('src/*.cpp'), *ROOT.glob('src/*.hpp'), *ROOT.glob('include/autoguide/*.hpp')]
    for f in files:
        for n, line in enumerate(f.read_text().splitlines(), 1):
            code = line.split('//')[0]
            for literal in re.findall(r'"((?:[^"\\]|\\.)*)"', code):
                if re.search(r'(^|[\s(\'])--[a-z]', literal):
                    offenders.append(f'{f.relative_to(ROOT)}:{n}: {literal}')
    assert offenders == []
