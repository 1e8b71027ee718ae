r"""Writes a table of clip embeddings (CSV, Parquet or NPZ) from TFRecords.

  python -m tools.table --output clips.parquet outputs/my_corpus
  python -m tools.table --output clips.csv --pooling mean_std --normalize l2 \
      'audioset_v1_embeddings/bal_train/*.tfrecord' \
      --label_map class_labels_indices.csv
  python -m tools.table --output examples.npz --pooling none RECORDS...

RECORDS: TFRecord files, glob patterns (quote them) or directories (their
*.tfrecord files): ours from tools.extract (uint8 or float32) or AudioSet's
released ones. uint8 embeddings are dequantized (`q * 4/255 - 2`).

The format follows --output's extension: .csv, .parquet (needs pyarrow:
pip install -e ".[analysis]") or .npz (one array per column). One row per
clip: id, labels (display names joined by ';' when a label map is known,
else class indices), duration, num_examples, then emb_0 ... emb_127 (and
std_0 ... std_127 for --pooling mean_std). --pooling none writes one row per
example, with its index (`example`) and `start_seconds`. The label map is
--label_map, else the class_labels_indices.csv that tools.extract wrote beside
the records, if there is one. See vggish/analysis/tables.py for the details
(population std, what --normalize l2 scales, clips without examples).

The table is written atomically: --output is the whole table or untouched.

Exit status: 0 written; 2 usage error (no matching records, an unknown
extension, a missing output directory, pyarrow missing for .parquet; one line
on stderr).
"""


from absl import app
from absl import flags
from absl import logging

from vggish import cli
from vggish import extras
from vggish.analysis import tables

_OUTPUT = flags.DEFINE_string(
    'output', None, 'Table file: .csv, .parquet or .npz (its directory must exist).')
_POOLING = flags.DEFINE_enum(
    'pooling', 'mean', tables.POOLINGS,
    "Over each clip's examples: mean, max, std (population), mean_std (emb_* "
    'means, then std_* deviations), or none (one row per example).')
_NORMALIZE = flags.DEFINE_enum(
    'normalize', 'none', tables.NORMALIZATIONS,
    "l2: scale each row's feature columns to unit length, after pooling.")
_LABEL_MAP = flags.DEFINE_string(
    'label_map', None,
    'class_labels_indices.csv naming the label indices. Default: the one '
    'beside the records, if any; else labels are indices.')

flags.mark_flags_as_required(['output'])


def main(argv):
  inputs = argv[1:]
  if not inputs:
    raise ValueError('give RECORDS: TFRecord files, globs or directories to '
                     'tabulate')
  try:
    # A bad --output is refused before TensorFlow's slow import and the read.
    fmt = tables.check_output(_OUTPUT.value)
  except extras.MissingExtraError as e:
    return cli.report_error(e)
  from vggish.analysis import clips as clips_lib  # pylint: disable=g-import-not-at-top
  clips = clips_lib.load_clips(inputs, label_map=_LABEL_MAP.value)
  table = tables.embedding_table(clips, pooling=_POOLING.value,
                                 normalize=_NORMALIZE.value)
  tables.write_table(table, _OUTPUT.value)
  names = 'names' if clips.label_map is not None else 'indices'
  logging.info('wrote %s: %d rows (%d clips, %d examples, pooling %s, labels as '
               '%s), %s', _OUTPUT.value, len(table), len(clips),
               int(clips.num_examples.sum()), _POOLING.value, names, fmt)
  return 0



if __name__ == '__main__':
  app.run(cli.exit_fast(cli.exit_on_user_error(main)), flags_parser=cli.parse_flags)
