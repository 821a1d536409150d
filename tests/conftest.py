import os
from pathlib import Path

import pytest

from stpm_repro.core.data import local_mvtec_root

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope='session')
def mvtec_root():
    "The real MVTec AD root ($MVTEC_AD_ROOT or a `shared/mvtec_ad` beside the checkout); skips when absent"
    root = local_mvtec_root()
    if root is None or not (root/'bottle').exists():
        pytest.skip('real MVTec AD data not found: set MVTEC_AD_ROOT to a folder holding bottle/')
    return root


@pytest.fixture
def cli_env(tmp_path):
    "Environment for subprocess runs: a private decode cache, quiet threads"
    return {**os.environ, 'STPM_REPRO_CACHE': str(tmp_path/'cache'), 'PYTHONUNBUFFERED': '1'}
