r"""Finds near-duplicate clips (whole or sub-clip) in TFRecords; writes the pairs as CSV.

  python -m tools.duplicates --output pairs.csv outputs/my_corpus
  python -m tools.duplicates --output pairs.csv --threshold 0.95 \
      'train/*.tfrecord' 'dev/*.tfrecord'
  python -m classifier.train --group_duplicates pairs.csv ...   # one split per group

RECORDS: TFRecord files, glob patterns (quote them) or directories (their
*.tfrecord files): ours (uint8 or float32, one example hop) or AudioSet's.

Two clips are paired when, at some alignment, their overlapping examples
(at least --min_examples of them, or all of the shorter clip's) have a mean
cosine similarity >= --threshold: a copy, a shifted, re-encoded or
gain-changed copy, or a cut-out that lies inside the other clip
(vggish/analysis/duplicates.py explains the method; README.md gives the
measured precision and recall of the default threshold).

pairs.csv columns: id_a, id_b, similarity, offset_seconds (the audio at t in
a is at t + offset_seconds in b), start_a, start_b, matched_seconds,
coverage_a, coverage_b (fraction of each clip inside the match: 1 and 1 is a
whole-clip duplicate). Written atomically, most similar first.

Exit status: 0 written (also when no pair is found); 2 usage error (one line).
"""

from absl import app
from absl import flags
from absl import logging

from vggish import cli
from vggish.analysis import duplicates

_OUTPUT = flags.DEFINE_string('output', None, 'Pairs CSV to write (its directory must exist).')
_THRESHOLD = flags.DEFINE_float(
    'threshold', duplicates.DEFAULT_THRESHOLD,
    'Mean cosine similarity of the overlapping examples for a pair (higher: '
    'fewer, surer pairs).')
_MIN_EXAMPLES = flags.DEFINE_integer(
    'min_examples', duplicates.DEFAULT_MIN_EXAMPLES,
    'Fewest overlapping examples of a match (a shorter clip: all of its own).',
    lower_bound=1)
_MAX_NEIGHBORS = flags.DEFINE_integer(
    'max_neighbors', duplicates.DEFAULT_MAX_NEIGHBORS,
    'An example similar to more than this many clips (silence, hum) proposes '
    'no pair; 0: no limit.', lower_bound=0)

_PROGRESS = flags.DEFINE_bool('progress', True, 'Show comparisons done, rate and ETA on stderr.')

flags.mark_flags_as_required(['output'])


def main(argv):
  inputs = argv[1:]
  if not inputs:
    raise ValueError('give RECORDS: TFRecord files, globs or directories to search')
  if not _OUTPUT.value.endswith('.csv'):
    raise ValueError(f'--output must end in .csv, got {_OUTPUT.value!r}')
  duplicates.check_output(_OUTPUT.value)
  from vggish.analysis import clips as clips_lib  # pylint: disable=g-import-not-at-top
  clips = clips_lib.load_clips(inputs, find_map=False)
  logging.info('searching %d clips (%d examples) for near-duplicates', len(clips),
               int(clips.num_examples.sum()))
  pairs = duplicates.find_duplicates(
      clips, threshold=_THRESHOLD.value, min_examples=_MIN_EXAMPLES.value,
      max_neighbors=_MAX_NEIGHBORS.value, show_progress=_PROGRESS.value)
  duplicates.write_pairs(pairs, _OUTPUT.value)
  whole = sum(p.coverage_a >= 0.999 and p.coverage_b >= 0.999 for p in pairs)
  groups = duplicates.group_ids((p.id_a, p.id_b) for p in pairs)
  logging.info('wrote %s: %d pairs (%d whole-clip, %d sub-clip) in %d groups '
               'of %d clips', _OUTPUT.value, len(pairs), whole, len(pairs) - whole,
               len(set(groups.values())), len(groups))
  return 0


if __name__ == '__main__':
  app.run(cli.exit_fast(cli.exit_on_user_error(main)), flags_parser=cli.parse_flags)
