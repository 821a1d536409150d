"Damaged checkpoints and Ctrl-C: one clear line each, and nothing already computed is lost."
import math
from pathlib import Path
from types import SimpleNamespace
from unittest import mock

import pytest
import torch

import stpm_repro.engine.loop as L
import stpm_repro.engine.train as T
from stpm_repro.core.io import _atomic_write
from stpm_repro.methods.model import METHODS, StudentTeacherModel


class Drifting(StudentTeacherModel):
    "One weight w: loss w**2 falls every epoch, the map (w - 1.5)**2 is lowest after epoch 1 (with lr 0.1, momentum 0.5)"
    def __init__(self):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(2.))
    def teacher_targets(self, x): return [x.mean(dim=(1, 2, 3))[:, None]]
    def student_parameters(self): return [self.w]
    def student_loss(self, x, y): return self.w**2
    def level_maps(self, x): return [[((self.w - 1.5)**2).expand(len(x), 4, 4)]]


# the public code's criterion keeps epoch 1 while the run goes on to epoch 4; momentum makes the optimiser state matter
CONFIG = T.TrainConfig(method='drifting', category='toy', image_size=32, epochs=4, batch_size=16, lr=0.1, momentum=0.5,
                       weight_decay=0, device='cpu', recipe='official_code')
DATA = SimpleNamespace(category='toy', train_images=torch.randint(0, 256, (10, 3, 32, 32), dtype=torch.uint8,
                                                                  generator=torch.Generator().manual_seed(0)))
EVERY_EPOCH = T.SpeedOptions(checkpoint_seconds=0)


@pytest.fixture(autouse=True)
def drifting_method():
    with mock.patch.dict(METHODS, drifting=lambda config: Drifting()): yield


def run(run_dir, **kwargs): return T.train(CONFIG, run_dir, data=DATA, progress=False, **kwargs)


def best_w(run_dir): return torch.load(Path(run_dir)/'best.pt')['model']['w'].item()


@pytest.fixture(scope='module')
def whole(tmp_path_factory):
    with mock.patch.dict(METHODS, drifting=lambda config: Drifting()):
        return run(tmp_path_factory.mktemp('whole')/'run', speed=EVERY_EPOCH)


def stopped_after(run_dir, epochs:int):
    "A run killed right after writing `epochs` checkpoints (as a crash would leave it)"
    saves = []
    def save_then_die(obj, path):
        _atomic_write(path, lambda f: torch.save(obj, f)); saves.append(Path(path).name)
        if saves.count('last.pt') == epochs: raise RuntimeError('killed')
    with mock.patch.object(L, 'atomic_torch_save', save_then_die), pytest.raises(RuntimeError, match='killed'):
        run(run_dir, speed=EVERY_EPOCH)
    return run_dir


def one_line(error): return len(str(error).splitlines()) == 1


def test_the_toy_run_keeps_an_early_epoch(whole):
    assert (whole['selection'], whole['best_epoch']) == ('mean_val_map', 1)
    assert [h['epoch'] for h in whole['history']] == [1, 2, 3, 4]


@pytest.mark.parametrize('size', [5_000, 200])
def test_damaged_last_stops_with_the_choices(tmp_path, size):
    run_dir = stopped_after(tmp_path/'run', 3)
    last = run_dir/'last.pt'
    last.write_bytes(last.read_bytes()[:size])
    damaged = last.read_bytes()
    with pytest.raises(T.CheckpointError) as e: run(run_dir)
    assert one_line(e.value)
    assert str(e.value).startswith(f"{last} cannot be used (truncated, or not a torch checkpoint); choose "
                                   "on_damaged_last='from_best' (CLI --on-damaged-last from_best) to resume from best.pt's epoch 1")
    assert "on_damaged_last='restart'" in str(e.value)
    assert last.read_bytes() == damaged and not (run_dir/'train.json').exists()  # nothing touched


def test_from_best_resumes_at_the_best_epoch_and_loses_nothing(tmp_path, whole):
    run_dir = stopped_after(tmp_path/'run', 3)
    (run_dir/'last.pt').write_bytes((run_dir/'last.pt').read_bytes()[:5_000])
    resumed = run(run_dir, on_damaged_last='from_best', speed=EVERY_EPOCH)
    assert resumed['history'] == whole['history']  # epoch 1 kept from best.pt, epochs 2-4 trained again to the same numbers
    assert resumed['best_epoch'] == 1 and best_w(run_dir) == pytest.approx(1.6)  # the best epoch's weights are kept
    assert (run_dir/'last.pt.damaged').stat().st_size == 5_000


def test_restart_trains_again_and_keeps_the_old_files(tmp_path, whole):
    run_dir = stopped_after(tmp_path/'run', 3)
    (run_dir/'last.pt').write_bytes((run_dir/'last.pt').read_bytes()[:5_000])
    assert run(run_dir, on_damaged_last='restart')['history'] == whole['history']
    assert (run_dir/'last.pt.damaged').exists() and (run_dir/'best.pt.before_restart').exists()


def test_damaged_best_on_resume(tmp_path):
    run_dir = stopped_after(tmp_path/'run', 3)
    (run_dir/'best.pt').write_bytes((run_dir/'best.pt').read_bytes()[:300])
    with pytest.raises(T.CheckpointError) as e: run(run_dir)
    assert one_line(e.value) and str(e.value).startswith(f"{run_dir/'best.pt'} cannot be used (truncated")
    assert 'its best epoch is lost' in str(e.value)
    (run_dir/'last.pt').write_bytes((run_dir/'last.pt').read_bytes()[:300])
    with pytest.raises(T.CheckpointError) as e: run(run_dir, on_damaged_last='from_best')
    assert str(e.value).startswith(f"{run_dir/'best.pt'} cannot be used") and "use on_damaged_last='restart'" in str(e.value)
    assert (run_dir/'last.pt').exists()  # a choice that cannot be carried out renames nothing


def test_ctrl_c_mid_epoch_keeps_the_last_checkpoint(tmp_path, whole):
    calls, real = [], T.validation_losses
    def interrupted_third(*args):
        calls.append(1)
        if len(calls) == 3: raise KeyboardInterrupt
        return real(*args)
    with mock.patch.object(T, 'validation_losses', interrupted_third), pytest.raises(T.TrainingInterrupted) as e:
        run(tmp_path/'run', speed=EVERY_EPOCH)
    assert isinstance(e.value, KeyboardInterrupt) and (e.value.run_dir, e.value.epoch) == (tmp_path/'run', 2)
    assert str(e.value) == (f"training interrupted: {tmp_path/'run'/'last.pt'} holds epoch 2 of 4; "
                            "run the same command again to resume")
    assert run(tmp_path/'run')['history'] == whole['history']


def test_ctrl_c_at_an_epoch_boundary_saves_that_epoch(tmp_path, whole):
    class InterruptedBar:  # Ctrl-C while the progress bar shows epoch 2: the epoch is finished and consistent
        def __init__(self, iterable, **kwargs): self.iterable, self.shown = iterable, 0
        def __iter__(self): return iter(self.iterable)
        def set_postfix(self, **kwargs):
            self.shown += 1
            if self.shown == 2: raise KeyboardInterrupt
    rare = T.SpeedOptions(checkpoint_seconds=math.inf)  # no checkpoint of its own before the last epoch
    with mock.patch.object(L, 'tqdm', InterruptedBar), pytest.raises(T.TrainingInterrupted) as e:
        run(tmp_path/'run', speed=rare)
    assert e.value.epoch == 2
    assert torch.load(tmp_path/'run'/'last.pt')['state']['epoch'] == 2 and best_w(tmp_path/'run') == pytest.approx(1.6)
    assert run(tmp_path/'run', speed=rare)['history'] == whole['history']


def test_ctrl_c_before_the_first_epoch(tmp_path):
    with mock.patch.object(T, 'teacher_features', mock.Mock(side_effect=KeyboardInterrupt)), \
         pytest.raises(T.TrainingInterrupted) as e:
        run(tmp_path/'run')
    assert e.value.epoch is None and 'no finished epoch' in str(e.value) and one_line(e.value)


def test_cli_score_of_a_damaged_best(tmp_path, capsys):
    from PIL import Image
    from stpm_repro.cli import main
    run(tmp_path/'run')
    Image.new('RGB', (32, 32)).save(tmp_path/'image.png')
    assert main(['score', str(tmp_path/'run'), str(tmp_path/'image.png'), '--device', 'cpu']) == 0
    best = tmp_path/'run'/'best.pt'
    best.write_bytes(best.read_bytes()[:200])
    capsys.readouterr()
    assert main(['score', str(tmp_path/'run'), str(tmp_path/'image.png'), '--device', 'cpu']) == 2
    err = capsys.readouterr().err
    assert err.count('\n') == 1 and str(best) in err and 'Traceback' not in err
