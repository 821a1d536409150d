"The committed outputs of the deterministic notebook cells (marked `# NBVAL_CHECK_OUTPUT`) are what the code gives today"
import json, re, subprocess, sys
from pathlib import Path

import pytest

NBS = Path(__file__).parents[1]/'nbs'
CHECKED_NOTEBOOKS = ('00b_download', '00c_io', '02_losses', '03a_cbam', '05_fusion', '06_metrics', '07b_dcam', '07d_et_stpm', '07e_teachers', '11c_et_stpm_paper', '16_api') # notebooks whose marked cells nbval re-runs and compares
MARK = '# NBVAL_CHECK_OUTPUT'


def runnable_copy(name:str, folder:Path, change=None)->Path:
    """`nbs/<name>.ipynb` in `folder` without its export cell (as `nbdev_test` skips it), with the execution counts
    that `nbdev_clean` strips (nbval needs them to compare a cell)"""
    nb = json.loads((NBS/f'{name}.ipynb').read_text())
    nb['cells'] = [cell for cell in nb['cells'] if 'nbdev_export(' not in ''.join(cell['source'])]
    code = [cell for cell in nb['cells'] if cell['cell_type'] == 'code']
    for count, cell in enumerate(code, 1): cell['execution_count'] = count
    if change: change(code)
    copy = folder/f'{name}.ipynb'
    copy.write_text(json.dumps(nb))
    return copy


def nbval(notebook:Path)->subprocess.CompletedProcess:
    return subprocess.run([sys.executable, '-m', 'pytest', '-q', '--nbval-lax', '-p', 'no:cacheprovider', notebook.name],
                          cwd=notebook.parent, capture_output=True, text=True)


def marked(code:list)->list: return [cell for cell in code if ''.join(cell['source']).startswith(MARK)]


@pytest.mark.parametrize('name', CHECKED_NOTEBOOKS)
def test_marked_cells_have_committed_outputs(name):
    code = [c for c in json.loads((NBS/f'{name}.ipynb').read_text())['cells'] if c['cell_type'] == 'code']
    assert marked(code), f"{name} has no cell marked {MARK}"
    assert all(any(o.get('output_type') == 'stream' for o in c['outputs']) for c in marked(code)), \
        f"a marked cell of {name} has no printed output committed: run tests/execute_notebooks.py on it"


@pytest.mark.parametrize('name', CHECKED_NOTEBOOKS)
def test_marked_outputs_are_reproduced(name, tmp_path):
    result = nbval(runnable_copy(name, tmp_path))
    assert result.returncode == 0, result.stdout[-4000:]


def test_a_changed_number_fails(tmp_path):
    def change_a_digit(code):
        stream = next(o for o in marked(code)[0]['outputs'] if o.get('output_type') == 'stream')
        text = ''.join(stream['text'])
        stream['text'] = re.sub(r'\d(?=\D*$)', lambda m: str((int(m.group()) + 1) % 10), text, count=1)
        assert stream['text'] != text
    result = nbval(runnable_copy('02_losses', tmp_path, change_a_digit))
    assert result.returncode != 0 and 'mismatch' in result.stdout.lower(), result.stdout[-2000:]
