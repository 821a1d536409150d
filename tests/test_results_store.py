"The results stores committed beside the reproduction notebooks: whole records, traceable to their configs, nothing heavy"
import json, re, subprocess
from pathlib import Path

import pytest

from results_summary import RESULTS, summary
from stpm_repro.engine.train import TrainConfig
from stpm_repro.repro.experiments import ResultStore, run_id

REPO = Path(__file__).resolve().parents[1]
STORES = sorted(p.parent for p in RESULTS.glob('*/records'))
RECORDS = [p for store in STORES for p in sorted((store/'records').glob('*.json'))]


def test_there_are_committed_records():
    assert RECORDS, f'no committed records under {RESULTS}'


@pytest.mark.parametrize('path', RECORDS, ids=lambda p: p.stem)
def test_record_is_whole_and_named_by_its_config(path):
    record = json.loads(path.read_text())
    config = TrainConfig.from_dict(record['config'], str(path))
    assert record['run_id'] == path.stem == run_id(config)  # the name is the hash of what was run
    assert re.fullmatch('[0-9a-f]{40}', record['git_commit'] or ''), 'a committed record names the commit it ran'
    assert record['wall_seconds'] > 0 and record['device'] and record['finished_at']
    assert config.precision in ('fp32', 'bf16') and isinstance(config.seed, int)
    for metric in ('image_auroc', 'pixel_auroc', 'pro'): assert 0 <= record['metrics'][metric] <= 1


@pytest.mark.parametrize('store', STORES, ids=lambda p: p.name)
def test_results_csv_lists_the_records(store):
    import pandas as pd
    assert sorted(pd.read_csv(store/'results.csv').run_id) == ResultStore(store).run_ids()


def test_no_checkpoint_or_image_is_committed():
    tracked = subprocess.run(['git', 'ls-files', str(RESULTS.relative_to(REPO))], cwd=REPO, capture_output=True, text=True).stdout.split()
    if not tracked: pytest.skip('not a git checkout with committed stores')
    heavy = [f for f in tracked if not re.search(r'/(records/[^/]+\.json|results\.csv|rescored_table3\.csv)$', f)]
    assert not heavy, f'only records, results.csv and re-scorings of recorded runs belong in a committed store: {heavy}'


def test_readme_results_table_is_computed_from_the_records():
    readme = (REPO/'README.md').read_text()
    assert summary() in readme, 'README.md "Results so far" differs from the committed records: paste `python tests/results_summary.py`'
