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

import dataclasses  # pylint: disable=g-import-not-at-top,wrong-import-position
import signal
import sys

from absl import app
from absl import flags
from absl import logging

from vggish import audio_io
from vggish import cli
from vggish import corpus
from vggish import manifest
from vggish import workspace
from vggish.params import DEFAULT_PARAMS, SHORT_CLIP_POLICIES

EXIT_OK = 0
EXIT_USAGE = cli.EXIT_USAGE
EXIT_SOME_FAILED = 3
EXIT_OUTPUT = 4
EXIT_INTERRUPTED = 130

_OUTPUT = flags.DEFINE_string('output', None, 'Output directory (created if needed).')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'VGGish checkpoint (slim V1/V2 or .weights.h5); default: '
    'vggish_model.ckpt in the workspace checkpoint directory.')
_PCA_PARAMS = flags.DEFINE_string(
    'pca_params', None, 'PCA parameters for --postprocess; default: '
    'vggish_pca_params.npz in the workspace checkpoint directory.')
_POSTPROCESS = flags.DEFINE_bool(
    'postprocess', False, 'Write PCA-whitened 8-bit embeddings (the released '
    'AudioSet features) instead of raw float32 embeddings.')
_INPUT_CSV = flags.DEFINE_string(
    'input_csv', None, 'CSV with a `fname` column and optionally `labels` '
    '(comma-separated names), Freesound style.')
_AUDIO_DIR = flags.DEFINE_string(
    'audio_dir', None, 'Directory the CSV\'s fname values are relative to; '
    'default: the CSV\'s directory.')
_LABEL_MAP = flags.DEFINE_string(
    'label_map', None, 'Label map in AudioSet class_labels_indices.csv format '
    '(index,mid,display_name); default: built from the CSV\'s labels.')
_HOP_SECONDS = flags.DEFINE_float(
    'hop_seconds', DEFAULT_PARAMS.example_hop_seconds,
    'Seconds between example starts (a multiple of 0.01; 0.96 = no overlap, '
    'as upstream).')
_SHORT_CLIP_POLICY = flags.DEFINE_enum(
    'short_clip_policy', 'pad', SHORT_CLIP_POLICIES,
    'Clips shorter than one example (0.975 s): pad with zeros, repeat, or drop '
    '(drop records them as failed).')
_RECORDS_PER_SHARD = flags.DEFINE_integer(
    'records_per_shard', 1000, 'Inputs per TFRecord shard.', lower_bound=1)
_BATCH_SIZE = flags.DEFINE_integer(
    'batch_size', 32, 'Examples per model call.', lower_bound=1)
_NUM_WORKERS = flags.DEFINE_integer(
    'num_workers', None, 'Decoding threads; default: one per two cores, 1 to 4.',
    lower_bound=1)
_NONFINITE = flags.DEFINE_enum(
    'nonfinite', 'fail', audio_io.NONFINITE_POLICIES,
    'Audio with NaN/Inf samples: fail the file (reason in the manifest), or '
    'replace them with zeros (a warning in the manifest).')
_ALLOW_TF32 = flags.DEFINE_bool(
    'allow_tf32', False, 'Let Ampere+ GPUs compute in TensorFloat-32: faster, '
    'but embeddings move by ~1e-3 and bytes by more than one step. Off: '
    'faithful float32.')
_PROGRESS = flags.DEFINE_bool('progress', True, 'Show progress on stderr.')


class UsageError(ValueError):
  """A mistake in the command line."""


def _params():
  hop = _HOP_SECONDS.value
  frames = hop * DEFAULT_PARAMS.features_sample_rate
  if not hop > 0 or round(frames) < 1 or abs(frames - round(frames)) > 1e-6:
    raise UsageError(
        f'--hop_seconds must be a positive multiple of '
        f'{DEFAULT_PARAMS.stft_hop_seconds} s (the frame hop), got {hop}')
  return dataclasses.replace(DEFAULT_PARAMS, example_hop_seconds=hop,
                             short_clip_policy=_SHORT_CLIP_POLICY.value)


def _find_inputs(args):
  if not args and not _INPUT_CSV.value:
    raise UsageError('give INPUT files, directories or globs, or --input_csv')
  if _AUDIO_DIR.value and not _INPUT_CSV.value:
    raise UsageError('--audio_dir needs --input_csv')
  items = corpus.discover_inputs(args) if args else []
  if _INPUT_CSV.value:
    items += corpus.read_input_csv(_INPUT_CSV.value, _AUDIO_DIR.value)
  if not items:
    raise UsageError(f'no audio files found in {" ".join(args)}')
  corpus.check_some_exist(items)
  ids = {}
  for item in items:
    if item.video_id in ids and ids[item.video_id] != item.path:
      raise UsageError(
          f'two inputs would get the same id {item.video_id!r}: '
          f'{ids[item.video_id]!r} and {item.path!r}')
    ids[item.video_id] = item.path
  return items


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
  if not _OUTPUT.value:
    raise UsageError('--output DIR is required')
  if os.path.exists(_OUTPUT.value) and not os.path.isdir(_OUTPUT.value):
    raise UsageError(f'--output {_OUTPUT.value!r} exists and is not a directory')
  params = _params()
  items = _find_inputs(args)
  # Before the slow TensorFlow import, so that a missing download is reported
  # at once.
  checkpoint = workspace.require_model_file(_CHECKPOINT.value, workspace.CHECKPOINT_NAME)
  pca_params = None
  if _POSTPROCESS.value:
    pca_params = workspace.require_model_file(
        _PCA_PARAMS.value, workspace.PCA_PARAMS_NAME)
  try:
    os.makedirs(_OUTPUT.value, exist_ok=True)
    items, label_map = corpus.prepare_labels(items, _OUTPUT.value, _LABEL_MAP.value)
  except OSError as e:
    raise manifest.OutputWriteError.from_os_error(e, _OUTPUT.value) from e
  if label_map is not None:
    logging.info('label map: %d classes', len(label_map))

  # Imported here: TensorFlow takes seconds to import, and usage errors above
  # should not wait for it.
  from vggish import extractor  # pylint: disable=g-import-not-at-top
  with _StopOnSignal() as stop:
    result = extractor.extract(
        items, _OUTPUT.value, checkpoint_path=checkpoint,
        postprocess=_POSTPROCESS.value, pca_params_path=pca_params, params=params,
        records_per_shard=_RECORDS_PER_SHARD.value, batch_size=_BATCH_SIZE.value,
        num_workers=_NUM_WORKERS.value, nonfinite=_NONFINITE.value,
        allow_tf32=_ALLOW_TF32.value, show_progress=_PROGRESS.value,
        should_stop=stop)
  print(f'{result.output_dir}: {result.num_ok} files extracted '
        f'({result.num_examples} embeddings, {result.audio_seconds:.1f} s of audio '
        f'in {result.wall_seconds:.1f} s), {result.num_failed} failed, '
        f'{result.num_skipped} already done; shards written: {len(result.shards)}')
  if result.warnings:
    print(f'{len(result.warnings)} extracted input(s) have a warning (e.g. '
          f'{result.warnings[0][0]}: {result.warnings[0][1]}); see the warning '
          f'column of {result.output_dir}/manifest.csv', file=sys.stderr)
  if result.interrupted:
    print('interrupted: rerun the same command to resume', file=sys.stderr)
    return EXIT_INTERRUPTED
  if result.num_failed:
    print(f'{result.num_failed} input(s) failed; reasons in '
          f'{result.output_dir}/manifest.csv (rerun to retry them)', file=sys.stderr)
    return EXIT_SOME_FAILED
  return EXIT_OK


def main(argv):
  try:
    return run(argv[1:])
  except manifest.OutputWriteError as e:
    # Disk full, permissions: the environment, not the command; one line.
    cli.report_error(e)
    return EXIT_OUTPUT
  except (ValueError, workspace.MissingModelFileError) as e:
    # User mistakes (bad flags, no inputs, missing or wrong model files, an
    # output directory made with other settings): one line, no traceback.
    return cli.report_error(e)
  except KeyboardInterrupt:
    print('aborted: the unfinished shard was discarded; rerun the same command '
          'to resume', file=sys.stderr)
    return EXIT_INTERRUPTED


def parse_flags(argv):
  """absl's parser, but a bad flag is a one-line usage error with exit status 2."""
  try:
    return flags.FLAGS(argv)
  except flags.Error as e:
    print(f'error: {e}', file=sys.stderr)
    sys.exit(EXIT_USAGE)


if __name__ == '__main__':
  app.run(main, flags_parser=parse_flags)
