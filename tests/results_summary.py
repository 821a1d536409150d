"""The README's 'Results so far' table, computed from the results stores committed beside the reproduction notebooks.

`python tests/results_summary.py` prints it; `tests/test_results_store.py` fails when the README's copy differs."""
from pathlib import Path

import pandas as pd

from stpm_repro.repro.experiments import ResultStore
from stpm_repro.repro.reproduced_tables import one_category_table
from stpm_repro.repro.tables import to_markdown

RESULTS = Path(__file__).resolve().parents[1]/'nbs'/'repro'/'results'
HEADLINES = ( # method, notebook, store, the tables of its headline runs, what selects those runs, the reading of its tables
    ('STPM', 'repro/stpm', 'stpm', (1, 2), {'method': 'stpm', 'levels': (2, 3, 4), 'train_fraction': 1.0, 'image_size': 256, 'epochs': 100},
     {'teacher': 'efficientnet_lite0', 'wide_teacher': None}),
    ('RSTPM', 'repro/rstpm', 'rstpm', (1, 2), {'image_size': 96, 'epochs': 10}, # rows outside Tables 1 and 2 are left out by the reading
     {'teacher': 'efficientnet_lite0', 'second_teacher': 'efficientnet_lite2'}),
    ('DCAM', 'repro/dcam', 'dcam', (1,), {'image_size': 96, 'epochs': 10}, {'teacher': 'efficientnet_lite0'}),
)
NOT_RUN = (('ET-STPM', 'repro/et_stpm'),) # no committed bottle runs yet


COLUMNS = ['method', 'row', 'table', 'metric', 'paper bottle', 'paper 15-category mean', 'ours bottle', '±', 'seeds', 'set-up', 'notebook']

def headline_records(store:str, selection:dict)->pd.DataFrame:
    "The committed bottle records of a headline run (every seed of it)"
    records = ResultStore(RESULTS/store).records()
    if records.empty: return records
    chosen = records.category == 'bottle'
    for field, value in selection.items(): chosen &= records[field].map(lambda v: v == value)
    return records[chosen]


def summary()->str:
    "The Markdown table: per method, bottle, the paper beside ours, and where the numbers come from"
    rows = []
    for method, notebook, store, tables, selection, reading in HEADLINES:
        records = headline_records(store, selection)
        if records.empty:
            rows.append({'method': method, 'notebook': f'`nbs/{notebook}.ipynb`', 'set-up': 'no committed bottle run yet'})
            continue
        for table in tables:
            for line in one_category_table(store, table, records, **reading).to_dict('records'):
                rows.append({'method': method, 'row': line['row'], 'table': str(table), 'metric': line['metric'], 'paper bottle': line['paper bottle'],
                             'paper 15-category mean': line['paper mean'], 'ours bottle': line['ours'], '±': line['±'], 'seeds': str(line['n']),
                             'set-up': f"{' + '.join(t for k, t in reading.items() if 'teacher' in k and t)}, "
                                       f"{selection['image_size']} px, {selection['epochs']} epochs, CPU",
                             'notebook': f'`nbs/{notebook}.ipynb`'})
    rows += [{'method': m, 'notebook': f'`nbs/{n}.ipynb`', 'set-up': 'no committed bottle run yet'} for m, n in NOT_RUN]
    return to_markdown(pd.DataFrame(rows, columns=COLUMNS))


if __name__ == '__main__': print(summary())
