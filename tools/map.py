r"""Draws a 2-D map of the clips of some records: one HTML page and a PNG.

  python -m tools.map --output map.html RECORDS... [--method tsne|pca|umap] \
      [--audio_dir DIR] [--label_map class_labels_indices.csv] \
      [--max_clips N] [--seed 0] [--title TEXT]

RECORDS are TFRecord files, globs or directories (their *.tfrecord), ours or
AudioSet's. Each clip is the mean of its examples' embeddings, placed in 2-D by
t-SNE (default; scikit-learn), PCA, or UMAP (`pip install -e ".[umap]"`), and
colored by its label most frequent in the corpus (legend: the top 20 labels,
the rest "other", clips without labels grey). Clips without examples are left
off with a warning.

--output map.html is one self-contained page (nothing is fetched when it is
opened): hover a point for its id and labels, drag and wheel to pan and zoom.
With --audio_dir a click plays the clip: its file is the one whose path
relative to DIR without the extension is the clip's id (as tools.extract
names clips); the page refers to it by a relative path, so keep the page and
the audio where they are relative to each other. map.png, beside the page, is
the same picture for a report.

--max_clips maps a random sample (drawn with --seed) of a big corpus: on two
cores t-SNE takes about 20 s for 3,000 clips and 7 minutes for AudioSet's
22,160 balanced-train clips (PCA: a second).

Exit status: 0 written; 2 (one line on stderr) no records, an --output that is
not .html, a missing optional package, or records that cannot be read.
"""

from absl import flags
from absl import logging

from vggish import cli
from vggish import extras
from vggish.analysis import maps


def define_flags():
  flags.DEFINE_string('output', None, 'The map page to write (.html); the PNG goes beside it.')
  flags.DEFINE_enum('method', maps.DEFAULT_METHOD, list(maps.METHODS),
                    'Projection to 2-D: tsne (scikit-learn), pca, or umap (umap-learn).')
  flags.DEFINE_string('audio_dir', None,
                      'Folder of the clips\' audio (named as tools.extract names clips): '
                      'a click on a point plays its clip.')
  flags.DEFINE_string('label_map', None,
                      'class_labels_indices.csv for label names. Default: the one beside '
                      'the records, if any (else labels show as indices).')
  flags.DEFINE_integer('max_clips', None,
                       'Map a random sample of this many clips (seeded by --seed). '
                       'Default: all.')
  flags.DEFINE_integer('seed', 0, 'Seed of the sample and of t-SNE/UMAP.')
  flags.DEFINE_string('title', None, 'Title of the page and the PNG.')
  flags.mark_flag_as_required('output')


def main(argv):
  inputs = argv[1:]
  if not inputs:
    raise ValueError('give RECORDS: TFRecord files, globs or directories to map')
  values = flags.FLAGS
  try:
    html_path, png_path, clip_map = maps.write_map(
        inputs, values.output, method=values.method, audio_dir=values.audio_dir,
        label_map=values.label_map, max_clips=values.max_clips, seed=values.seed,
        title=values.title)
  except extras.MissingExtraError as e:
    return cli.report_error(e)
  logging.info('wrote %s and %s: %s', html_path, png_path, clip_map.describe())
  return 0


if __name__ == '__main__':
  cli.run(main, define_flags)
