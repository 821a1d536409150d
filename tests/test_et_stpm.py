"ET-STPM end to end on synthetic data: fine-tune a teacher, train and evaluate STPM with it, reuse both on a second call."
import dataclasses, json

import torch

from stpm_repro.engine import evaluate
from stpm_repro.engine import finetune
from stpm_repro.core.backbones import build_teacher
from stpm_repro.engine.evaluate import load_model, train_and_evaluate
from stpm_repro.engine.finetune import finetune_teacher
from stpm_repro.repro.et_stpm import et_stpm_experiment
from stpm_repro.core.synthetic import make_synthetic_mvtec
from stpm_repro.engine.train import TrainConfig

CATEGORIES = ('synthetic_stripes', 'synthetic_weave', 'synthetic_dots')
BACKBONE = 'efficientnet_lite0'  # ImageNet weights ship with a package: no download
FINETUNE = dict(image_size=64, batch_size=8, head_epochs=1, full_epochs=1, val_fraction=0.2, device='cpu', progress=False)


def must_not_run(*args, **kwargs): raise AssertionError('recomputed although the result exists')


def test_finetuned_teacher_trains_stpm_and_is_reused(tmp_path, monkeypatch):
    monkeypatch.setenv('STPM_REPRO_CACHE', str(tmp_path/'cache'))
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # the CI machine is small and shared
    try:
        root = make_synthetic_mvtec(tmp_path/'data', CATEGORIES, n_train=10, n_test_good=2, n_test_defect=4, image_size=64)
        checkpoint = finetune_teacher(BACKBONE, root, CATEGORIES, 'clean', tmp_path/'teachers', **FINETUNE)
        log = json.loads((checkpoint.parent/'finetune.json').read_text())
        assert log['finished'] and log['n_test_images'] == 0
        assert [h['phase'] for h in log['history']] == ['imagenet', 'head', 'full']

        config = TrainConfig(category='synthetic_dots', data_root=str(root), teacher=BACKBONE,
                             teacher_checkpoint=str(checkpoint.resolve()), image_size=64, epochs=1, batch_size=8, device='cpu')
        metrics = train_and_evaluate(config, tmp_path/'run', progress=False)
        assert all(0 <= metrics[k] <= 1 for k in ('image_auroc', 'pixel_auroc', 'pro')), metrics
        model, _ = load_model(tmp_path/'run', 'cpu')  # the run's teacher is the fine-tuned network
        fine_tuned = build_teacher(BACKBONE, checkpoint=checkpoint).state_dict()
        assert all(torch.equal(v, fine_tuned[k]) for k, v in model.teacher.state_dict().items())

        # the literal reading of Section D's loss trains too, under method 'et_stpm' (inference stays STPM's)
        literal = dataclasses.replace(config, method='et_stpm', options={'loss': 'l1_cosine'})
        literal_metrics = train_and_evaluate(literal, tmp_path/'run_l1_cosine', progress=False)
        assert all(0 <= literal_metrics[k] <= 1 for k in ('image_auroc', 'pixel_auroc', 'pro')), literal_metrics
        assert load_model(tmp_path/'run_l1_cosine', 'cpu')[0].loss == 'l1_cosine'

        # second call, through the experiment factory: the teacher and the run are found, not recomputed
        stamp = checkpoint.stat().st_mtime_ns
        monkeypatch.setattr(finetune, 'make_classifier', must_not_run)
        monkeypatch.setattr(evaluate, 'train', must_not_run)
        experiment, = et_stpm_experiment(2, categories=['synthetic_dots'], epochs=1, image_size=64, teacher=BACKBONE,
                                         data_root=str(root), device='cpu', teacher_dir=tmp_path/'teachers',
                                         variants=('clean',), baseline=False, finetune_categories=CATEGORIES,
                                         finetune=FINETUNE, batch_size=8)
        again, = experiment.configs()
        assert again == config
        assert experiment.paper_teachers == {BACKBONE: 'resnet18'}  # offline stand-in, named in the records
        assert train_and_evaluate(again, tmp_path/'run', progress=False) == metrics
        assert checkpoint.stat().st_mtime_ns == stamp
    finally:
        torch.set_num_threads(threads)
