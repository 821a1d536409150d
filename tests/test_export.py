"The library is exactly what the notebooks export."
import shutil, subprocess, sys
from pathlib import Path

from conftest import REPO


def test_library_equals_notebook_export(tmp_path):
    for name in ('settings.ini', 'setup.py', 'README.md'): shutil.copy(REPO/name, tmp_path/name)
    shutil.copytree(REPO/'nbs', tmp_path/'nbs')
    (tmp_path/'stpm_repro').mkdir()
    shutil.copy(REPO/'stpm_repro'/'__init__.py', tmp_path/'stpm_repro'/'__init__.py')
    exporter = Path(sys.executable).parent/'nbdev_export'
    subprocess.run([str(exporter)], cwd=tmp_path, check=True, capture_output=True)
    ours = {p.name: p.read_text() for p in (REPO/'stpm_repro').glob('*.py')}
    exported = {p.name: p.read_text() for p in (tmp_path/'stpm_repro').glob('*.py')}
    assert sorted(ours) == sorted(exported), 'modules differ: run nbdev_export and commit'
    stale = [name for name in ours if ours[name] != exported[name]]
    assert not stale, f'{stale} differ from the notebooks: run nbdev_export and commit'
