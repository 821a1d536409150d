"The README's main job, `stpm-repro demo`, through the installed command."
import json, subprocess, sys
from pathlib import Path

STPM_REPRO = str(Path(sys.executable).parent/'stpm-repro')


def test_demo_trains_scores_and_draws(tmp_path, cli_env):
    out = subprocess.run([STPM_REPRO, 'demo', '--out', str(tmp_path/'demo'), '--quiet'], env=cli_env,
                         capture_output=True, text=True, timeout=900)
    assert out.returncode == 0, out.stderr
    metrics = json.loads((tmp_path/'demo'/'run'/'metrics.json').read_text())
    assert 'synthetic_tiles' in out.stdout and 'anomaly_maps.png' in out.stdout
    # measured with the default demo (30 epochs, 128 px, seed 0): see nbs/15_cli.ipynb
    assert metrics['image_auroc'] > 0.9 and metrics['pixel_auroc'] > 0.9, metrics
    png = (tmp_path/'demo'/'anomaly_maps.png').read_bytes()
    assert png[:8] == b'\x89PNG\r\n\x1a\n' and len(png) > 10_000


def test_bad_input_is_one_line_not_a_traceback(tmp_path, cli_env):
    (tmp_path/'mvtec'/'bottle'/'train'/'good').mkdir(parents=True)
    out = subprocess.run([STPM_REPRO, 'train', '--data-root', str(tmp_path/'mvtec'), '--category', 'cable', '--quiet'],
                         env=cli_env, capture_output=True, text=True)
    assert out.returncode == 2 and 'Traceback' not in out.stderr
    assert 'cable' in out.stderr and 'bottle' in out.stderr, out.stderr  # names what exists
