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

  python -m tools.benchmark --whole_process [--num_clips 400]

Whole processes: tools.extract --postprocess against the original release's
pipeline (TF1 slim graph, resampy, one session run per file) on NUM_CLIPS
5 s clips at 44.1 kHz, alternated; the one-file command; and the start-up
phases (imports, model build with the checkpoint, first trace). See
vggish/process_benchmark.py.

  python -m tools.benchmark --compare_fast_modes

How far the opt-in fast modes, --frontend tf (float32 log-mel, in-graph) and
--precision bfloat16, move log-mel examples, raw embeddings and postprocessed
bytes from the faithful path, on the golden inputs' audio and a generated
corpus (vggish/fidelity.py), and the model's speed in bfloat16 against
float32, measured side by side.

  python -m tools.benchmark --finetune [--finetune_clips 100,400] [--seconds 10]

Fine-tuning from the example store: training examples/s with --freeze conv
and --freeze none (the whole network), and each process's peak RSS for every
corpus size, to show that memory stays flat as the corpus grows (see
classifier/finetune_benchmark.py). --batch_size is the training batch.

One core: taskset -c 0 python -m tools.benchmark. With a GPU the device line
names it, the ceiling sweep adds batch sizes 128-512, and --frontend tf
measures (c) with the in-graph frontend.
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
_FRONTEND = flags.DEFINE_enum(
    'frontend', 'numpy', ['numpy', 'tf'], 'The log-mel frontend of extract (c).')
_WHOLE_PROCESS = flags.DEFINE_bool(
    'whole_process', False, 'Instead: whole-process tools.extract against the '
    'original pipeline, and start-up phases (vggish/process_benchmark.py).')
_COMPARE = flags.DEFINE_bool(
    'compare_fast_modes', False, 'Instead: how far --frontend tf and --precision '
    'bfloat16 move embeddings and bytes from the faithful path (vggish/fidelity.py).')
_PCA_PARAMS = flags.DEFINE_string(
    'pca_params', None, 'PCA file for --whole_process and --compare_fast_modes '
    '(default: a synthetic one; the timings do not depend on it).')
_FINETUNE = flags.DEFINE_bool(
    'finetune', False, 'Instead: fine-tuning examples/s (--freeze conv and none) '
    'and peak RSS per corpus size, streamed from the example store '
    '(classifier/finetune_benchmark.py).')
_FINETUNE_CLIPS = flags.DEFINE_list(
    'finetune_clips', ['100', '400'], 'Corpus sizes of --finetune (each >= 16).')
_FINETUNE_EPOCHS = flags.DEFINE_integer(
    'finetune_epochs', 2, 'Epochs per --finetune run; the first is not timed.',
    lower_bound=2)
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
  if _FINETUNE.value:
    with tempfile.TemporaryDirectory(prefix='vggish_benchmark_') as work_dir:
      return _finetune_benchmark(_WORK_DIR.value or work_dir)
  if _WHOLE_PROCESS.value or _COMPARE.value:
    with tempfile.TemporaryDirectory(prefix='vggish_benchmark_') as work_dir:
      work_dir = _WORK_DIR.value or work_dir
      if _WHOLE_PROCESS.value:
        return _whole_process(work_dir)
      return _compare_fast_modes(work_dir)
  from vggish import benchmark  # pylint: disable=g-import-not-at-top
  kwargs = dict(num_clips=_NUM_CLIPS.value, seconds=_SECONDS.value,
                num_other=_NUM_OTHER.value, batch_sizes=batch_sizes,
                extract_batch_size=_BATCH_SIZE.value, num_workers=_NUM_WORKERS.value,
                num_rounds=_NUM_ROUNDS.value, checkpoint_path=_CHECKPOINT.value,
                frontend=_FRONTEND.value)
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


def _finetune_benchmark(work_dir):
  from classifier import finetune_benchmark  # pylint: disable=g-import-not-at-top
  try:
    sizes = [int(n) for n in _FINETUNE_CLIPS.value]
  except ValueError:
    print(f'error: --finetune_clips must be integers, got {_FINETUNE_CLIPS.value}',
          file=sys.stderr)
    return 2
  os.makedirs(work_dir, exist_ok=True)
  checkpoint = _model_files(work_dir)[0]
  try:
    result = finetune_benchmark.run_finetune_benchmark(
        work_dir, checkpoint, corpus_sizes=sizes, seconds=_SECONDS.value,
        batch_size=_BATCH_SIZE.value, epochs=_FINETUNE_EPOCHS.value)
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
  kwargs = dict(num_clips=_NUM_CLIPS.value, seconds=_SECONDS.value,
                num_other=_NUM_OTHER.value, num_rounds=_whole_job_rounds(),
                batch_size=_BATCH_SIZE.value, checkpoint_path=_CHECKPOINT.value)
  if _WORK_DIR.value:
    result = beam_benchmark.run_beam_benchmark(_WORK_DIR.value, **kwargs)
  else:
    with tempfile.TemporaryDirectory(prefix='vggish_benchmark_') as work_dir:
      result = beam_benchmark.run_beam_benchmark(work_dir, **kwargs)
  print(result.report())
  return 0


def _whole_job_rounds() -> int:
  """Rounds of the whole-job modes: each runs every job on the whole corpus, so 2
  unless --num_rounds is given."""
  return _NUM_ROUNDS.value if flags.FLAGS['num_rounds'].present else 2


def _model_files(work_dir):
  """The checkpoint and PCA file given, or random ones written in `work_dir`."""
  import numpy as np  # pylint: disable=g-import-not-at-top
  from vggish import checkpoint, slim_compat  # pylint: disable=g-import-not-at-top
  ckpt, pca = _CHECKPOINT.value, _PCA_PARAMS.value
  rng = np.random.RandomState(0)
  if ckpt is None:
    # Random weights cost what the real ones cost; scaled like He init so
    # that embeddings stay finite.
    ckpt = os.path.join(work_dir, 'random_vggish.ckpt')
    weights = {}
    for name, shape in checkpoint.SLIM_VARIABLES.items():
      fan_in = int(np.prod(shape[:-1])) if len(shape) > 1 else 1
      scale = np.sqrt(2.0 / fan_in) if len(shape) > 1 else 0.01
      weights[name] = (rng.standard_normal(shape) * scale).astype(np.float32)
    slim_compat.write_slim_checkpoint(weights, ckpt, version=1)
  if pca is None:
    pca = os.path.join(work_dir, 'random_pca.npz')
    rotation, _ = np.linalg.qr(rng.standard_normal((128, 128)))
    np.savez(pca, pca_eigen_vectors=rotation, pca_means=rng.standard_normal((128, 1)))
  return ckpt, pca


def _whole_process(work_dir):
  from vggish import benchmark, process_benchmark  # pylint: disable=g-import-not-at-top
  paths = benchmark.make_corpus(os.path.join(work_dir, 'corpus'), _NUM_CLIPS.value,
                                _SECONDS.value, num_other=_NUM_OTHER.value or 0)
  ckpt, pca = _model_files(work_dir)
  result = process_benchmark.run_whole_process(work_dir, paths, ckpt, pca,
                                               num_rounds=_whole_job_rounds())
  print(result.report())
  return 0


def _compare_fast_modes(work_dir):
  import shutil  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
  import soundfile  # pylint: disable=g-import-not-at-top
  from vggish import benchmark, embedder, fidelity  # pylint: disable=g-import-not-at-top
  ckpt, pca = _model_files(work_dir)
  faithful = embedder.Embedder.from_checkpoint(ckpt, _BATCH_SIZE.value)
  fast = embedder.Embedder.from_checkpoint(ckpt, _BATCH_SIZE.value, precision='bfloat16')
  golden = os.path.join(work_dir, 'golden')
  os.makedirs(golden, exist_ok=True)
  source = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        'tests', 'golden', 'audio')
  for name in sorted(os.listdir(source)) if os.path.isdir(source) else []:
    if name.endswith('.npy'):
      soundfile.write(os.path.join(golden, name[:-4] + '.wav'),
                      np.load(os.path.join(source, name)), 16000, subtype='DOUBLE')
    else:
      shutil.copy(os.path.join(source, name), golden)
  generated = benchmark.make_corpus(os.path.join(work_dir, 'corpus'), _NUM_CLIPS.value,
                                    _SECONDS.value, _NUM_OTHER.value)
  print(f'checkpoint {ckpt}, PCA {pca}')
  inputs = ([('golden inputs', [golden])] if os.listdir(golden) else []) + [
      ('generated corpus', generated)]
  for mode, model, frontend in (('--frontend tf', faithful, 'tf'),
                                ('--precision bfloat16', fast, 'numpy')):
    for name, paths in inputs:
      print(fidelity.compare(paths, pca, faithful, model, frontend).report(
          f'{mode}, {name}'))
  rates = benchmark.side_by_side_rates([faithful, fast])
  print(f'model alone, batch {_BATCH_SIZE.value}: float32 {rates[0]:.1f} examples/s, '
        f'bfloat16 {rates[1]:.1f} examples/s ({rates[1] / rates[0]:.2f}x)')
  return 0


if __name__ == '__main__':
  app.run(main)
