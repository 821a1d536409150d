"""The table of bad inputs in nbs/15_cli.ipynb, one test per row, run as a user runs the kit: the `stpm-repro` command.

Each test checks the exit status, that the error is one line on stderr (and no traceback), and that nothing already
computed is lost. One tiny trained run (synthetic data, 64 px, 1 epoch, EfficientNet-Lite0) is shared by the module.
"""
import json, shlex, shutil, signal, subprocess, sys, time
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stpm_repro.repro.experiments import build_experiments, run_id
from stpm_repro.core.synthetic import make_synthetic_category

STPM_REPRO = str(Path(sys.executable).parent/'stpm-repro')
CATEGORY = 'synthetic_tiles'
SMALL = ['--teacher', 'efficientnet_lite0', '--image-size', '64', '--batch-size', '8', '--device', 'cpu', '--quiet']


def make_category(root, category=CATEGORY):
    "A tiny MVTec-layout category: 8 train, 2 good and 3 defective test images of 64 px"
    return make_synthetic_category(root, category, n_train=8, n_test_good=2, n_test_defect=3, image_size=64)


@pytest.fixture(scope='module')
def env(tmp_path_factory):
    import os
    return {**os.environ, 'STPM_REPRO_CACHE': str(tmp_path_factory.mktemp('cache')), 'PYTHONUNBUFFERED': '1',
            'OMP_NUM_THREADS': '1'}


def cli(env, *args, timeout=300):
    "Run `stpm-repro ARGS` in a fresh process"
    return subprocess.run([STPM_REPRO, *map(str, args)], env=env, capture_output=True, text=True, timeout=timeout)


def train_args(data, out, *extra):
    return ['train', '--data-root', data, '--category', CATEGORY, '--epochs', '1', *SMALL, '--out', out, *extra]


@pytest.fixture(scope='module')
def trained(tmp_path_factory, env):
    "(data root, run dir) of one finished run, shared by the tests (which must not change it)"
    root = tmp_path_factory.mktemp('shared')
    make_category(root/'data')
    out = cli(env, *train_args(root/'data', root/'run'))
    assert out.returncode == 0, out.stderr
    return root/'data', root/'run'


def stamps(folder):
    "Bytes of every file under `folder`, to show that a failed command changed nothing"
    return {p.relative_to(folder): p.read_bytes() for p in sorted(Path(folder).rglob('*')) if p.is_file()}


def assert_error(out, *fragments, status=2, alone=True):
    "Exit `status`, no traceback, nothing on stdout, the error in one line holding `fragments` (and, `alone`, nothing else)"
    assert out.returncode == status, (out.returncode, out.stderr)
    assert 'Traceback' not in out.stderr and out.stdout == '', (out.stdout, out.stderr)
    lines = [l for l in out.stderr.splitlines() if l.strip()]
    assert lines and 'error: ' in lines[-1] and sum('error' in l for l in lines) == 1, out.stderr
    if alone: assert len(lines) == 1, out.stderr
    for fragment in fragments: assert str(fragment) in lines[-1], (fragment, lines[-1])
    return lines[-1]


def copy_run(trained, tmp_path):
    shutil.copytree(trained[1], tmp_path/'run')
    return tmp_path/'run'


# --- images given to `score`

def test_score_unreadable_image(trained, env, tmp_path):
    (tmp_path/'notes.png').write_text('these are my notes, not a picture')
    before = stamps(trained[1])
    line = assert_error(cli(env, 'score', trained[1], tmp_path/'notes.png', '--device', 'cpu'),
                        f"{tmp_path/'notes.png'} is not a readable image")
    assert 're-download' not in line  # a user's own file: no advice about the data set
    assert stamps(trained[1]) == before


def test_score_truncated_image(trained, env, tmp_path):
    good = next((trained[0]/CATEGORY/'test'/'good').iterdir())
    (tmp_path/'cut.png').write_bytes(good.read_bytes()[:200])
    assert_error(cli(env, 'score', trained[1], tmp_path/'cut.png', '--device', 'cpu'), f"{tmp_path/'cut.png'} is not a readable image")


def test_score_zero_byte_image(trained, env, tmp_path):
    (tmp_path/'empty.png').write_bytes(b'')
    assert_error(cli(env, 'score', trained[1], tmp_path/'empty.png', '--device', 'cpu'), f"{tmp_path/'empty.png'} is not a readable image")


def test_score_missing_file(trained, env, tmp_path):
    assert_error(cli(env, 'score', trained[1], tmp_path/'nowhere.png', '--device', 'cpu'), f"{tmp_path/'nowhere.png'}: no such file or folder")


@pytest.fixture(scope='module')
def scored(trained, env, tmp_path_factory)->dict:
    "File name -> score of the images that must work (CMYK, grayscale, 16-bit) and their plain RGB twins, in one `score` call"
    folder = tmp_path_factory.mktemp('works')
    rgb = Image.new('RGB', (64, 64), (200, 30, 30))
    rgb.save(folder/'rgb.png'); rgb.convert('CMYK').save(folder/'cmyk.jpg', quality=100)
    gray = np.random.default_rng(0).integers(0, 256, (64, 64), dtype=np.uint8)
    Image.fromarray(gray).save(folder/'gray.png'); Image.fromarray(np.stack([gray]*3, -1)).save(folder/'gray_as_rgb.png')
    Image.fromarray(gray.astype(np.uint16)*257).save(folder/'gray16.png')
    assert Image.open(folder/'gray16.png').mode == 'I;16'
    out = cli(env, 'score', trained[1], folder, '--device', 'cpu', '--quiet')
    assert out.returncode == 0 and 'Traceback' not in out.stderr, out.stderr
    rows = [line.split('\t') for line in out.stdout.splitlines()[1:] if '\t' in line]  # after the header: path, score, ...
    return {Path(row[0]).name: float(row[1]) for row in rows}


def test_score_cmyk_jpeg_works(scored):
    assert scored['cmyk.jpg'] == pytest.approx(scored['rgb.png'], rel=0.05)  # JPEG's loss aside, the same picture


def test_score_grayscale_png_works(scored):
    assert scored['gray.png'] == scored['gray_as_rgb.png']  # the same pixels, the same score


def test_score_16bit_png_works(scored):
    assert scored['gray16.png'] == scored['gray.png']  # scaled to 8 bits, not clipped to white


# --- the data set

def test_train_truncated_dataset_image(env, tmp_path):
    folder = make_category(tmp_path/'data')
    victim = sorted((folder/'train'/'good').iterdir())[3]
    victim.write_bytes(victim.read_bytes()[:300])
    assert_error(cli(env, *train_args(tmp_path/'data', tmp_path/'run')), f"{victim} is not a readable image", 're-download the category')
    assert not (tmp_path/'run').exists()


def first_mask(folder): return sorted((folder/'ground_truth').rglob('*_mask.png'))[0]


def test_train_mask_of_other_aspect_ratio(env, tmp_path):
    mask = first_mask(make_category(tmp_path/'data'))
    Image.fromarray(np.full((32, 96), 255, np.uint8)).save(mask)  # 96x32 for a 64x64 image
    assert_error(cli(env, *train_args(tmp_path/'data', tmp_path/'run')), f"mask {mask} is 96x32 but image", 'another aspect ratio')
    assert not (tmp_path/'run').exists()


def test_train_mask_of_other_resolution_warns(env, tmp_path):
    mask = first_mask(make_category(tmp_path/'data'))
    Image.open(mask).resize((128, 128), Image.Resampling.NEAREST).save(mask)
    out = cli(env, *train_args(tmp_path/'data', tmp_path/'run'))
    assert out.returncode == 0 and 'Traceback' not in out.stderr, out.stderr
    warnings = [l for l in out.stderr.splitlines() if 'warning' in l.lower()]
    assert len(warnings) == 1 and warnings[0].startswith(f'stpm-repro: warning: mask {mask} is 128x128'), out.stderr
    assert 'warnings.warn' not in out.stderr and 'UserWarning' not in out.stderr  # no Python source line
    assert (tmp_path/'run'/'metrics.json').exists()


def test_train_missing_mask(env, tmp_path):
    mask = first_mask(make_category(tmp_path/'data'))
    mask.unlink()
    assert_error(cli(env, *train_args(tmp_path/'data', tmp_path/'run')), 'has no ground-truth mask', f'expected {mask}')


def test_train_empty_category(env, tmp_path):
    (tmp_path/'data'/CATEGORY/'train'/'good').mkdir(parents=True)
    assert_error(cli(env, *train_args(tmp_path/'data', tmp_path/'run')), f"No training images in {tmp_path/'data'/CATEGORY/'train'/'good'}")


def test_train_missing_ground_truth_folder(env, tmp_path):
    shutil.rmtree(make_category(tmp_path/'data')/'ground_truth')
    assert_error(cli(env, *train_args(tmp_path/'data', tmp_path/'run')), 'has no ground-truth mask')


def test_train_unknown_category(env, tmp_path):
    make_category(tmp_path/'data')
    assert_error(cli(env, 'train', '--data-root', tmp_path/'data', '--category', 'cable', *SMALL),
                 f"{tmp_path/'data'/'cable'} not found", CATEGORY)


# --- run directories and checkpoints

def test_evaluate_without_config(env, tmp_path):
    (tmp_path/'run').mkdir()
    assert_error(cli(env, 'evaluate', tmp_path/'run', '--quiet'), 'is not a run directory')


def test_evaluate_config_with_unknown_keys(trained, env, tmp_path):
    run = copy_run(trained, tmp_path)
    config = json.loads((run/'config.json').read_text())
    (run/'config.json').write_text(json.dumps({**config, 'future_setting': 3}))
    before = stamps(run)
    assert_error(cli(env, 'evaluate', run, '--quiet'), 'config.json', "unknown config keys ['future_setting']")
    assert stamps(run) == before


def test_evaluate_truncated_best_checkpoint(trained, env, tmp_path):
    run = copy_run(trained, tmp_path)
    (run/'best.pt').write_bytes((run/'best.pt').read_bytes()[:4096])
    before = stamps(run)
    assert_error(cli(env, 'evaluate', run, '--quiet'), f"{run/'best.pt'} cannot be used")
    assert stamps(run) == before  # metrics.json and scores.csv are still there


def test_train_resume_with_truncated_last_checkpoint(trained, env, tmp_path):
    run = copy_run(trained, tmp_path)
    for done in ('train.json', 'metrics.json', 'scores.csv'): (run/done).unlink()  # as if killed mid-training
    (run/'last.pt').write_bytes((run/'best.pt').read_bytes()[:4096])
    before = stamps(run)
    assert_error(cli(env, *train_args(trained[0], run)), run/'last.pt', '--on-damaged-last from_best', alone=False)
    assert stamps(run) == before  # best.pt is kept
    out = cli(env, *train_args(trained[0], run, '--on-damaged-last', 'from_best'))  # the choice the message offers
    assert out.returncode == 0 and (run/'metrics.json').exists(), out.stderr
    assert (run/'last.pt.damaged').read_bytes() == before[Path('last.pt')]  # kept, renamed


# --- results stores

def test_reproduce_corrupt_record(trained, env, tmp_path):
    config = build_experiments('stpm', 2, categories=[CATEGORY], epochs=1, image_size=64, teacher='efficientnet_lite0',
                               batch_size=32)[0].configs()[0]
    records = tmp_path/'store'/'records'; records.mkdir(parents=True)
    (records/f'{run_id(config)}.json').write_text('{"run_id": "cut off in the midd')
    before = stamps(tmp_path/'store')
    assert_error(cli(env, 'reproduce', '--table', '2', '--data-root', trained[0], '--store', tmp_path/'store',
                     '--categories', CATEGORY, '--epochs', '1', '--image-size', '64', '--teacher', 'efficientnet_lite0',
                     '--device', 'cpu', '--quiet'), f'{run_id(config)}.json is not valid JSON', 'delete it to redo that run')
    assert stamps(tmp_path/'store') == before


# --- values on the command line

def test_train_negative_lr_writes_nothing(trained, env, tmp_path):
    assert_error(cli(env, *train_args(trained[0], tmp_path/'run', '--lr', '-1')), 'lr must be')
    assert not (tmp_path/'run'/'config.json').exists()
    out = cli(env, *train_args(trained[0], tmp_path/'run', '--lr', '0.1'))  # the corrected command starts clean
    assert out.returncode == 0, out.stderr


def test_train_image_size_not_multiple_of_32(trained, env, tmp_path):
    assert_error(cli(env, 'train', '--data-root', trained[0], '--category', CATEGORY, '--image-size', '100',
                     '--out', tmp_path/'run'), 'image_size must be a multiple of 32, got 100')
    assert not (tmp_path/'run').exists()


def test_train_unknown_method(env):
    assert_error(cli(env, 'train', '--method', 'padim'), "argument --method: invalid choice: 'padim'")


def test_train_unknown_teacher(env):
    assert_error(cli(env, 'train', '--teacher', 'vgg16'), "argument --teacher: invalid choice: 'vgg16'")


def test_reproduce_shard_out_of_range(trained, env, tmp_path):
    assert_error(cli(env, 'reproduce', '--table', '2', '--data-root', trained[0], '--store', tmp_path/'store',
                     '--categories', CATEGORY, '--teacher', 'efficientnet_lite0', '--shard', '5/4'),
                 "shard '5/4': INDEX must be in 0..COUNT-1")
    assert not (tmp_path/'store').exists()


# --- Ctrl-C

def interrupt_when(args, env, ready, timeout=120):
    "Start `stpm-repro ARGS`, send SIGINT once `ready()` holds, return the finished process's (status, stderr)"
    proc = subprocess.Popen([STPM_REPRO, *map(str, args)], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + timeout
    while proc.poll() is None and time.time() < deadline and not ready(): time.sleep(0.02)
    assert proc.poll() is None, f"finished before it could be interrupted: {proc.communicate()}"
    proc.send_signal(signal.SIGINT)
    stdout, stderr = proc.communicate(timeout=60)
    assert stdout == '', stdout
    return proc.returncode, stderr


def resume_command(line:str)->list:
    "The command after 'resume with: ' in `line`, with `stpm-repro` as this environment's executable"
    words = shlex.split(line.split('resume with: ', 1)[1])
    assert words[0] == 'stpm-repro', line
    return [STPM_REPRO, *words[1:]]


def test_train_ctrl_c_then_resume(trained, env, tmp_path):
    args = ['train', '--data-root', trained[0], '--category', CATEGORY, '--epochs', '12', *SMALL, '--out', tmp_path/'run',
            '--checkpoint-seconds', '0']
    status, stderr = interrupt_when(args, env, lambda: (tmp_path/'run'/'last.pt').exists())
    assert status == 130 and 'Traceback' not in stderr, stderr
    line = [l for l in stderr.splitlines() if l.strip()][-1]
    assert line.startswith('stpm-repro train: interrupted;') and 'last.pt' in line, stderr
    assert (tmp_path/'run'/'last.pt').exists()  # the saved epochs are kept
    resumed = subprocess.run(resume_command(line), env=env, capture_output=True, text=True, timeout=300)
    assert resumed.returncode == 0, resumed.stderr
    history = json.loads((tmp_path/'run'/'train.json').read_text())['history']
    assert [h['epoch'] for h in history] == list(range(1, 13))  # resumed, every epoch once


def test_reproduce_ctrl_c(trained, env, tmp_path):
    args = ['reproduce', '--table', '2', '--data-root', trained[0], '--store', tmp_path/'store', '--categories', CATEGORY,
            '--epochs', '50', '--image-size', '64', '--teacher', 'efficientnet_lite0', '--device', 'cpu', '--quiet',
            '--checkpoint-seconds', '0']
    status, stderr = interrupt_when(args, env, lambda: any((tmp_path/'store'/'runs').glob('*/last.pt')))
    assert status == 130 and 'Traceback' not in stderr, stderr
    line = [l for l in stderr.splitlines() if l.strip()][-1]
    assert line.startswith('stpm-repro reproduce: interrupted; 0 finished runs are recorded'), stderr
    assert resume_command(line)[1:] == [str(a) for a in args]
    assert list((tmp_path/'store'/'runs').glob('*/last.pt'))
