"""Own images through the command line, from a fresh install: anomalib-style folders (normal, abnormal, masks, normal
test; jpg and png mixed, nested) built from the synthetic generator, one epoch at 64 px per method, thresholds in
metrics.json, `score --out` writing scores.csv and one heatmap PNG per image, and one-line errors for bad folders."""
import json, shutil

import pandas as pd
import pytest
from PIL import Image

from stpm_repro.cli import main
from stpm_repro.core.synthetic import make_synthetic_category

METHOD_FLAGS = {'stpm': [], 'rstpm': ['--option', 'second_teacher=efficientnet_lite0'], 'dcam': ['--lr', '0.1'], 'spade': []}


@pytest.fixture(scope='module')
def folders(tmp_path_factory):
    "good/ (nested, jpg and png), bad/<defect>/, masks/ (named by stem), good_test/"
    root = tmp_path_factory.mktemp('own')
    category = make_synthetic_category(root/'mvtec', 'synthetic_tiles', n_train=12, n_test_good=3, n_test_defect=4, image_size=64)
    own = {name: root/name for name in ('good', 'bad', 'masks', 'good_test')}
    for k, image in enumerate(sorted((category/'train'/'good').iterdir())):
        target = own['good']/f'part{k % 2}'/f'{k:03d}.{"jpg" if k % 3 == 0 else "png"}'
        target.parent.mkdir(parents=True, exist_ok=True)
        Image.open(image).convert('RGB').save(target)
    for defect in (p for p in (category/'test').iterdir() if p.name != 'good'):
        (own['bad']/defect.name).mkdir(parents=True, exist_ok=True); own['masks'].mkdir(exist_ok=True)
        for image in defect.iterdir():
            shutil.copy(image, own['bad']/defect.name/f'{defect.name}_{image.name}')
            shutil.copy(category/'ground_truth'/defect.name/f'{image.stem}_mask.png', own['masks']/f'{defect.name}_{image.stem}.png')
    shutil.copytree(category/'test'/'good', own['good_test'])
    return own


def flags(own):
    return ['--normal-dir', str(own['good']), '--abnormal-dir', str(own['bad']), '--mask-dir', str(own['masks']),
            '--normal-test-dir', str(own['good_test'])]


@pytest.mark.parametrize('method', METHOD_FLAGS)
def test_train_and_score_own_folders(method, folders, tmp_path, capsys):
    run = tmp_path/'run'
    common = ['--teacher', 'efficientnet_lite0', '--image-size', '64', '--epochs', '1', '--batch-size', '8', '--device', 'cpu', '--quiet']
    assert main(['train', '--method', method, *flags(folders), *METHOD_FLAGS[method], *common, '--out', str(run)]) == 0
    metrics = json.loads((run/'metrics.json').read_text())
    assert (metrics['category'], metrics['n_test'], metrics['n_defective']) == ('good', 7, 4)
    assert all(0 <= metrics[k] <= 1 for k in ('image_auroc', 'pixel_auroc', 'pro')), metrics
    thresholds = metrics['thresholds']
    assert set(thresholds) == {'validation', 'validation_low', 'f1'} and thresholds['validation']['rule'].startswith('quantile 0.99')
    assert {'precision', 'recall', 'f1'} <= set(thresholds['f1']) and thresholds['f1']['f1'] >= thresholds['validation']['f1']
    capsys.readouterr()
    assert main(['score', str(run), str(folders['bad']), str(folders['good_test']), '--out', str(tmp_path/'scored'), '--quiet']) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == 'path\tscore\tnormalized\tanomalous' and len(printed) == 1 + 7 + 2, printed
    table = pd.read_csv(tmp_path/'scored'/'scores.csv')
    assert list(table.columns) == ['path', 'score', 'normalized', 'anomalous'] and len(table) == 7
    assert ((table.normalized >= 0.5) == (table.score >= thresholds['validation']['value'])).all()
    assert (table.anomalous == (table.score >= thresholds['validation']['value'])).all()
    assert len(list((tmp_path/'scored').glob('*.png'))) == 7
    assert main(['score', str(run), str(folders['bad']), '--threshold', 'f1', '--quiet']) == 0
    assert f"at threshold {thresholds['f1']['value']:.6g} (f1)" in capsys.readouterr().out


def test_bad_folders_get_one_line_errors(folders, tmp_path, capsys):
    base = ['train', '--teacher', 'efficientnet_lite0', '--image-size', '64', '--epochs', '1', '--device', 'cpu', '--quiet',
            '--out', str(tmp_path/'run')]
    (tmp_path/'empty').mkdir()
    masks_without_one = tmp_path/'masks'; shutil.copytree(folders['masks'], masks_without_one)
    sorted(masks_without_one.iterdir())[0].unlink()
    orphan = tmp_path/'orphan_masks'; shutil.copytree(folders['masks'], orphan)
    shutil.copy(sorted(orphan.iterdir())[0], orphan/'no_such_image.png')
    unreadable = tmp_path/'unreadable'; shutil.copytree(folders['good'], unreadable)
    (unreadable/'part0'/'broken.png').write_bytes(b'not a png')
    cases = {'--normal-dir ' + str(tmp_path/'empty') + ': no images': ['--normal-dir', str(tmp_path/'empty')],
             'has no mask in': ['--normal-dir', str(folders['good']), '--abnormal-dir', str(folders['bad']), '--mask-dir', str(masks_without_one)],
             "has no image named 'no_such_image'": ['--normal-dir', str(folders['good']), '--abnormal-dir', str(folders['bad']),
                                                   '--mask-dir', str(orphan)],
             'without --abnormal-dir': ['--normal-dir', str(folders['good']), '--mask-dir', str(folders['masks'])],
             str(unreadable/'part0'/'broken.png'): ['--normal-dir', str(unreadable)]}
    for expected, args in cases.items():
        assert main(base + args) == 2, expected
        error = capsys.readouterr().err.strip().splitlines()
        assert len(error) == 1 and error[0].startswith('stpm-repro train: error: ') and expected in error[0], (expected, error)
