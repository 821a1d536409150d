"The package's layers import only from below: core <- methods <- engine <- repro <- cli, and core/methods never load pandas."
import ast
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parents[1]/'stpm_repro'
LAYERS = ('core', 'methods', 'engine', 'repro', 'cli') # bottom to top
FORBIDDEN_BELOW_ENGINE = ('pandas',) # third-party packages that core and methods must not import


def layer_of(module:str)->str|None:
    "The layer of an absolute stpm_repro module name, None for the package itself and for other packages"
    parts = module.split('.')
    if parts[0] != 'stpm_repro' or len(parts) < 2: return None
    return parts[1] if parts[1] in LAYERS else None


def imports_of(path:Path)->list:
    "(line, absolute module name) of every import in a module file, those inside functions too"
    package = '.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts[:-1])
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import): found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            parts = package.split('.')[:len(package.split('.')) - node.level + 1] if node.level else []
            base = '.'.join(parts + ([node.module] if node.module else []))
            found += [(node.lineno, base)] if node.module else [(node.lineno, f'{base}.{alias.name}') for alias in node.names]
    return found


def violations(path:Path)->list:
    "'file:line imports X' for each import of `path` that reaches above its layer (or pandas below the engine)"
    own = LAYERS.index(layer_of('.'.join(path.relative_to(PACKAGE.parent).with_suffix('').parts)) or 'cli')
    bad = []
    for line, module in imports_of(path):
        target = layer_of(module)
        above = target is not None and LAYERS.index(target) > own
        heavy = own < LAYERS.index('engine') and module.split('.')[0] in FORBIDDEN_BELOW_ENGINE
        if above or heavy: bad.append(f"{path.relative_to(PACKAGE.parent)}:{line} imports {module}")
    return bad


def test_imports_are_resolved(tmp_path):
    pkg = tmp_path/'stpm_repro'/'methods'; pkg.mkdir(parents=True)
    sample = pkg/'x.py'
    sample.write_text("from ..engine.train import TrainConfig\nfrom .model import STPM\nfrom .. import cli\n"
                      "def f():\n    import pandas as pd\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path/'stpm_repro'
    try: found = imports_of(sample)
    finally: PACKAGE = saved
    assert found == [(1, 'stpm_repro.engine.train'), (2, 'stpm_repro.methods.model'), (3, 'stpm_repro.cli'), (5, 'pandas')]


def test_the_check_can_fail(tmp_path):
    pkg = tmp_path/'stpm_repro'/'core'; pkg.mkdir(parents=True)
    (pkg/'x.py').write_text("import torch\nfrom ..repro.tables import paper_results\n\ndef f():\n    import pandas\n")
    global PACKAGE
    saved, PACKAGE = PACKAGE, tmp_path/'stpm_repro'
    try: found = violations(pkg/'x.py')
    finally: PACKAGE = saved
    assert found == ['stpm_repro/core/x.py:2 imports stpm_repro.repro.tables', 'stpm_repro/core/x.py:5 imports pandas']


@pytest.mark.parametrize('layer', LAYERS[:-1])
def test_each_layer_imports_only_from_below(layer):
    files = sorted((PACKAGE/layer).glob('*.py'))
    assert files, f"no modules in stpm_repro/{layer}"
    bad = [v for f in files for v in violations(f)]
    assert not bad, 'imports that reach above their layer:\n' + '\n'.join(bad)
