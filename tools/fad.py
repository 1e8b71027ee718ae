r"""Fréchet Audio Distance of an eval set against a background set, as the reference computes it.

  python -m tools.fad --background real/ --eval generated/
  python -m tools.fad --background real/ --background_stats real_stats.npz \
      --eval generated/ --json --per_file per_file.csv
  python -m tools.fad --background_stats real_stats.npz --eval generated/
  python -m tools.fad --resample --background real_44k_stereo/ --eval generated/

--background / --eval: audio files, folders (searched recursively), glob
patterns (quote them) or list files (any non-audio file: one path per line,
relative to the list's folder, as the reference's input lists); repeat the
flag for several.

Default (reference) mode reproduces the reference implementation's numbers:
16 kHz mono WAVs read as int16, `samples / max(0.1, max(samples))`, 1 s
windows every 0.5 s, raw fc2 embeddings (no PCA), float64 statistics stored
as float32, scipy's sqrtm. Other files are skipped with a reason; --resample
reads any rate, channel count and format instead (channels averaged,
resampled to 16 kHz), and its FADs are then not comparable with published
ones. README.md "Fréchet Audio Distance" has the details.

--background_stats / --eval_stats FILE.npz: statistics cache. Written after
the audio is embedded and read on the next run instead of embedding again,
unless the audio files, the checkpoint or the mode changed (then recomputed).
Without the audio flag, the file alone is used; so is a statistics file of
the reference implementation (a TFRecord with mu and sigma), which is only
read.

Prints the FAD on stdout (--json: one JSON object with fad,
background_embeddings, eval_embeddings, file counts, mode, the statistics
files and the skipped files with their reasons). --per_file CSV: each eval
file's own FAD against the background (file, embeddings, seconds, fad, note).

Exit status: 0 computed (files that could not be used are skipped, listed on
stderr and in --json); 2 usage error or no FAD (one line on stderr).
"""

import os

# Reading workers run small matrix products (log-mel); see tools/extract.py.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import json  # pylint: disable=g-import-not-at-top,wrong-import-position
import sys

from absl import app
from absl import flags
from absl import logging

from vggish import cli
from vggish import extras
from vggish.params import DEFAULT_BATCH_SIZE

_BACKGROUND = flags.DEFINE_multi_string(
    'background', None, 'Background audio: files, folders, globs or list files (repeatable).')
_EVAL = flags.DEFINE_multi_string(
    'eval', None, 'Eval audio: files, folders, globs or list files (repeatable).')
_BACKGROUND_STATS = flags.DEFINE_string(
    'background_stats', None, 'Background statistics (.npz): read when they fit, else written.')
_EVAL_STATS = flags.DEFINE_string(
    'eval_stats', None, 'Eval statistics (.npz): read when they fit, else written.')
_CHECKPOINT = flags.DEFINE_string(
    'checkpoint', None, 'VGGish checkpoint (slim V1/V2 or .weights.h5); default: '
    'vggish_model.ckpt in the workspace checkpoint directory.')
_RESAMPLE = flags.DEFINE_bool(
    'resample', False, 'Read any rate, channel count and format (averaged to mono, resampled '
    'to 16 kHz). Not comparable with published FADs.')
_JSON = flags.DEFINE_bool('json', False, 'Print one JSON object instead of the number.')
_PER_FILE = flags.DEFINE_string(
    'per_file', None, "CSV of each eval file's FAD against the background.")
_BATCH_SIZE = flags.DEFINE_integer('batch_size', DEFAULT_BATCH_SIZE, 'Examples per model call.',
                                   lower_bound=1)
_NUM_WORKERS = flags.DEFINE_integer(
    'num_workers', None, 'Threads reading audio ahead of the model (default: one per core).',
    lower_bound=1)
_PROGRESS = flags.DEFINE_bool('progress', True, 'Show progress on stderr.')


def main(argv):
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments {argv[1:]}: give the sets with --background and '
                     '--eval')
  if not (_BACKGROUND.value or _BACKGROUND_STATS.value):
    raise ValueError('give --background (audio) or --background_stats (a statistics file)')
  if not (_EVAL.value or _EVAL_STATS.value):
    raise ValueError('give --eval (audio) or --eval_stats (a statistics file)')
  for flag in (_BACKGROUND_STATS, _EVAL_STATS):
    # An existing file may be the reference implementation's (a TFRecord, read only).
    if (flag.value is not None and not flag.value.endswith('.npz')
        and not os.path.isfile(flag.value)):
      raise ValueError(f'--{flag.name}: statistics are written as .npz; got {flag.value!r}')
  if _PER_FILE.value is not None:
    if not _PER_FILE.value.endswith('.csv'):
      raise ValueError(f'--per_file must end in .csv, got {_PER_FILE.value!r}')
    if not _EVAL.value:
      raise ValueError('--per_file needs the eval audio (--eval), not only its statistics')
  from vggish import files as files_lib  # pylint: disable=g-import-not-at-top
  from vggish.analysis import fad as fad_lib  # pylint: disable=g-import-not-at-top
  from vggish.analysis import fad_input  # pylint: disable=g-import-not-at-top
  if _PER_FILE.value is not None:
    files_lib.check_output_file(_PER_FILE.value, 'the per-file FADs')
  try:
    # Before any audio is read: scipy gives the square root (and reads the WAVs).
    extras.require('scipy.linalg', 'fad', 'the Fréchet Audio Distance')
  except extras.MissingExtraError as e:
    return cli.report_error(e)
  result = fad_lib.fad(
      _BACKGROUND.value, _EVAL.value, background_stats=_BACKGROUND_STATS.value,
      eval_stats=_EVAL_STATS.value, checkpoint_path=_CHECKPOINT.value,
      mode=fad_input.RESAMPLE if _RESAMPLE.value else fad_input.REFERENCE,
      per_file=_PER_FILE.value is not None, batch_size=_BATCH_SIZE.value,
      num_workers=_NUM_WORKERS.value, show_progress=_PROGRESS.value)
  if _PER_FILE.value is not None:
    fad_lib.write_per_file(result.eval.files, _PER_FILE.value)
    logging.info('wrote %s', _PER_FILE.value)
  skipped = result.background.skipped + result.eval.skipped
  if skipped:
    logging.warning('%d file(s) skipped (listed above%s)', len(skipped),
                    ' and in the JSON' if _JSON.value else '')
  if _JSON.value:
    print(json.dumps(result.summary(), indent=2))
  else:
    print(repr(result.fad))
  sys.stdout.flush()
  return 0


if __name__ == '__main__':
  app.run(cli.exit_fast(cli.exit_on_user_error(main)), flags_parser=cli.parse_flags)
