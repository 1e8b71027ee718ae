r"""Measures corpus extraction speed against the upstream way and the model alone.

  python -m tools.benchmark [--num_clips 200] [--seconds 5] [--checkpoint PATH]

Builds a synthetic corpus in a temporary directory (NUM_CLIPS clips at 44.1 kHz
plus NUM_CLIPS/5 at 8-96 kHz, mono and stereo) and, in one process, measures
examples per second of (a) an upstream-style sequential pipeline (resampy,
numpy frontend, one model call per file), (b) the model alone at its best batch
size (the ceiling), (c) `tools.extract`'s pipeline end to end, in interleaved
rounds. Prints c/a, c/b and peak RSS (see vggish/benchmark.py). Without --checkpoint the model is
randomly initialised, which costs the same.

  python -m tools.benchmark --beam [--num_clips 300]

Times whole jobs instead, each in a fresh process: tools.extract, and
tools.extract_beam in one process and with 1 and 2 local worker processes,
with the ratios, Beam's scaling and each job's fixed cost (a one-file job).
"""

import os

# Decoding threads each run small matrix products (resampling, mel); letting
# OpenBLAS also fan each one out over every core, next to TensorFlow's own
# threads, makes them several times slower on a busy CPU. Set before numpy
# is imported; an explicit setting in the environment wins.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import sys  # pylint: disable=g-import-not-at-top,wrong-import-position
import tempfile

from absl import app
from absl import flags

from vggish import cli
from vggish import extractor

_NUM_CLIPS = flags.DEFINE_integer('num_clips', 200, 'Clips at 44.1 kHz.', lower_bound=1)
_NUM_OTHER = flags.DEFINE_integer(
    'num_other', None, 'Clips at other rates; default num_clips // 5.', lower_bound=0)
_SECONDS = flags.DEFINE_float('seconds', 5.0, 'Length of each clip.', lower_bound=1.0)
_BATCH_SIZES = flags.DEFINE_list(
    'batch_sizes', ['8', '16', '32', '64'], 'Batch sizes tried for the ceiling (b).')
_BATCH_SIZE = flags.DEFINE_integer(
    'batch_size', extractor.DEFAULT_BATCH_SIZE, 'Batch size of extract (c).',
    lower_bound=1)
_NUM_WORKERS = flags.DEFINE_integer(
    'num_workers', None, 'Decoding threads of extract (c).', lower_bound=1)
_NUM_ROUNDS = flags.DEFINE_integer(
    'num_rounds', 4, 'Interleaved rounds of (a), (b), (c) (the load of a shared '
    'machine drifts).', lower_bound=1)
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'Weights to load (default: random initialisation).')
_BEAM = flags.DEFINE_bool(
    'beam', False, 'Instead: whole-job examples/s of tools.extract against '
    'tools.extract_beam in one process, and with 1 and 2 local worker processes '
    '(needs the beam extra; see vggish/pipelines/beam_benchmark.py).')
_WORK_DIR = flags.DEFINE_string(
    'work_dir', None, 'Scratch directory (default: a temporary one, deleted).')


def main(argv):
  if len(argv) > 1:
    print(f'error: unexpected arguments {argv[1:]}', file=sys.stderr)
    return 2
  try:
    batch_sizes = [int(b) for b in _BATCH_SIZES.value]
  except ValueError:
    print(f'error: --batch_sizes must be integers, got {_BATCH_SIZES.value}',
          file=sys.stderr)
    return 2
  if _BEAM.value:
    return _beam_benchmark()
  from vggish import benchmark  # pylint: disable=g-import-not-at-top
  kwargs = dict(num_clips=_NUM_CLIPS.value, seconds=_SECONDS.value,
                num_other=_NUM_OTHER.value, batch_sizes=batch_sizes,
                extract_batch_size=_BATCH_SIZE.value, num_workers=_NUM_WORKERS.value,
                num_rounds=_NUM_ROUNDS.value, checkpoint_path=_CHECKPOINT.value)
  try:
    if _WORK_DIR.value:
      result = benchmark.run_benchmark(_WORK_DIR.value, **kwargs)
    else:
      with tempfile.TemporaryDirectory(prefix='vggish_benchmark_') as work_dir:
        result = benchmark.run_benchmark(work_dir, **kwargs)
  except ValueError as e:
    return cli.report_error(e)
  print(result.report())
  return 0


def _beam_benchmark():
  from vggish import extras  # pylint: disable=g-import-not-at-top
  from vggish.pipelines import beam_benchmark  # pylint: disable=g-import-not-at-top
  try:
    extras.require('apache_beam', 'beam', 'tools.benchmark --beam')
  except extras.MissingExtraError as e:
    return cli.report_error(e)
  # Each round runs every job on the whole corpus: 2 unless asked otherwise.
  num_rounds = _NUM_ROUNDS.value if flags.FLAGS['num_rounds'].present else 2
  kwargs = dict(num_clips=_NUM_CLIPS.value, seconds=_SECONDS.value,
                num_other=_NUM_OTHER.value, num_rounds=num_rounds,
                batch_size=_BATCH_SIZE.value, checkpoint_path=_CHECKPOINT.value)
  if _WORK_DIR.value:
    result = beam_benchmark.run_beam_benchmark(_WORK_DIR.value, **kwargs)
  else:
    with tempfile.TemporaryDirectory(prefix='vggish_benchmark_') as work_dir:
      result = beam_benchmark.run_beam_benchmark(work_dir, **kwargs)
  print(result.report())
  return 0


if __name__ == '__main__':
  app.run(main)
