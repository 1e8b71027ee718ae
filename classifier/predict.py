r"""Scores audio files with a trained classifier: a CSV in Kaggle's layout.

  python -m classifier.predict --model_dir=/tmp/audioset_attention \
    --output=predictions.csv clip1.wav clip2.flac

The CSV has `fname`, one probability column per class (named by display
name, in label-map order, as Kaggle's Freesound submissions) and
`top_labels`, the `--top_k` best classes joined by ` | `.

Audio becomes the model's input exactly as its training data were made (see
`classifier.model_dir`): upstream's frontend with the recorded hop, then for
a head VGGish from `--checkpoint` and, when the head was trained on
quantized embeddings, the same PCA and 8-bit quantization, dequantized as
the TFRecord reader does. A fine-tuned model takes the log-mel examples
directly.

A file gets no row, but a per-file error (and exit status 1), when it cannot
be read, holds NaN/Inf samples, gives no example (shorter than 0.975 s under
`--short_clip_policy=drop`, or empty) or would get non-finite scores: the CSV
never holds a prediction made from nothing, nor a NaN.
"""

import csv
import logging
import math
import os
from typing import List, Optional, Sequence

import numpy as np

from classifier import data as data_lib
from classifier import model_dir as model_dir_lib
from vggish import audio_io

TOP_LABELS = 'top_labels'
_TOP_SEPARATOR = ' | '


class AudioInputs:
  """Turns audio files into a model's inputs (see the module doc).

  Args:
    loaded: a `model_dir.LoadedModel`.
    checkpoint: VGGish weights for a head model (None: the workspace's
      `vggish_model.ckpt`); unused for a fine-tuned model.
    pca_params: PCA file for a head trained on uint8 embeddings (None: the
      copy in the model directory, else the workspace's).
    short_clip_policy: override of the recorded policy for clips under
      0.975 s (training records 'pad' by default).
    batch_size: examples per VGGish call.

  Raises:
    vggish.workspace.MissingModelFileError: a needed model file is missing.
    ValueError: a bad configuration.
  """

  def __init__(self, loaded: model_dir_lib.LoadedModel, checkpoint=None,
               pca_params=None, short_clip_policy: Optional[str] = None,
               batch_size: int = 64):
    self._loaded = loaded
    config = loaded.config
    self.params = model_dir_lib.frontend_params(config, short_clip_policy)
    self._embedder = None
    self._postprocessor = None
    if loaded.input_name == model_dir_lib.INPUT_EMBEDDINGS:
      from vggish import embedder as embedder_lib  # Slow imports, only for head models.
      from vggish import postprocess
      from vggish import workspace
      if config.get('embedding_format') == 'uint8':
        # Checked first: a missing file should not wait for VGGish to load.
        path = pca_params or loaded.pca_params_path()
        path = workspace.require_model_file(path, workspace.PCA_PARAMS_NAME)
        self._postprocessor = postprocess.Postprocessor(str(path),
                                                        self.params)
        self._dequantize = postprocess.dequantize
      self._embedder = embedder_lib.Embedder.from_checkpoint(
          checkpoint, batch_size=batch_size, params=self.params)
    elif loaded.input_name != model_dir_lib.INPUT_EXAMPLES:
      raise ValueError(f'unknown model input {loaded.input_name!r}')

  def features(self, path) -> np.ndarray:
    """The model input of one file: [n, 128] embeddings or [n, 96, 64].

    Raises:
      vggish.audio_io.AudioReadError: unreadable file (or NaN/Inf samples).
      classifier.data.NonFiniteError: the embeddings hold NaN or Inf.
    """
    examples = data_lib.audio_to_examples(path, self.params)  # [n, 96, 64]
    if self._embedder is None:
      return examples
    if len(examples) == 0:
      return np.zeros((0, self.params.embedding_size), np.float32)
    embeddings = np.concatenate([
        self._embedder(examples[i:i + self._embedder.batch_size])
        for i in range(0, len(examples), self._embedder.batch_size)
    ])  # [n, 128] float32
    bad = int(np.sum(~np.isfinite(embeddings)))
    if bad:
      raise data_lib.NonFiniteError(
          f'{path}: VGGish gave {bad} NaN or infinite embedding values')
    if self._postprocessor is not None:
      embeddings = self._dequantize(
          self._postprocessor.postprocess(embeddings), self.params)
    return embeddings.astype(np.float32)

  def clip_set(self, paths: Sequence[str], label_lists=None,
               ids: Optional[Sequence[str]] = None,
               skip_unreadable: bool = False):
    """A ClipSet of the files' model inputs.

    Args:
      paths: audio files.
      label_lists: class indices per file (None: no labels).
      ids: clip ids (default: the paths).
      skip_unreadable: leave out files that cannot be read or give
        non-finite embeddings (logged) instead of raising.

    Returns:
      (ClipSet, failures as a list of (path, message)).
    """
    ids = list(paths) if ids is None else list(ids)
    kept_ids, clips, kept_labels, failures = [], [], [], []
    for i, path in enumerate(paths):
      try:
        clips.append(self.features(path))
      except (audio_io.AudioReadError, data_lib.NonFiniteError) as e:
        if not skip_unreadable:
          raise
        logging.error('skipping %s: %s', path, e)
        failures.append((path, str(e)))
        continue
      kept_ids.append(ids[i])
      kept_labels.append([] if label_lists is None else label_lists[i])
    feature_shape = ((self.params.embedding_size,) if self._embedder else
                     (self.params.example_window_length,
                      self.params.num_mel_bins))
    clip_set = data_lib.from_clips(
        kept_ids, clips, kept_labels, self._loaded.label_map, feature_shape)
    return clip_set, failures


def top_labels(scores: np.ndarray, names: Sequence[str], k: int) -> List[str]:
  """Each row's `k` best class names, best first, joined by ' | '."""
  order = np.argsort(-scores, axis=1, kind='stable')[:, :k]
  return [_TOP_SEPARATOR.join(names[j] for j in row) for row in order]


def predict(model_dir, audio_paths: Sequence[str], checkpoint=None,
            pca_params=None, short_clip_policy: Optional[str] = None,
            top_k: int = 3):
  """Scores audio files.

  Args:
    model_dir: a directory written by `classifier.train`.
    audio_paths: audio files.
    checkpoint, pca_params, short_clip_policy: see `AudioInputs`.
    top_k: number of labels in `top_labels`.

  Returns:
    (rows, class names, failures): rows are dicts with `fname`, a score per
    class name and `top_labels`; failures are (path, message) of the files
    that get no row (see the module doc).
  """
  from classifier import training  # Imports TensorFlow.

  loaded = model_dir_lib.load(model_dir)
  inputs = AudioInputs(loaded, checkpoint, pca_params, short_clip_policy)
  clip_set, failures = inputs.clip_set(audio_paths, skip_unreadable=True)
  names = list(loaded.label_map.display_names)
  if len(clip_set) == 0:
    return [], names, failures
  has_examples = clip_set.num_examples > 0
  params = inputs.params
  for clip_id in clip_set.ids[~has_examples]:
    failures.append((clip_id, f'{clip_id}: no example to score (shorter than '
                     f'{params.min_samples_per_example / params.sample_rate} s '
                     f'under short_clip_policy={params.short_clip_policy!r})'))
  clip_set = clip_set.subset(has_examples)
  if len(clip_set) == 0:
    return [], names, failures
  predictor = training.Predictor(loaded.model, loaded.input_name)
  rows, bad = score_rows(clip_set.ids, predictor(clip_set), names, top_k)
  failures.extend(bad)
  return rows, names, failures


def score_rows(ids: Sequence[str], scores: np.ndarray, names: Sequence[str],
               top_k: int):
  """CSV rows of clips' scores; a clip with a NaN/Inf score gets no row.

  Args:
    ids: [num_clips] clip ids (paths).
    scores: [num_clips, num_classes] probabilities.
    names: class names.
    top_k: number of labels in `top_labels`.

  Returns:
    (rows, failures as (id, message) of the clips left out).
  """
  ids = np.asarray(ids, dtype=object)
  finite = np.isfinite(scores).all(axis=1)
  failures = [(clip_id, f'{clip_id}: the model gave NaN or infinite scores; '
               'no prediction written') for clip_id in ids[~finite]]
  tops = top_labels(scores[finite], names, top_k)
  rows = []
  for clip_id, row_scores, top in zip(ids[finite], scores[finite], tops):
    row = {'fname': os.path.basename(clip_id)}
    row.update({name: float(s) for name, s in zip(names, row_scores)})
    row[TOP_LABELS] = top
    rows.append(row)
  return rows, failures


def write_csv(path, rows, class_names) -> None:
  """Writes rows of `predict` (to stdout when path is '-').

  Raises:
    classifier.data.NonFiniteError: a score is NaN or infinite (nothing is
      written).
  """
  fieldnames = ['fname'] + list(class_names) + [TOP_LABELS]
  bad = [row['fname'] for row in rows if any(
      isinstance(v, float) and not math.isfinite(v) for v in row.values())]
  if bad:
    raise data_lib.NonFiniteError(
        f'NaN or infinite scores for {data_lib.describe_ids(bad)}; not writing '
        f'{path}')

  def write(f):
    writer = csv.DictWriter(f, fieldnames=fieldnames)
    writer.writeheader()
    for row in rows:
      writer.writerow({k: (f'{v:.6f}' if isinstance(v, float) else v)
                       for k, v in row.items()})

  if path == '-':
    import sys
    write(sys.stdout)
  else:
    with open(path, 'w', newline='', encoding='utf-8') as f:
      write(f)


def _define_flags():
  from absl import flags
  flags.DEFINE_string('model_dir', None, 'Model directory of classifier.train.')
  flags.DEFINE_string('checkpoint', None,
                      'VGGish checkpoint for head models (default: the '
                      'workspace\'s vggish_model.ckpt).')
  flags.DEFINE_string('pca_params', None,
                      'PCA parameters for heads trained on uint8 embeddings '
                      '(default: the model directory\'s copy, else the '
                      'workspace\'s).')
  flags.DEFINE_string('output', 'predictions.csv',
                      'Output CSV (- for stdout).')
  flags.DEFINE_integer('top_k', 3, 'Labels listed per file.')
  flags.DEFINE_enum('short_clip_policy', None, ['drop', 'pad', 'repeat'],
                    'Clips under 0.975 s (default: pad).')
  flags.mark_flags_as_required(['model_dir'])


def main(argv):
  from absl import flags
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  paths = argv[1:]
  if not paths:
    raise ValueError('give audio files to score after the flags')
  rows, names, failures = predict(
      FLAGS.model_dir, paths, checkpoint=FLAGS.checkpoint,
      pca_params=FLAGS.pca_params, short_clip_policy=FLAGS.short_clip_policy,
      top_k=FLAGS.top_k)
  write_csv(FLAGS.output, rows, names)
  if FLAGS.output != '-':
    for row in rows:
      print(f'{row["fname"]}: {row[TOP_LABELS]}')
    print(f'wrote {len(rows)} rows to {FLAGS.output}')
  for path, message in failures:
    # Audio errors already name the file.
    logging.error('failed: %s', message if path in message else f'{path}: {message}')
  return 1 if failures else 0


if __name__ == '__main__':
  from vggish import cli
  cli.run(main, _define_flags)
