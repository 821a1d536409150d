"A training process killed mid-run resumes where it stopped and ends with the uninterrupted run's numbers."
import json, os, signal, subprocess, sys, time

from pathlib import Path

import pytest
import torch

from stpm_repro.core.synthetic import make_synthetic_category

STPM_REPRO = str(Path(sys.executable).parent/'stpm-repro')
TRAIN = ['train', '--category', 'synthetic_tiles', '--teacher', 'efficientnet_lite0',
         '--epochs', '6', '--batch-size', '8', '--image-size', '64', '--device', 'cpu', '--quiet',
         '--checkpoint-seconds', '0']  # a checkpoint every epoch, so that the kill lands between two of them


def train_cmd(data, out): return [STPM_REPRO, *TRAIN, '--data-root', str(data), '--out', str(out)]


def test_killed_training_resumes(tmp_path, cli_env):
    make_synthetic_category(tmp_path/'data', 'synthetic_tiles', n_train=20, n_test_good=4, n_test_defect=4, image_size=64)
    cli_env['OMP_NUM_THREADS'] = '1'
    subprocess.run(train_cmd(tmp_path/'data', tmp_path/'whole'), env=cli_env, check=True, capture_output=True)

    proc = subprocess.Popen(train_cmd(tmp_path/'data', tmp_path/'killed'), env=cli_env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    last = tmp_path/'killed'/'last.pt'
    deadline = time.time() + 120
    while time.time() < deadline and proc.poll() is None:
        if last.exists() and torch.load(last, weights_only=False)['state']['epoch'] >= 2: break
        time.sleep(0.2)
    assert proc.poll() is None, 'training finished before it could be killed: make the run longer'
    os.kill(proc.pid, signal.SIGKILL); proc.wait()
    stopped = torch.load(last, weights_only=False)['state']
    assert 2 <= stopped['epoch'] < 6 and not (tmp_path/'killed'/'train.json').exists()

    subprocess.run(train_cmd(tmp_path/'data', tmp_path/'killed'), env=cli_env, check=True, capture_output=True)
    whole, resumed = (json.loads((tmp_path/d/'train.json').read_text()) for d in ('whole', 'killed'))
    assert [h['epoch'] for h in resumed['history']] == list(range(1, 7))
    assert resumed['history'] == whole['history']
    # train_seconds adds up both processes' epochs; train_seconds_this_process only the resuming one's
    assert resumed['train_seconds'] == pytest.approx(stopped['train_seconds'] + resumed['train_seconds_this_process'], rel=1e-9)
    assert json.loads((tmp_path/'killed'/'metrics.json').read_text())['image_auroc'] == \
           json.loads((tmp_path/'whole'/'metrics.json').read_text())['image_auroc']
