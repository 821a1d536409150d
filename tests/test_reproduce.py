"A `reproduce` process killed with SIGKILL mid-table completes on restart without redoing finished runs."
import json, os, signal, subprocess, sys, time

import pandas as pd

from stpm_repro.core.synthetic import make_synthetic_category

CATEGORIES = ['synthetic_dots', 'synthetic_grid']
SEEDS = (0, 1)
EPOCHS = 3


def reproduce_cmd(data, store):
    "A small STPM Table 2 (2 categories x 2 seeds) through `reproduce`, in a fresh interpreter"
    code = ("from stpm_repro.repro.experiments import reproduce\nfrom stpm_repro.engine.train import SpeedOptions\n"
            f"reproduce('stpm', 2, {str(data)!r}, {str(store)!r}, categories={CATEGORIES!r}, epochs={EPOCHS}, "
            f"seeds={SEEDS!r}, image_size=64, teacher='efficientnet_lite0', device='cpu', batch_size=8, progress=False, "
            "speed=SpeedOptions(checkpoint_seconds=0))")  # a checkpoint every epoch: the kill lands between two
    return [sys.executable, '-c', code]


def finished(store): return sorted(p.stem for p in (store/'records').glob('*.json'))


def started_unfinished(store):
    "Runs that have saved an epoch (last.pt) but have no record"
    done = set(finished(store))
    return [d.name for d in (store/'runs').glob('*') if (d/'last.pt').exists() and d.name not in done]


def test_killed_reproduction_completes_without_recomputing(tmp_path, cli_env):
    for category in CATEGORIES:
        make_synthetic_category(tmp_path/'data', category, n_train=12, n_test_good=4, n_test_defect=4, image_size=64)
    cli_env['OMP_NUM_THREADS'] = '1'
    store = tmp_path/'store'
    log = open(tmp_path/'first.log', 'w')
    proc = subprocess.Popen(reproduce_cmd(tmp_path/'data', store), env=cli_env, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.time() + 90
    while time.time() < deadline and proc.poll() is None:
        if finished(store) and started_unfinished(store): break
        time.sleep(0.02)
    assert proc.poll() is None, f"reproduce ended before it could be killed:\n{(tmp_path/'first.log').read_text()}"
    os.kill(proc.pid, signal.SIGKILL); proc.wait(); log.close()

    done_before, interrupted = finished(store), started_unfinished(store)
    assert len(done_before) >= 1 and len(interrupted) == 1, (done_before, interrupted)
    stamps = {rid: ((store/'records'/f'{rid}.json').stat().st_mtime_ns,
                    (store/'runs'/rid/'metrics.json').stat().st_mtime_ns) for rid in done_before}

    subprocess.run(reproduce_cmd(tmp_path/'data', store), env=cli_env, check=True, capture_output=True)

    records = [json.loads((store/'records'/f'{rid}.json').read_text()) for rid in finished(store)]
    assert sorted((r['config']['category'], r['config']['seed']) for r in records) == \
           sorted((c, s) for c in CATEGORIES for s in SEEDS)  # every run of the grid, exactly once
    assert sorted(p.name for p in (store/'runs').iterdir()) == finished(store)  # no stray run folders
    for rid, stamp in stamps.items():  # finished runs were not recomputed
        assert ((store/'records'/f'{rid}.json').stat().st_mtime_ns,
                (store/'runs'/rid/'metrics.json').stat().st_mtime_ns) == stamp, rid
    resumed = json.loads((store/'runs'/interrupted[0]/'train.json').read_text())
    assert [h['epoch'] for h in resumed['history']] == list(range(1, EPOCHS + 1))
    assert not (store/'runs'/interrupted[0]/'last.pt').exists()
    results = pd.read_csv(store/'results.csv')
    assert len(results) == len(CATEGORIES)*len(SEEDS) and results.run_id.is_unique
    assert set(results.run_id) == set(finished(store))
