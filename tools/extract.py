r"""Embeds a corpus of audio files into AudioSet-layout TFRecord shards.

  python -m tools.extract --output outputs/my_corpus [--postprocess] INPUT...
  python -m tools.extract --output outputs/fsd --input_csv train.csv \
      --audio_dir audio_train [--label_map class_labels_indices.csv]

INPUT: audio files, directories (searched recursively for audio extensions) or
glob patterns (quote them: '**' recurses). The output directory gets
`embeddings-NNNNN.tfrecord` shards (one SequenceExample per input; uint8 PCA
embeddings with --postprocess, raw float32 otherwise), `manifest.csv` (one row
per input: id, path, status ok/failed, examples, duration, shard, error),
`extract_config.json`, and, for labelled inputs without --label_map, the label
map built from the CSV (`class_labels_indices.csv`). See vggish/manifest.py and
vggish/records.py for the formats.

Re-running the same command resumes: inputs already `ok` are skipped, failed
ones are retried, new shards are added. Ctrl-C (or SIGTERM) finishes the files
in progress, saves them and exits 130; a second Ctrl-C aborts at once (the
unfinished shard is discarded; rerun to resume).

With --label_map, a label that the map lacks (neither a display_name nor a
mid) makes that input fail, with the reason in the manifest; the rest of the
corpus is extracted. Without it, every label of the CSV enters the built map.

A file named on the command line that is missing (or a broken symbolic link)
fails as that input, like a file that cannot be decoded; only a command in
which no input exists at all, or a glob that matches nothing, is a usage error.
A file with NaN/Inf samples fails with their count and first position, unless
--nonfinite zero replaces them with zeros. A file shorter than its header says
(an interrupted copy) is extracted as far as it decodes; the manifest's
`warning` column says so.

Exit status: 0 every input is extracted; 3 some inputs failed (listed in the
manifest; the others are extracted); 2 usage error (one line on stderr);
4 the output could not be written (disk full, permissions; one line on stderr:
everything completed is kept, and rerunning the same command resumes);
130 interrupted.
"""

import os

# Decoding threads each run small matrix products (resampling, mel); letting
# OpenBLAS also fan each one out over every core, next to TensorFlow's own
# threads, makes them several times slower on a busy CPU. Set before numpy
# is imported; an explicit setting in the environment wins.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import signal  # pylint: disable=g-import-not-at-top,wrong-import-position
import sys

from absl import app
from absl import flags
from absl import logging

from vggish import cli
from vggish import corpus
from vggish import manifest
from vggish import workspace
from vggish.pipelines import options

_FLAGS = options.define_flags()
flags.adopt_module_key_flags(options)  # --help lists the shared flags too.
_NUM_WORKERS = flags.DEFINE_integer(
    'num_workers', None, 'Frontend workers (decode, resample, log-mel) at background '
    'priority; default: one per core.', lower_bound=1)
_WORKER_KIND = flags.DEFINE_enum(
    'worker_kind', 'auto', ['auto', 'thread', 'process'],
    'Frontend workers as threads or processes; auto: processes for more than 4 '
    'workers (many cores feeding a GPU), where the GIL limits threads.')
_FRONTEND = flags.DEFINE_enum(
    'frontend', 'numpy', ['numpy', 'tf'],
    "Log-mel frontend: numpy (upstream's float64 computation, the faithful "
    'default) or tf (float32, in-graph on the GPU when there is one: for a GPU '
    'that the numpy frontend cannot keep busy; embeddings differ slightly, see '
    'README "Performance").')
_PRECISION = flags.DEFINE_enum(
    'precision', 'float32', ['float32', 'bfloat16'],
    'Model precision: float32 (faithful, the default) or bfloat16 (about 1.7x '
    'faster on CPUs with AVX512_BF16; embeddings within ~1e-2, see README '
    '"Performance").')
_PROGRESS = flags.DEFINE_bool('progress', True, 'Show progress on stderr.')


class _StopOnSignal:
  """First SIGINT/SIGTERM: finish the files in hand and stop; second: abort."""

  def __init__(self):
    self.requested = False
    self._previous = {}

  def __enter__(self):
    for sig in (signal.SIGINT, signal.SIGTERM):
      self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc_info):
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def _handle(self, signum, frame):
    del frame
    if self.requested:
      raise KeyboardInterrupt
    self.requested = True
    print(f'\n{signal.Signals(signum).name}: finishing the files in progress '
          f'(again to abort)', file=sys.stderr, flush=True)

  def __call__(self):
    return self.requested


def run(args) -> int:
  """Runs the extraction for the parsed flags; returns the exit status."""
  output = _FLAGS.output.value
  if not output:
    raise options.UsageError('--output DIR is required')
  if os.path.exists(output) and not os.path.isdir(output):
    raise options.UsageError(f'--output {output!r} exists and is not a directory')
  params = options.params(_FLAGS)
  items = options.find_inputs(_FLAGS, args)
  # Before the slow TensorFlow import, so that a missing download is reported
  # at once.
  checkpoint = workspace.require_model_file(_FLAGS.checkpoint.value,
                                            workspace.CHECKPOINT_NAME)
  pca_params = None
  if _FLAGS.postprocess.value:
    pca_params = workspace.require_model_file(
        _FLAGS.pca_params.value, workspace.PCA_PARAMS_NAME)
  try:
    os.makedirs(output, exist_ok=True)
    items, label_map = corpus.prepare_labels(items, output, _FLAGS.label_map.value)
  except OSError as e:
    raise manifest.OutputWriteError.from_os_error(e, output) from e
  if label_map is not None:
    logging.info('label map: %d classes', len(label_map))

  # Imported here: TensorFlow takes seconds to import, and usage errors above
  # should not wait for it.
  from vggish import extractor  # pylint: disable=g-import-not-at-top
  with _StopOnSignal() as stop:
    result = extractor.extract(
        items, output, checkpoint_path=checkpoint,
        postprocess=_FLAGS.postprocess.value, pca_params_path=pca_params,
        params=params, records_per_shard=_FLAGS.records_per_shard.value,
        batch_size=_FLAGS.batch_size.value, num_workers=_NUM_WORKERS.value,
        worker_kind=_WORKER_KIND.value, frontend=_FRONTEND.value,
        precision=_PRECISION.value,
        nonfinite=_FLAGS.nonfinite.value, allow_tf32=_FLAGS.allow_tf32.value,
        show_progress=_PROGRESS.value, should_stop=stop)
  return options.report(result, 'rerun the same command')


def main(argv):
  try:
    return run(argv[1:])
  except manifest.OutputWriteError as e:
    # Disk full, permissions: the environment, not the command; one line.
    cli.report_error(e)
    return options.EXIT_OUTPUT
  except (ValueError, workspace.MissingModelFileError) as e:
    # User mistakes (bad flags, no inputs, missing or wrong model files, an
    # output directory made with other settings): one line, no traceback.
    return cli.report_error(e)
  except KeyboardInterrupt:
    print('aborted: the unfinished shard was discarded; rerun the same command '
          'to resume', file=sys.stderr)
    return options.EXIT_INTERRUPTED



if __name__ == '__main__':
  app.run(cli.exit_fast(main), flags_parser=cli.parse_flags)
