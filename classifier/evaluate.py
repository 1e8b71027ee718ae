r"""Evaluates a trained classifier: mAP, lwlrap, AUC, d', F1, per class.

On embedding records (head models):

  python -m classifier.evaluate --model_dir=/tmp/audioset_attention \
    --records='/data/audioset/eval/*.tfrecord'

`--split=test` keeps only the clips that training held out as its test set
(the same id hash and seed, recorded in the model directory), so a model
trained with `--test_split` is re-evaluated on exactly those clips.

On audio (any model, fine-tuned ones included): `--csv=test.csv
--audio_dir=DIR` with a Freesound-style `fname,labels` CSV.

Prints the summary and writes `<output_dir>/evaluation.json` and
`evaluation_per_class.csv` (default output_dir: the model directory). F1
uses the thresholds tuned on the validation data at training time; see
`classifier.metrics` for the definitions.

Every given clip counts: a clip with no example (a record without
embeddings, or audio shorter than one example under `short_clip_policy=drop`)
is scored as the model scores an empty clip, and the summary's
`clips_without_examples` says how many there were. Embeddings or scores
holding NaN/Inf stop the evaluation with an error naming the clips.
"""

import contextlib
import logging
import os
import tempfile
from typing import Any, Dict, Optional

import numpy as np

from classifier import data as data_lib
from classifier import metrics as metrics_lib
from classifier import model_dir as model_dir_lib
from vggish import audio_io

SUMMARY_KEYS = ('mAP', 'lwlrap', 'AUC', 'd_prime', 'micro_f1', 'macro_f1',
                'micro_f1_global_threshold', 'macro_f1_global_threshold',
                'exact_match', 'top1_accuracy')


def _select_split(clip_set, config, split, model_dir):
  if split is None:
    return clip_set
  fractions = config.get('split') or {}
  if split == data_lib.VALIDATION and config.get('refit'):
    raise ValueError(
        'this model was refit on its validation clips too, so there is no '
        'validation split to evaluate (the figures of the validated models '
        'are in metrics.json); use --split=test or other data')
  if split == data_lib.VALIDATION and fractions.get('folds'):
    raise ValueError(
        f'this is an ensemble of {fractions["folds"]} fold models: each '
        'non-test clip trained all but one of them, so there is no '
        'validation split to evaluate (the out-of-fold figures are in '
        'metrics.json); use --split=test or other data')
  if split == data_lib.VALIDATION and fractions.get(
      'validation_fraction') is None:
    raise ValueError('this model was validated on separate eval data, not a '
                     'split of its training records')
  groups = None
  if fractions.get('groups'):
    from vggish.analysis import duplicates  # pylint: disable=import-outside-toplevel
    groups = duplicates.read_groups(os.path.join(model_dir, fractions['groups']))
  assignment = data_lib.split_assignment(
      clip_set.ids, fractions.get('validation_fraction') or 0.0,
      fractions.get('test_fraction') or 0.0, fractions.get('seed', 0), groups)
  selected = assignment == split
  if not selected.any():
    raise ValueError(f'no clip falls in the {split!r} split of this model '
                     f'(fractions {fractions}); are these its training '
                     'records?')
  return clip_set.subset(selected)


def evaluate(model_dir, records=None, csv_path: Optional[str] = None,
             audio_dir: Optional[str] = None, split: Optional[str] = None,
             output_dir: Optional[str] = None, checkpoint=None,
             pca_params=None, example_store: Optional[str] = None
             ) -> Dict[str, Any]:
  """Evaluates a model directory on records or labelled audio.

  Args:
    model_dir: written by `classifier.train`.
    records: TFRecord glob(s) of embeddings (head models).
    csv_path: `fname,labels` CSV of audio (with `audio_dir`).
    audio_dir: directory of the CSV's files (None: the CSV's directory).
    split: None (all clips), 'test' or 'validation': only the clips training
      assigned to that split.
    output_dir: where to write the results (default: model_dir).
    checkpoint, pca_params: for audio through a head (see
      `classifier.predict.AudioInputs`).
    example_store: for audio through a fine-tuned model, the example store
      the clips are computed into (or found in); None: the one training
      used, when it still exists, else a temporary one.

  Returns:
    The summary dict (also written to evaluation.json).

  Raises:
    ValueError: wrong or inconsistent inputs (e.g. records in another
      embedding format than the model was trained on).
    classifier.data.NonFiniteError: NaN/Inf embeddings or scores.
  """
  if (records is None) == (csv_path is None):
    raise ValueError('give either --records or --csv')
  loaded = model_dir_lib.load(model_dir)
  config = loaded.config
  if records is not None:
    if loaded.input_name != model_dir_lib.INPUT_EMBEDDINGS:
      raise ValueError('this is a fine-tuned model on audio; evaluate it with '
                       '--csv and --audio_dir, not embedding records')
    clip_set, info = data_lib.load_records(records, loaded.label_map)
    if info.embedding_format != config['embedding_format']:
      raise ValueError(
          f'the model was trained on {config["embedding_format"]} embeddings '
          f'but these records hold {info.embedding_format} ones; extract '
          'them the same way (tools.extract with or without --postprocess)')
    if abs(info.example_hop_seconds - config['example_hop_seconds']) > 1e-4:
      raise ValueError(
          f'the model was trained on a {config["example_hop_seconds"]} s hop '
          f'but these records have {info.example_hop_seconds} s')
  elif loaded.input_name == model_dir_lib.INPUT_EXAMPLES:
    with contextlib.ExitStack() as stack:
      store_dir = example_store or config.get('example_store')
      if not store_dir or not os.path.isdir(store_dir):
        store_dir = stack.enter_context(tempfile.TemporaryDirectory(
            prefix='example_store_'))
      clip_set = _examples_from_store(loaded, csv_path, audio_dir, store_dir)
      clip_set = _select_split(clip_set, config, split, model_dir)
      return _score(loaded, clip_set, split, model_dir, output_dir)
  else:
    from classifier import predict  # Imports VGGish only when needed.
    ids, paths, label_lists = data_lib.read_audio_csv(csv_path, audio_dir,
                                                      loaded.label_map)
    inputs = predict.AudioInputs(loaded, checkpoint, pca_params)
    clip_set, _ = inputs.clip_set(paths, label_lists, ids=ids)
  clip_set = _select_split(clip_set, config, split, model_dir)
  return _score(loaded, clip_set, split, model_dir, output_dir)


def _examples_from_store(loaded, csv_path, audio_dir, store_dir):
  """The CSV's clips for a fine-tuned model, streamed from an example store.

  Raises:
    vggish.audio_io.AudioReadError: a file cannot be read (every given clip
      counts in an evaluation).
  """
  from classifier import example_store as store_lib  # Imports TensorFlow.
  ids, paths, label_lists = data_lib.read_audio_csv(csv_path, audio_dir,
                                                    loaded.label_map)
  built = store_lib.build(store_dir, ids, paths, label_lists,
                          loaded.label_map,
                          model_dir_lib.frontend_params(loaded.config),
                          show_progress=False)
  if built.failures:
    path, reason = built.failures[0]
    raise audio_io.AudioReadError(
        f'{len(built.failures)} audio file(s) cannot be read, e.g. {path}: '
        f'{reason}')
  return built.store


def _score(loaded, clip_set, split, model_dir, output_dir) -> Dict[str, Any]:
  """Scores `clip_set` and writes evaluation.json and the per-class CSV."""
  from classifier import training  # Imports TensorFlow.
  predictor = training.Predictor(loaded.model, loaded.input_name)
  scores = predictor(clip_set)
  bad = list(clip_set.ids[~np.isfinite(scores).all(axis=1)])
  if bad:
    raise data_lib.NonFiniteError(
        f'the model gave NaN or infinite scores for {len(bad)} clip(s): '
        f'{data_lib.describe_ids(bad)}')
  summary, per_class = metrics_lib.evaluate(clip_set.labels, scores,
                                            loaded.thresholds)
  summary['split'] = split or 'all'
  summary['clips_without_examples'] = int(np.sum(clip_set.num_examples == 0))
  if summary['clips_without_examples']:
    logging.warning('%d of %d clips have no example; they are scored as '
                    'empty clips', summary['clips_without_examples'],
                    len(clip_set))
  output_dir = os.fspath(output_dir or model_dir)
  os.makedirs(output_dir, exist_ok=True)
  model_dir_lib.write_json(os.path.join(output_dir, 'evaluation.json'),
                           summary)
  model_dir_lib.write_per_class_csv(
      os.path.join(output_dir, 'evaluation_per_class.csv'), loaded.label_map,
      per_class)
  return summary


def _define_flags():
  from absl import flags
  flags.DEFINE_string('model_dir', None, 'Model directory of classifier.train.')
  flags.DEFINE_multi_string('records', None, 'TFRecord glob(s) of embeddings.')
  flags.DEFINE_string('csv', None, 'fname,labels CSV of audio files.')
  flags.DEFINE_string('audio_dir', None, 'Directory of the CSV\'s audio.')
  flags.DEFINE_enum('split', None, [data_lib.TEST, data_lib.VALIDATION],
                    'Only the clips training held out as this split.')
  flags.DEFINE_string('output_dir', None,
                      'Where to write evaluation.json (default: model_dir).')
  flags.DEFINE_string('checkpoint', None, 'VGGish checkpoint (audio input).')
  flags.DEFINE_string('pca_params', None, 'PCA parameters (audio input).')
  flags.DEFINE_string('example_store', None,
                      'Example store of a fine-tuned model\'s audio '
                      '(default: the one training used, if it exists).')
  flags.mark_flags_as_required(['model_dir'])


def main(argv):
  from absl import flags
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {argv[1:]}')
  summary = evaluate(FLAGS.model_dir, records=FLAGS.records,
                     csv_path=FLAGS.csv, audio_dir=FLAGS.audio_dir,
                     split=FLAGS.split, output_dir=FLAGS.output_dir,
                     checkpoint=FLAGS.checkpoint, pca_params=FLAGS.pca_params,
                     example_store=FLAGS.example_store)
  print(f'{summary["num_clips"]} clips ({summary["split"]}), '
        f'{summary["num_classes_with_positives"]} classes with positives')
  if summary['clips_without_examples']:
    print(f'{summary["clips_without_examples"]} clips without examples '
          '(scored as empty clips)')
  for key in SUMMARY_KEYS:
    value = summary[key]
    print(f'{key}: {"nan" if value is None else f"{value:.4f}"}')
  print(f'wrote {os.path.join(FLAGS.output_dir or FLAGS.model_dir, "evaluation.json")}')


if __name__ == '__main__':
  from vggish import cli
  cli.run(main, _define_flags)
