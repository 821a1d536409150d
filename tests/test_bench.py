"The optimised training paths give the plain path's results, and `stpm-repro bench` writes a complete JSON file."
import dataclasses, json, math

import pytest
import torch

from stpm_repro.repro.bench import check_bench, run_benchmark
from stpm_repro.core.data import load_category
from stpm_repro.engine.evaluate import METRIC_KEYS, load_run, train_and_evaluate
from stpm_repro.core.synthetic import make_synthetic_category
from stpm_repro.engine.train import SpeedOptions, TrainConfig


@pytest.fixture(autouse=True)
def one_thread():
    "Small CPU work runs fastest, and least disturbed by other jobs, on one thread"
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture
def tiles(tmp_path):
    "A small synthetic category, loaded, and the config of a seeded 3-epoch CPU run on it"
    make_synthetic_category(tmp_path/'data', 'synthetic_tiles', n_train=20, n_test_good=4, n_test_defect=6, image_size=64)
    data = load_category(tmp_path/'data', 'synthetic_tiles', image_size=64, cache_dir=tmp_path/'cache', progress=False)
    config = TrainConfig(category='synthetic_tiles', data_root=str(tmp_path/'data'), teacher='efficientnet_lite0',
                         image_size=64, epochs=3, batch_size=8, seed=0, device='cpu')
    return data, config


def test_precomputed_teacher_features_give_the_plain_paths_metrics(tiles, tmp_path):
    data, config = tiles
    runs = {p: tmp_path/f'precompute_{p}' for p in (True, False)}
    metrics = {p: train_and_evaluate(dataclasses.replace(config, precompute_teacher=p), run, data=data, progress=False)
               for p, run in runs.items()}
    for key in METRIC_KEYS:
        assert math.isfinite(metrics[True][key]) and metrics[True][key] == pytest.approx(metrics[False][key], abs=1e-4), key
    maps = {p: load_run(run, device='cpu').score(data.test_images)[0] for p, run in runs.items()}
    torch.testing.assert_close(maps[True], maps[False], rtol=1e-4, atol=1e-6)


def test_speed_options_give_the_default_runs_metrics(tiles, tmp_path):
    "Fused SGD, a compiled student and checkpoints only at the end, all at once, change no metric or map"
    data, config = tiles
    fast = SpeedOptions(checkpoint_seconds=math.inf, fused_optimizer=True, compile='default', compile_backend='aot_eager')
    runs = {'default': (tmp_path/'default', None), 'fast': (tmp_path/'fast', fast)}
    metrics = {name: train_and_evaluate(config, run, data=data, progress=False, speed=speed) for name, (run, speed) in runs.items()}
    for key in METRIC_KEYS:
        assert metrics['fast'][key] == pytest.approx(metrics['default'][key], abs=1e-4), key
    maps = {name: load_run(run, device='cpu').score(data.test_images)[0] for name, (run, _) in runs.items()}
    torch.testing.assert_close(maps['fast'], maps['default'], rtol=1e-4, atol=1e-6)


def test_run_benchmark_writes_every_field(tmp_path, monkeypatch):
    monkeypatch.setenv('MVTEC_AD_ROOT', str(tmp_path))  # no category there: the benchmark generates a synthetic one
    out = tmp_path/'results'/'bench.json'
    with pytest.warns(UserWarning, match='synthetic category'):
        result = run_benchmark('cpu', category='bottle', teacher='resnet18', image_size=64, epochs=1, batch_size=16,
                               latency_repeats=3, out=out, progress=False, random_teacher=True)
    written = check_bench(json.loads(out.read_text()))
    assert written == json.loads(json.dumps(result))
    assert (written['teacher'], written['teacher_weights'], written['data_source']['kind']) == ('resnet18', 'random', 'synthetic')
    assert written['floor']['student_forward_gflops'] == pytest.approx(2*0.1145, rel=1e-3)  # ResNet-18 levels 2-4, 64 px
    assert len(written['latency']['samples_ms']) == 3
    assert set(written['train']['levers']) == {'precompute_teacher', 'checkpoint_interval', 'fused_sgd', 'concurrent_processes'}


def test_gpu_suite_dry_run_writes_every_step(tmp_path, capsys):
    "`stpm-repro bench --suite gpu --dry-run` on the CPU: every step runs, every lever equals the plain path"
    from stpm_repro.repro.bench import GPU_SUITE_STEPS
    from stpm_repro.cli import main
    out = tmp_path/'suite'
    assert main(['bench', '--suite', 'gpu', '--dry-run', '--device', 'cpu', '--quiet', '--out', str(out)]) == 0
    suite = json.loads((out/'suite.json').read_text())
    assert (suite['dry_run'], suite['skipped'], suite['config']['image_size']) == (True, {}, 64)
    assert list(suite['steps']) == list(GPU_SUITE_STEPS) and not [s for s in suite['steps'].values() if 'error' in s]
    assert sorted(p.name for p in out.iterdir()) == sorted(['suite.json', *(f'{name}.png' for name in GPU_SUITE_STEPS)])
    assert all((out/name).read_bytes()[:8] == b'\x89PNG\r\n\x1a\n' for name in suite['figures'].values())
    correctness = suite['steps']['correctness']
    for precision in ('fp32', 'bf16'):
        run = correctness[precision]
        assert len(run['train_losses']) == len(run['val_losses']) == 2 and run['final_val_loss'] == run['val_losses'][-1]
        assert all(0 <= run[k] <= 1 for k in METRIC_KEYS)
    assert correctness['bf16_minus_fp32']['pro'] == pytest.approx(correctness['bf16']['pro'] - correctness['fp32']['pro'])
    levers = suite['steps']['levers']
    checked = {'precompute_teacher', 'fused_sgd', 'compile_default', 'metrics_on_device'}
    assert checked <= set(levers) and all(levers[name]['equal'] for name in checked), levers
    speed = suite['steps']['speed']
    assert set(speed['inference_images_per_second']) == {'1', '8'}
    assert all(set(r) == {'fp32', 'bf16', 'channels_last_fp32', 'channels_last_bf16'} for r in speed['inference_images_per_second'].values())
    assert (speed['latency']['repeats'], set(speed['train_images_per_second'])) == (3, {'fp32', 'bf16'})
    assert {'pro_seconds', 'pixel_auroc_seconds', 'image_auroc_seconds'} <= set(speed['metrics'])
    table1 = suite['steps']['table1']
    assert (table1['categories_run'], table1['runs'], table1['epochs']) == (['toothbrush'], 1, 1)
    assert table1['share_of_training_images'] == pytest.approx(60/3629)
    assert table1['projected_full_seconds'] == pytest.approx(table1['reproduce_seconds']/table1['share_of_training_images'])
    assert table1['projected_over_floor'] == pytest.approx(table1['projected_full_seconds']/table1['floor_seconds'])
    assert table1['student_forward_flops'] == 228982784  # ResNet-18 levels 2-4 at 64 px: 2 x 114.5 M multiply-adds
    assert 'suite written to' in capsys.readouterr().out
