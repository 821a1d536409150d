"The shipped paper_results.csv against the papers' own cells (shared/papers/paper_tables.csv), and the rendered table shapes"
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from stpm_repro.core.data import local_mvtec_root
from stpm_repro.repro.tables import (HYPERPARAMETERS, ROMAN_TABLES, TABLE_CATEGORIES, compare_table, paper_results,
                               paper_table)

KEY = ['paper', 'table', 'paper_row', 'category', 'metric']


@pytest.fixture(scope='module')
def paper_tables():
    "`shared/papers/paper_tables.csv` (beside the checkout, or beside `$MVTEC_AD_ROOT`'s data) as text; skips when absent"
    data = local_mvtec_root()
    here = Path(__file__).resolve()
    candidates = ([data.parent/'papers'] if data else []) + [p/'shared'/'papers' for p in [Path.cwd(), *here.parents]]
    found = next((p/'paper_tables.csv' for p in candidates if (p/'paper_tables.csv').is_file()), None)
    if found is None: pytest.skip('shared/papers/paper_tables.csv not found beside the checkout: the papers are not available here')
    cells = pd.read_csv(found, dtype=str, keep_default_na=False)
    return cells.assign(table=cells.table.map(lambda t: ROMAN_TABLES.get(t, t)))


@pytest.fixture(scope='module')
def shipped():
    return paper_results()


def test_every_printed_cell_is_shipped(paper_tables, shipped):
    merged = paper_tables.merge(shipped, left_on=['paper', 'table', 'row', 'category', 'metric'], right_on=KEY,
                                how='left', suffixes=('_paper', ''), indicator=True)
    missing = merged[merged._merge != 'both']
    assert missing.empty, f"paper cells missing from paper_results.csv: {missing[KEY[:2] + ['row_paper', 'category', 'metric']].values.tolist()[:5]}"
    assert len(shipped) == len(paper_tables) # and nothing else
    assert (merged.printed == merged.value_paper).all() # exactly as printed, trailing zeros kept
    assert (merged.column == merged.column_paper).all()


def test_values_are_the_printed_numbers(paper_tables, shipped):
    merged = paper_tables.merge(shipped, left_on=['paper', 'table', 'row', 'category', 'metric'], right_on=KEY, suffixes=('_paper', ''))
    numeric = ~merged.metric.eq('optimizer')
    printed = merged.value_paper[numeric].astype(float)
    percent = merged.unit_paper[numeric].eq('percent')
    assert percent.sum() == 7 # DCAM Table 2
    np.testing.assert_allclose(merged.value[numeric][percent], printed[percent]/100, rtol=0, atol=1e-12)
    np.testing.assert_allclose(merged.value[numeric][~percent], printed[~percent], rtol=0, atol=1e-12)
    assert merged.value[~numeric].isna().all()


def test_sources_name_the_paper_and_column(shipped):
    assert shipped.source.str.contains(' Table ').all()
    assert all(f"'{column}'" in source for column, source in zip(shipped.column, shipped.source))


def _printed_shape(paper, table, our_rows):
    "(lines, columns) a whole table must have: from the data file alone"
    cells = paper_results(paper, table)
    quoted = cells[~cells.row.isin(our_rows)].groupby('row').metric.nunique().sum()
    ours = sum(cells[cells.row == r].metric.nunique() for r in our_rows)
    per_category = cells.category.ne('mean').any()
    lines = cells.category.nunique() if per_category else cells.row.nunique()
    return lines, (1 + quoted + 5*ours + 1) if per_category else None


@pytest.mark.parametrize('paper, table, our_rows', [('stpm', 1, ['stpm_resnet18']), ('rstpm', 1, ['stpm', 'rstpm']),
                                                    ('et_stpm', 3, ['stpm_resnet18', 'et_stpm']), ('dcam', 1, ['stpm_multiclass', 'dcam'])])
def test_per_category_tables_show_every_printed_row(paper, table, our_rows):
    empty = pd.DataFrame(columns=['category'])
    shown = paper_table(compare_table(paper, table, empty), ours_rows=our_rows)
    lines, columns = _printed_shape(paper, table, our_rows)
    assert list(shown.category) == list(TABLE_CATEGORIES) + ['mean'] and len(shown) == lines == 16
    assert shown.shape[1] == columns
    assert {c.split(' ')[0] for c in shown.columns[1:-1]} == set(paper_results(paper, table).row)


def test_stpm_table1_is_nine_methods_by_fifteen_categories_and_mean():
    shown = paper_table(compare_table('stpm', 1, pd.DataFrame(columns=['category'])), ours_rows=['stpm_resnet18'])
    assert shown.shape[0] == 15 + 1
    assert len({c.split(' ')[0] for c in shown.columns[1:-1]}) == 9


@pytest.mark.parametrize('paper, table', [('stpm', t) for t in (2, 3, 4, 5)] + [('rstpm', t) for t in (2, 3, 4, 5)]
                         + [('et_stpm', 2)] + [('dcam', t) for t in (2, 3, 4, 5, 6)])
def test_tables_of_means_show_every_printed_row(paper, table):
    shown = paper_table(compare_table(paper, table, pd.DataFrame(columns=['category'])))
    cells = paper_results(paper, table)
    assert list(shown.row) == list(dict.fromkeys(cells.row))
    assert shown.shape[1] == 1 + cells.metric.nunique() + 1
    values = shown.set_index('row')
    for cell in cells.itertuples():
        column = next(c for c in shown.columns if c.endswith(' paper') and values[c].get(cell.row) == cell.value)
        assert column


def test_ours_beside_the_paper_with_seeds_and_difference():
    ours = pd.DataFrame({'method': 'stpm', 'category': ['bottle', 'bottle'], 'teacher': 'resnet18', 'seed': [0, 1],
                         'pixel_auroc': [0.97, 0.99], 'pro': [0.9, 0.92], 'pro_official_code': [0.8, np.nan]})
    shown = paper_table(compare_table('stpm', 1, ours)).set_index('category')
    bottle = shown.loc['bottle']
    assert bottle['stpm_resnet18 pixel AUROC paper'] == 0.988
    assert bottle['stpm_resnet18 pixel AUROC n'] == 2
    assert abs(bottle['stpm_resnet18 pixel AUROC diff'] - (0.98 - 0.988)) < 1e-12
    assert bottle['stpm_resnet18 PRO (official code) paper'] == 0.951 # beside the paper's PRO
    assert bottle['stpm_resnet18 PRO (official code) n'] == 1
    assert shown.loc['grid', 'stpm_resnet18 PRO (official code) n'] == 0


def test_hyperparameters_are_shipped_as_printed(shipped):
    settings = shipped[shipped.metric.isin(HYPERPARAMETERS)]
    assert dict(zip(settings.metric, settings.printed))['optimizer'] == 'SGD'
    assert settings.category.eq('').all()


def test_earlier_public_quotes_are_kept(shipped):
    "The 20 cells known from public pages before the papers could be read keep that source beside the paper's"
    quoted = shipped[shipped.source.str.contains('; also ')]
    assert len(quoted) == 20
    assert set(zip(quoted.paper, quoted.table)) == {('stpm', '1'), ('stpm', '2'), ('et_stpm', '2'), ('et_stpm', '3'), ('dcam', '1')}
