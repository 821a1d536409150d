"""Execute notebooks in place and keep their outputs, running the cells `nbdev_test --flags slow` runs.

The notebooks are committed with their outputs so that a reader sees the results on GitHub; this is how they are
made. Cells flagged `#| gpu` (or any flag of `--skip`) and `#| eval: false` are left as they are, exactly as
`nbdev_test` skips them. A notebook that fails is not written, and the script exits 1 naming it.

    .venv/bin/python tests/execute_notebooks.py nbs/02_losses.ipynb nbs/05_fusion.ipynb   # then nbdev_clean
"""
import argparse, os, sys, time
from pathlib import Path

from execnb.nbio import read_nb, write_nb
from execnb.shell import CaptureShell
from fastcore.foundation import working_directory
from nbdev.process import NBProcessor


def execute_in_place(path:Path, skip:set)->float:
    "Run `path`'s cells as `nbdev_test` does (skipping `skip` flags), write their outputs into the file; seconds taken"
    processed = NBProcessor(path, process=True).nb
    def _no_eval(cell):
        directives = getattr(cell, 'directives_', {}) or {}
        return (cell.cell_type != 'code' or 'nbdev_export(' in cell.source or
                directives.get('eval:', [''])[0].lower() == 'false' or bool(skip & directives.keys()))
    start, shell = time.time(), CaptureShell(path)
    with working_directory(path.parent): shell.run_all(processed, exc_stop=True, preproc=_no_eval)
    original = read_nb(path)
    if len(original.cells) != len(processed.cells): raise RuntimeError(f"{path}: cell count changed while processing")
    for cell, ran in zip(original.cells, processed.cells):
        if cell.cell_type == 'code' and not _no_eval(ran): cell['outputs'] = ran.get('outputs', [])
    write_nb(original, path)
    return time.time() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument('notebooks', nargs='+', type=Path)
    parser.add_argument('--skip', nargs='*', default=['gpu'], help='flags of cells not to run (default: gpu)')
    args = parser.parse_args(argv)
    os.environ['IN_TEST'] = '1'
    failed = []
    for path in args.notebooks:
        try: print(f"{path}: {execute_in_place(path.resolve(), set(args.skip)):.0f} s", flush=True)
        except Exception as e: failed.append(path); print(f"{path}: FAILED ({type(e).__name__}: {e})", file=sys.stderr, flush=True)
    if failed: sys.exit(f"not written: {', '.join(map(str, failed))}")


if __name__ == '__main__': main()
