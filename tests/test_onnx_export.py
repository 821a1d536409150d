"""Trained runs of every method leave Python: their ONNX and TorchScript graphs give the Python path's maps and scores,
and a fresh interpreter loads and scores them with `load_run` alone; SPADE says why it cannot be exported."""
import json, subprocess, sys

import numpy as np
import pytest
import torch

from stpm_repro.engine.evaluate import load_model, predict, train_and_evaluate
from stpm_repro.engine.export import EXPORT_FORMATS, export_run, load_exported
from stpm_repro.core.synthetic import make_synthetic_category
from stpm_repro.engine.train import TrainConfig

TINY = dict(category='synthetic_tiles', teacher='efficientnet_lite0', image_size=64, epochs=1, batch_size=8, device='cpu')
METHODS = {'stpm': {}, 'et_stpm': {'options': {'loss': 'l1_cosine'}}, 'dcam': {'fusion': 'sum', 'smoothing_sigma': 2., 'lr': 0.1},
           'rstpm': {'fusion': 'sum_then_product', 'options': {'second_teacher': 'efficientnet_lite0'}}}
IMAGES = torch.randint(0, 256, (3, 3, 64, 64), dtype=torch.uint8, generator=torch.Generator().manual_seed(0))


@pytest.fixture(scope='module')
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp('data')
    make_synthetic_category(root, 'synthetic_tiles', n_train=10, n_test_good=2, n_test_defect=2, image_size=64)
    return root


@pytest.fixture(scope='module')
def runs(data_root, tmp_path_factory):
    "One finished one-epoch run per method"
    root = tmp_path_factory.mktemp('runs')
    for method, fields in METHODS.items():
        train_and_evaluate(TrainConfig(method=method, data_root=str(data_root), **TINY, **fields), root/method, progress=False)
    return {method: root/method for method in METHODS}


@pytest.mark.parametrize('method', METHODS)
def test_exported_graphs_equal_python_path(method, runs, tmp_path):
    expected = predict(load_model(runs[method], 'cpu')[0], IMAGES)  # batch 3; the graphs are traced with batch 2
    for format in EXPORT_FORMATS:
        maps, scores = load_exported(export_run(runs[method], format, tmp_path/f'model.{format}'))(IMAGES.numpy())
        assert maps.shape == (3, 64, 64) and scores.shape == (3,)
        np.testing.assert_allclose(maps, expected['maps'].numpy(), rtol=0, atol=1e-4, err_msg=f'{method} {format}')
        np.testing.assert_allclose(scores, expected['scores'].numpy(), rtol=0, atol=1e-4, err_msg=f'{method} {format}')


def test_fresh_interpreter_scores_every_method_with_load_run(runs, tmp_path):
    "The README's Python example on each method's run, in an interpreter that imported nothing else of the kit"
    np.save(tmp_path/'images.npy', IMAGES.numpy())
    script = ("import json, sys, numpy as np, torch\nfrom stpm_repro import load_run\n"
              f"images = torch.from_numpy(np.load({str(tmp_path/'images.npy')!r}))\n"
              f"print(json.dumps({{m: load_run(p, 'cpu').score(images)[1].tolist() for m, p in {json.dumps({m: str(p) for m, p in runs.items()})}.items()}}))")
    fresh = json.loads(subprocess.run([sys.executable, '-c', script], capture_output=True, text=True, check=True).stdout)
    for method, run in runs.items():
        np.testing.assert_allclose(fresh[method], predict(load_model(run, 'cpu')[0], IMAGES)['scores'].numpy(), rtol=0, atol=1e-5,
                                   err_msg=method)


def test_spade_refuses_with_reason(data_root, tmp_path):
    config = TrainConfig(method='spade', data_root=str(data_root), **TINY, options={'k_images': 2})
    train_and_evaluate(config, tmp_path/'run', progress=False)
    with pytest.raises(ValueError, match='SPADE cannot be exported: its pixel search loops'):
        export_run(tmp_path/'run', 'onnx', tmp_path/'m.onnx')
