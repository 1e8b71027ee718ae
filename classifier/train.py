r"""Trains a multi-label classifier on VGGish embeddings, or fine-tunes VGGish.

On embeddings (TFRecords of `tools.extract`, quantized or raw, or the
released AudioSet features):

  python -m classifier.train \
    --train_records='/data/audioset/bal_train/*.tfrecord' \
    --validation_split=0.1 --test_split=0.1 \
    --label_map=class_labels_indices.csv --model_dir=/tmp/audioset_attention \
    --head=attention

End to end from audio (`fname,labels` CSV, labels by display name or mid):

  python -m classifier.train --finetune --checkpoint=vggish_model.ckpt \
    --train_csv=train_curated.csv --audio_dir=train_curated/ \
    --label_map=labels.csv --model_dir=/tmp/finetuned --freeze=conv

Validation data come from `--eval_records`/`--eval_csv` or a hashed
`--validation_split` of the training clips; `--test_split` holds out a
further part that training never sees, evaluated once at the end (and again
by `python -m classifier.evaluate --split=test`). Training stops early when
the validation mAP stops improving; the model directory gets the best model
and everything listed in `classifier.model_dir`.
"""

import csv
import dataclasses
import logging
import os
import shutil
import time
from typing import Any, Dict, Optional

import numpy as np

from classifier import data as data_lib
from classifier import example_store as store_lib
from classifier import metrics as metrics_lib
from classifier import model_dir as model_dir_lib
from classifier import plots
from classifier import training
from vggish import labels as labels_lib
from vggish.params import DEFAULT_PARAMS

# The CLI's recipe for heads: 5 hashed folds (validation, thresholds), then
# 5 models refit on every clip, averaged (classifier/README.md, "AudioSet").
CLI_HEAD_FOLDS = 5
# Defaults where embedding heads and fine-tuning differ. VGGish costs about
# 1 GFLOP per example, so fine-tuning uses smaller batches.
HEAD_TRAINING_DEFAULTS = dict(epochs=12, batch_size=128, learning_rate=1e-3,
                              weight_decay=0.1, example_dropout=0.25)
FINETUNE_TRAINING_DEFAULTS = dict(epochs=10, batch_size=32, learning_rate=1e-3,
                                  backbone_learning_rate=1e-4,
                                  max_examples=10)


def _split(clip_set, validation_fraction, test_fraction, seed,
           have_eval_data, groups=None):
  """(train, validation or None, test or None, train + validation).

  By `data.split_assignment`.
  """
  assignment = data_lib.split_assignment(
      clip_set.ids, 0.0 if have_eval_data else validation_fraction,
      test_fraction, seed, groups)
  parts = {}
  for name in (data_lib.TRAIN, data_lib.VALIDATION, data_lib.TEST):
    mask = assignment == name
    parts[name] = clip_set.subset(mask) if mask.any() else None
  if parts[data_lib.TRAIN] is None:
    raise ValueError('the split left no training clips')
  return (parts[data_lib.TRAIN], parts[data_lib.VALIDATION],
          parts[data_lib.TEST], clip_set.subset(assignment != data_lib.TEST))


def _fold_runs(clip_set, folds, test_fraction, seed, groups=None):
  """([(train, validation) per fold], test or None, all non-test clips)."""
  assignment = data_lib.fold_assignment(clip_set.ids, folds, test_fraction,
                                        seed, groups)
  runs = []
  for k in range(folds):
    validation = assignment == k
    train_mask = (assignment >= 0) & ~validation
    if not validation.any() or not train_mask.any():
      raise ValueError(f'fold {k + 1} of {folds} got no clips: too few clips '
                       f'({len(clip_set)}) for {folds} folds')
    runs.append((clip_set.subset(train_mask), clip_set.subset(validation)))
  test = assignment < 0
  return (runs, clip_set.subset(test) if test.any() else None,
          clip_set.subset(~test))


def _duplicate_groups(pairs_csv, ids, model_dir, config):
  """The groups of `tools.duplicates` pairs among these clips, saved with the model.

  Returns:
    id -> group name for the clips in some group (None without pairs_csv).
  """
  if pairs_csv is None:
    return None
  from vggish.analysis import duplicates  # pylint: disable=import-outside-toplevel
  groups = duplicates.load_groups(pairs_csv)
  present = set(ids)
  kept = {clip_id: group for clip_id, group in groups.items() if clip_id in present}
  if groups and not kept:
    raise ValueError(
        f'none of the {len(groups)} clips named in {pairs_csv} is among the '
        f'{len(ids)} training clips: are they pairs of these records?')
  logging.info('duplicate groups: %d clips in %d groups kept together in one '
               'split (%d of the ids in %s are not among these clips)',
               len(kept), len(set(kept.values())), len(groups) - len(kept),
               pairs_csv)
  duplicates.write_groups(kept, os.path.join(model_dir, model_dir_lib.GROUPS_FILE))
  config['split']['groups'] = model_dir_lib.GROUPS_FILE
  return kept


def _fold_metrics(fits, runs, val_scores, test_set, test_scores, thresholds):
  """Each fold model's figures: its own fold, and the test clips.

  `test_scores` holds each model's scores of `test_set` (None: no test set).
  """
  out = []
  for k, (fit, (train_set, val_set), scores) in enumerate(
      zip(fits, runs, val_scores)):
    entry = {'fold': k + 1, 'best_epoch': fit.best_epoch,
             'epochs_run': len(fit.history),
             'stopped_early': fit.stopped_early,
             'train_seconds': fit.seconds,
             'num_train_clips': len(train_set),
             'num_validation_clips': len(val_set)}
    entry['validation'], _ = metrics_lib.evaluate(val_set.labels, scores,
                                                  thresholds)
    if test_set is not None:
      entry['test'], _ = metrics_lib.evaluate(test_set.labels, test_scores[k],
                                              thresholds)
    out.append(entry)
  return out


def _patterns(patterns):
  if patterns is None:
    return None
  if isinstance(patterns, (str, os.PathLike)):
    patterns = [patterns]
  return [os.fspath(p) for p in patterns]


def _evaluate_split(predictor, clip_set, thresholds, label_map, directory,
                    name):
  scores = predictor(clip_set)
  summary, per_class = metrics_lib.evaluate(clip_set.labels, scores,
                                            thresholds)
  model_dir_lib.write_per_class_csv(
      os.path.join(directory, f'{name}_per_class.csv'), label_map, per_class)
  return summary, scores


SKIPPED_AUDIO_CSV = 'skipped_audio.csv'
# The example store's default place, inside the model directory.
DEFAULT_EXAMPLE_STORE = 'example_store'


def _write_skipped(path, skipped):
  """Lists the unreadable audio files that training left out: path, reason."""
  with open(path, 'w', newline='', encoding='utf-8') as f:
    writer = csv.writer(f)
    writer.writerow(['path', 'error'])
    writer.writerows(skipped)
  logging.warning('%d unreadable audio file(s) left out; listed in %s',
                  len(skipped), path)


def train(label_map: str,
          model_dir: str,
          train_records=None,
          eval_records=None,
          validation_split: float = 0.1,
          test_split: float = 0.0,
          split_seed: int = 0,
          head: str = 'attention',
          head_options: Optional[Dict[str, Any]] = None,
          options: Optional[training.TrainOptions] = None,
          pca_params: Optional[str] = None,
          finetune: bool = False,
          checkpoint: Optional[str] = None,
          train_csv: Optional[str] = None,
          eval_csv: Optional[str] = None,
          audio_dir: Optional[str] = None,
          freeze: str = 'conv',
          spec_augment: bool = False,
          short_clip_policy: str = 'pad',
          example_hop_seconds: float = DEFAULT_PARAMS.example_hop_seconds,
          allow_tf32: bool = False,
          example_store: Optional[str] = None,
          folds: int = 1,
          refit: Optional[bool] = None,
          group_duplicates: Optional[str] = None,
          ) -> Dict[str, Any]:
  """Trains a head on embedding records, or fine-tunes VGGish on audio.

  Args:
    label_map: path of the `index,mid,display_name` CSV.
    model_dir: output directory (created; existing files are overwritten).
    train_records: TFRecord glob(s) of embeddings (heads).
    eval_records: validation TFRecords; None uses `validation_split`.
    validation_split: fraction of the training clips held out for
      validation (by a hash of the clip id) when no eval data are given.
    test_split: fraction held out as a test set, never trained or validated
      on, evaluated at the end into metrics.json.
    split_seed: seed of the hashed splits.
    head: 'mean_mlp' or 'attention'.
    head_options: overrides of `classifier.heads.HEAD_DEFAULTS[head]`.
    options: loop hyperparameters; None uses the defaults of the mode.
    pca_params: the PCA file that made uint8 records; copied into the model
      directory so prediction can reproduce the embeddings.
    finetune: train VGGish and the head from audio.
    checkpoint: VGGish weights to fine-tune from.
    train_csv, eval_csv: Freesound-style `fname,labels` CSVs (fine-tuning).
    audio_dir: directory of the CSVs' audio files (None: each CSV's own).
    freeze: the frozen part of VGGish when fine-tuning (see
      `classifier.finetune`).
    spec_augment: SpecAugment-style masking when fine-tuning.
    short_clip_policy: for fine-tuning audio shorter than one example: 'pad',
      'repeat' or 'drop'.
    example_hop_seconds: frontend hop for fine-tuning.
    allow_tf32: fine-tune with TensorFloat-32 on Ampere and later GPUs
      (faster; prediction and evaluation still run float32).
    folds: > 1 trains that many models on hashed folds of the non-test
      clips (`data.fold_assignment`), each validated (early stopping) on its
      own fold, and saves their mean as one model; thresholds and the
      'validation' metrics are out-of-fold; `validation_split` and eval data
      are then not used. 1: one model.
    refit: after the validated model(s), train as many again on every
      non-test clip (training and validation together) for all `epochs`,
      and save those instead (their mean); the validation figures and
      thresholds stay those of the validated models. None: True when
      `folds` > 1.
    group_duplicates: a pairs CSV of `tools.duplicates`: clips linked by
      pairs (near-duplicates, e.g. one clip shifted or re-encoded) are kept
      in one split or fold, so none leaks between training and validation or
      test; saved as `duplicate_groups.csv` for `classifier.evaluate`.
    example_store: directory of the fine-tuning audio's log-mel examples
      (`classifier.example_store`), computed once and reused by later runs;
      None: `MODEL_DIR/example_store`.

  Returns:
    The metrics dict written to metrics.json.

  Raises:
    ValueError: inconsistent or missing arguments or data.
  """
  start = time.monotonic()
  if folds < 1:
    raise ValueError(f'--folds must be >= 1, got {folds}')
  if refit is None:
    refit = folds > 1
  if finetune:
    if not train_csv:
      raise ValueError('--finetune needs --train_csv (and --audio_dir unless '
                       'the audio sits beside the CSV)')
    if train_records or eval_records:
      raise ValueError('--finetune trains from audio (--train_csv); records '
                       'are for training heads')
    defaults = FINETUNE_TRAINING_DEFAULTS
  else:
    if not train_records:
      raise ValueError('give --train_records (or --finetune with audio)')
    if train_csv or eval_csv:
      raise ValueError('--train_csv/--eval_csv are for --finetune')
    defaults = HEAD_TRAINING_DEFAULTS
  if options is None:
    options = training.TrainOptions(**defaults)
  labels = labels_lib.read_classes(label_map)
  os.makedirs(model_dir, exist_ok=True)
  params = dataclasses.replace(DEFAULT_PARAMS,
                               example_hop_seconds=example_hop_seconds,
                               short_clip_policy=short_clip_policy)

  config = {
      'format_version': model_dir_lib.FORMAT_VERSION,
      'head': head,
      'num_classes': len(labels),
      'split': {'validation_fraction': None if (eval_records or eval_csv) else
                validation_split, 'test_fraction': test_split,
                'seed': split_seed},
      'training': dataclasses.asdict(options),
      'train_records': _patterns(train_records),
      'eval_records': _patterns(eval_records),
      'train_csv': train_csv, 'eval_csv': eval_csv, 'audio_dir': audio_dir,
  }
  if finetune:
    # Streamed from disk: memory holds the clips' metadata, not examples.
    store_dir = os.path.abspath(example_store or os.path.join(
        model_dir, DEFAULT_EXAMPLE_STORE))
    built = store_lib.build(
        store_dir, *data_lib.read_audio_csv(train_csv, audio_dir, labels),
        labels, params, show_progress=options.verbose)
    clips, skipped = built.store, list(built.failures)
    val_set = None
    if eval_csv:
      built = store_lib.build(
          store_dir, *data_lib.read_audio_csv(eval_csv, audio_dir, labels),
          labels, params, show_progress=options.verbose)
      val_set = built.store
      skipped.extend(built.failures)
    config['example_store'] = store_dir
    config['skipped_audio'] = len(skipped)
    if skipped:
      _write_skipped(os.path.join(model_dir, SKIPPED_AUDIO_CSV), skipped)
    config.update(input=model_dir_lib.INPUT_EXAMPLES, embedding_format=None,
                  example_hop_seconds=params.example_hop_seconds,
                  short_clip_policy=params.short_clip_policy, pca_params=None,
                  finetune={'checkpoint': str(checkpoint), 'freeze': freeze,
                            'spec_augment': spec_augment,
                            'allow_tf32': allow_tf32})
  else:
    clips, info = data_lib.load_records(train_records, labels)
    val_set = None
    if eval_records:
      val_set, val_info = data_lib.load_records(
          eval_records, labels, embedding_format=info.embedding_format)
      if val_info != info:
        raise ValueError(f'training records are {info} but validation '
                         f'records are {val_info}')
    config.update(input=model_dir_lib.INPUT_EMBEDDINGS,
                  embedding_format=info.embedding_format,
                  example_hop_seconds=info.example_hop_seconds,
                  short_clip_policy=short_clip_policy, pca_params=None)
    if pca_params:
      if info.embedding_format != 'uint8':
        raise ValueError('--pca_params is for uint8 (postprocessed) records; '
                         'these records hold raw float32 embeddings')
      shutil.copyfile(pca_params,
                      os.path.join(model_dir, model_dir_lib.PCA_FILE))
      config['pca_params'] = model_dir_lib.PCA_FILE
    elif info.embedding_format == 'uint8':
      logging.warning(
          'uint8 (PCA) records without --pca_params: prediction from audio '
          'will need --pca_params (or the workspace default)')

  groups = _duplicate_groups(group_duplicates, clips.ids, model_dir, config)
  if folds > 1:
    if val_set is not None:
      raise ValueError('--folds validates each model on its own fold; drop '
                       '--eval_records/--eval_csv (or train with --folds=1)')
    runs, test_set, pool = _fold_runs(clips, folds, test_split, split_seed,
                                      groups)
    config['split']['validation_fraction'] = None
    config['split']['folds'] = folds
  else:
    train_set, split_val, test_set, pool = _split(
        clips, validation_split, test_split, split_seed,
        have_eval_data=val_set is not None, groups=groups)
    if val_set is None:
      val_set = split_val
    if val_set is None:
      raise ValueError('no validation clips: pass eval data or a larger '
                       '--validation_split')
    runs = [(train_set, val_set)]
    if refit and split_val is None:
      raise ValueError('--refit trains on the training and validation clips '
                       'together; it needs a --validation_split (or --folds), '
                       'not separate eval data')
  config['refit'] = bool(refit)
  logging.info('clips: %d train, %d validation, %d test%s',
               len(runs[0][0]), len(runs[0][1]),
               0 if test_set is None else len(test_set),
               f' (fold 1 of {folds})' if folds > 1 else '')

  import keras  # Slow to import; the checks above fail fast without it.
  from classifier import finetune as finetune_lib
  from classifier import heads

  def build_and_fit(train_set, val_set, name, seed, run_options):
    """A fresh model trained on `train_set`: (model, FitResult)."""
    run_options = dataclasses.replace(run_options, seed=seed)
    keras.utils.set_random_seed(seed)
    if finetune:
      model, backbone = finetune_lib.build_model(
          len(labels), checkpoint, head=head, freeze=freeze,
          spec_augment=spec_augment, seed=seed, head_options=head_options,
          params=params, allow_tf32=allow_tf32,
          **({'name': name} if name else {}))
      backbone_variables = backbone.trainable_variables
    else:
      stats = data_lib.feature_statistics(train_set)
      model = heads.build_head(len(labels), head,
                               embedding_size=params.embedding_size,
                               feature_mean=stats['mean'],
                               feature_std=stats['std'], name=name,
                               **(head_options or {}))
      backbone_variables = ()
    log_dir = os.path.join(model_dir, model_dir_lib.LOG_DIR)
    result = training.fit(
        model, train_set, val_set, config['input'], run_options,
        backbone_variables=backbone_variables,
        log_dir=log_dir if name is None else os.path.join(log_dir, name))
    return model, result

  members, fits, val_scores = [], [], []
  for k, (train_set, val_set) in enumerate(runs):
    if folds > 1:
      logging.info('fold %d/%d: %d train, %d validation clips', k + 1, folds,
                   len(train_set), len(val_set))
    # Each fold's model starts from its own seed: the ensemble's members
    # then differ in their data and their initialization.
    model, result = build_and_fit(train_set, val_set,
                                  None if folds == 1 and not refit else
                                  f'fold{k + 1}', options.seed + k, options)
    fits.append(result)
    val_scores.append(training.Predictor(
        model, config['input'], options.eval_examples_per_batch)(val_set))
    members.append(model)
  validated = members
  refits = []
  if refit:
    # The validated runs chose the recipe and measured it; the models kept
    # train on every non-test clip, for all epochs (nothing left to choose
    # an epoch on), with seeds of their own.
    for k in range(len(runs)):
      logging.info('refit %d/%d on all %d non-test clips (%d epochs)', k + 1,
                   len(runs), len(pool), options.epochs)
      refits.append(build_and_fit(
          pool, None, f'refit{k + 1}', options.seed + len(runs) + k,
          dataclasses.replace(options, keep_last=True)))
    members = [m for m, _ in refits]
  config['head_options'] = heads.head_options(head, **(head_options or {}))
  model = members[0] if len(members) == 1 else heads.build_ensemble(members)
  config['num_parameters'] = int(model.count_params())

  # Thresholds come from validation data only (with folds: every clip scored
  # by the one model that did not train on it); the test figures use them
  # unchanged, so test F1 is an honest estimate.
  val_labels = np.concatenate([v.labels for _, v in runs])
  all_val_scores = np.concatenate(val_scores)
  thresholds = metrics_lib.tune_thresholds(val_labels, all_val_scores)
  val_summary, val_per_class = metrics_lib.evaluate(val_labels,
                                                    all_val_scores, thresholds)
  model_dir_lib.write_per_class_csv(
      os.path.join(model_dir, 'validation_per_class.csv'), labels,
      val_per_class)
  metrics = {
      'folds': folds,
      'refit': bool(refit),
      'train_seconds': sum(f.seconds for f in fits) + sum(
          r.seconds for _, r in refits),
      'total_seconds': None,
      'num_train_clips': len(pool) if refit else len(runs[0][0]) if
                         folds == 1 else int(sum(len(v) for _, v in runs)),
      'num_validation_clips': len(val_labels),
      'num_test_clips': 0 if test_set is None else len(test_set),
  }
  if folds == 1:
    metrics.update(best_epoch=fits[0].best_epoch,
                   epochs_run=len(fits[0].history),
                   stopped_early=fits[0].stopped_early)
  # F1 here uses thresholds tuned on these same clips: optimistic. With
  # folds these are the out-of-fold figures.
  metrics['validation'] = val_summary
  predictor = training.Predictor(model, config['input'],
                                 options.eval_examples_per_batch)
  if test_set is not None:
    metrics['test'], _ = _evaluate_split(predictor, test_set, thresholds,
                                         labels, model_dir, 'test')
  # Each validated model scores the test clips once: for its own figures
  # and, averaged as the ensemble does, for the validated models' together.
  validated_test_scores = None
  if test_set is not None and (folds > 1 or refit):
    validated_test_scores = [
        training.Predictor(member, config['input'],
                           options.eval_examples_per_batch)(test_set)
        for member in validated]
  if refit:
    metrics['refit_models'] = [
        {'model': f'refit{k + 1}', 'epochs_run': len(r.history),
         'train_seconds': r.seconds} for k, (_, r) in enumerate(refits)]
    if test_set is not None:
      # The same test clips through the validated models (for comparison).
      metrics['test_validated_models'], _ = metrics_lib.evaluate(
          test_set.labels, np.mean(validated_test_scores, axis=0),
          thresholds)
  if folds > 1:
    metrics['fold_models'] = _fold_metrics(fits, runs, val_scores, test_set,
                                           validated_test_scores, thresholds)
    metrics['fold_summary'] = {
        split: metrics_lib.summarize_runs(
            [m[split] for m in metrics['fold_models']])
        for split in ('validation', 'test') if test_set is not None or
        split == 'validation'}

  model.save(os.path.join(model_dir, model_dir_lib.MODEL_FILE))
  labels_lib.write_label_map(labels,
                             os.path.join(model_dir, model_dir_lib.LABELS_FILE))
  model_dir_lib.write_json(
      os.path.join(model_dir, model_dir_lib.THRESHOLDS_FILE),
      thresholds.to_json())
  history = (fits[0].history if len(members) == 1 and not refit else
             [dict(record, model=f'fold{k + 1}') for k, f in enumerate(fits)
              for record in f.history] +
             [dict(record, model=f'refit{k + 1}')
              for k, (_, r) in enumerate(refits) for record in r.history])
  model_dir_lib.write_json(
      os.path.join(model_dir, model_dir_lib.HISTORY_FILE), history)
  model_dir_lib.write_json(
      os.path.join(model_dir, model_dir_lib.CONFIG_FILE), config)
  metrics['total_seconds'] = time.monotonic() - start
  model_dir_lib.write_json(
      os.path.join(model_dir, model_dir_lib.METRICS_FILE), metrics)
  plots.write_model_plots_or_warn(model_dir)  # A warning, never a failure.
  if folds == 1:
    logging.info('saved the best model (epoch %d, validation mAP %.4f) to %s',
                 fits[0].best_epoch, fits[0].best_val_map, model_dir)
  else:
    logging.info('saved the ensemble of %d fold models (out-of-fold mAP '
                 '%.4f) to %s', folds, val_summary['mAP'], model_dir)
  return metrics


# ---------------------------------------------------------------- the CLI

def _define_flags():
  from absl import flags
  from classifier import finetune as finetune_lib
  from classifier import heads

  flags.DEFINE_multi_string('train_records', None,
                            'TFRecord glob(s) of training embeddings.')
  flags.DEFINE_multi_string('eval_records', None,
                            'TFRecord glob(s) of validation embeddings.')
  flags.DEFINE_float('validation_split', 0.1,
                     'Fraction of training clips held out for validation '
                     '(by id hash) when no eval data are given.')
  flags.DEFINE_float('test_split', 0.0,
                     'Fraction of training clips held out as a test set.')
  flags.DEFINE_integer('split_seed', 0, 'Seed of the hashed splits.')
  flags.DEFINE_string('group_duplicates', None,
                      'Pairs CSV of tools.duplicates: clips linked by pairs '
                      '(near-duplicates) fall into one split or fold.')
  flags.DEFINE_integer('folds', None,
                       'K > 1: train K models on K hashed folds (each '
                       'validated on its own fold), report mean +- std and '
                       'out-of-fold figures, and save their average as one '
                       f'model (default: {CLI_HEAD_FOLDS} for heads unless '
                       '--validation_split or --eval_records is given, '
                       'else 1).')
  flags.DEFINE_bool('refit', None,
                    'After validating, train the same number of models on '
                    'all non-test clips for all epochs and save their '
                    'average instead (default: on with --folds > 1).')
  flags.DEFINE_string('label_map', None,
                      'index,mid,display_name CSV (AudioSet '
                      'class_labels_indices.csv format).')
  flags.DEFINE_string('model_dir', None, 'Output directory.')
  flags.DEFINE_enum('head', 'attention', list(heads.HEADS),
                    'Classifier head.')
  flags.DEFINE_integer('epochs', None, 'Most epochs (default: 12 for heads, '
                       '10 when fine-tuning).')
  flags.DEFINE_integer('batch_size', None,
                       'Clips per step (default: 128, fine-tuning 32).')
  flags.DEFINE_float('learning_rate', None, 'Peak learning rate (1e-3).')
  flags.DEFINE_float('backbone_learning_rate', None,
                     'Peak learning rate of VGGish when fine-tuning (1e-4).')
  flags.DEFINE_float('warmup_epochs', 0.0, 'Epochs of linear warm-up.')
  flags.DEFINE_float('label_smoothing', 0.0, 'Label smoothing.')
  flags.DEFINE_float('mixup_alpha', 0.0, 'Mixup Beta(alpha, alpha); 0: off.')
  flags.DEFINE_enum('class_weighting', 'none', list(training.CLASS_WEIGHTINGS),
                    'Weighting of positive labels by class frequency.')
  flags.DEFINE_float('weight_decay', None,
                     'Decoupled (AdamW) weight decay; 0: plain Adam.')
  flags.DEFINE_float('example_dropout', None,
                     'Training: each example of a clip is masked out with '
                     'this probability (a clip keeps one).')
  flags.DEFINE_bool('balanced_sampling', False,
                    'Sample clips by the rarity of their classes.')
  flags.DEFINE_integer('patience', 4, 'Early-stopping patience in epochs.')
  flags.DEFINE_integer('max_examples', None,
                       'Cut longer training clips to a random window of this '
                       'many examples (fine-tuning default 10).')
  flags.DEFINE_integer('seed', 0, 'Training seed.')
  flags.DEFINE_integer('hidden_units', None, 'Clip-level MLP width.')
  flags.DEFINE_integer('num_layers', None, 'Clip-level MLP layers.')
  flags.DEFINE_float('dropout', None, 'Dropout after hidden layers.')
  flags.DEFINE_float('input_dropout', None, 'Dropout on the embeddings.')
  flags.DEFINE_integer('example_units', None,
                       'Per-example MLP width (attention head).')
  flags.DEFINE_integer('example_layers', None,
                       'Per-example MLP layers (attention head).')
  flags.DEFINE_integer('attention_heads', None,
                       'Attention heads (attention head).')
  flags.DEFINE_string('pca_params', None,
                      'PCA parameters that made uint8 records; copied into '
                      'the model directory for prediction.')
  flags.DEFINE_bool('finetune', False,
                    'Train VGGish and the head end to end from audio.')
  flags.DEFINE_string('checkpoint', None,
                      'VGGish checkpoint to fine-tune (default: the '
                      'workspace\'s vggish_model.ckpt).')
  flags.DEFINE_string('train_csv', None, 'fname,labels CSV (fine-tuning).')
  flags.DEFINE_string('eval_csv', None,
                      'fname,labels CSV of validation audio.')
  flags.DEFINE_string('audio_dir', None, 'Directory of the CSVs\' audio.')
  flags.DEFINE_enum('freeze', 'conv', list(finetune_lib.FREEZE_CHOICES),
                    'Frozen part of VGGish when fine-tuning.')
  flags.DEFINE_bool('spec_augment', False,
                    'SpecAugment-style masking when fine-tuning.')
  flags.DEFINE_enum('short_clip_policy', 'pad', ['drop', 'pad', 'repeat'],
                    'Audio shorter than one example (fine-tuning).')
  flags.DEFINE_string('example_store', None,
                      'Directory of the fine-tuning audio\'s log-mel examples, '
                      'computed once and reused by later runs with the same '
                      'frontend settings (default: MODEL_DIR/example_store).')
  flags.DEFINE_bool('allow_tf32', False,
                    'Fine-tune with TensorFloat-32 on Ampere and later GPUs: '
                    'faster, embeddings off by ~1e-3 relative (default: off).')
  flags.DEFINE_bool('progress', True, 'Show a progress bar per epoch.')
  flags.mark_flags_as_required(['label_map', 'model_dir'])


def _cli_folds(FLAGS):  # pylint: disable=invalid-name
  """--folds, or the CLI's default recipe for heads (see the flag)."""
  if FLAGS.folds is not None:
    return FLAGS.folds
  if (FLAGS.finetune or FLAGS.eval_records or
      FLAGS['validation_split'].present):
    return 1
  return CLI_HEAD_FOLDS


_PRINTED = ('mAP', 'lwlrap', 'AUC', 'd_prime', 'micro_f1', 'macro_f1')


def _print_summary(metrics):
  """The figures of `train`'s metrics on stdout (the CLI's report)."""
  if metrics['folds'] == 1:
    print(f'best epoch {metrics["best_epoch"]} of {metrics["epochs_run"]}, '
          f'training {metrics["train_seconds"]:.0f} s, total '
          f'{metrics["total_seconds"]:.0f} s')
  else:
    epochs = ', '.join(str(m['best_epoch']) for m in metrics['fold_models'])
    print(f'{metrics["folds"]} fold models (best epochs {epochs}), training '
          f'{metrics["train_seconds"]:.0f} s, total '
          f'{metrics["total_seconds"]:.0f} s')
    for split, summary in metrics['fold_summary'].items():
      print(f'{split}, one fold model: ' + '  '.join(
          f'{key} {summary[key]["mean"]:.4f} +- {summary[key]["std"]:.4f}'
          for key in _PRINTED if key in summary))
  kept = (f'refit on all clips ({metrics["folds"]} model'
          f'{"s" if metrics["folds"] > 1 else ""})' if metrics['refit'] else
          'ensemble')
  names = {'validation': ('validation' if metrics['folds'] == 1 else
                          'validation, out of fold'),
           'test_validated_models': ('test, validated model' if
                                     metrics['folds'] == 1 else
                                     'test, fold ensemble'),
           'test': (('test' if metrics['folds'] == 1 and not
                     metrics['refit'] else f'test, {kept}'))}
  for split in ('validation', 'test_validated_models', 'test'):
    if split in metrics:
      m = metrics[split]
      print(f'{names[split]}: ' + '  '.join(
          f'{key} {m[key]:.4f}' for key in _PRINTED) +
            f'  ({m["num_clips"]} clips)')


def main(argv):
  from absl import flags
  FLAGS = flags.FLAGS  # pylint: disable=invalid-name
  if len(argv) > 1:
    raise ValueError(f'unexpected arguments: {argv[1:]}')
  defaults = (FINETUNE_TRAINING_DEFAULTS if FLAGS.finetune else
              HEAD_TRAINING_DEFAULTS)
  loop = dict(defaults)
  for key in ('epochs', 'batch_size', 'learning_rate',
              'backbone_learning_rate', 'max_examples', 'weight_decay',
              'example_dropout'):
    if getattr(FLAGS, key) is not None:
      loop[key] = getattr(FLAGS, key)
  options = training.TrainOptions(
      warmup_epochs=FLAGS.warmup_epochs,
      label_smoothing=FLAGS.label_smoothing, mixup_alpha=FLAGS.mixup_alpha,
      class_weighting=FLAGS.class_weighting,
      balanced_sampling=FLAGS.balanced_sampling, patience=FLAGS.patience,

      seed=FLAGS.seed, verbose=FLAGS.progress, **loop)
  head_options = {key: getattr(FLAGS, key) for key in (
      'hidden_units', 'num_layers', 'dropout', 'input_dropout')}
  if FLAGS.head == 'attention':
    head_options.update({key: getattr(FLAGS, key) for key in (
        'example_units', 'example_layers', 'attention_heads')})
  checkpoint = FLAGS.checkpoint
  if FLAGS.finetune and checkpoint is None:
    from vggish import workspace
    checkpoint = workspace.require_model_file(None, workspace.CHECKPOINT_NAME)
  metrics = train(
      label_map=FLAGS.label_map, model_dir=FLAGS.model_dir,
      train_records=FLAGS.train_records, eval_records=FLAGS.eval_records,
      validation_split=FLAGS.validation_split, test_split=FLAGS.test_split,
      split_seed=FLAGS.split_seed, head=FLAGS.head,
      head_options={k: v for k, v in head_options.items() if v is not None},
      options=options, pca_params=FLAGS.pca_params, finetune=FLAGS.finetune,
      checkpoint=checkpoint, train_csv=FLAGS.train_csv,
      eval_csv=FLAGS.eval_csv, audio_dir=FLAGS.audio_dir, freeze=FLAGS.freeze,
      spec_augment=FLAGS.spec_augment,
      short_clip_policy=FLAGS.short_clip_policy, allow_tf32=FLAGS.allow_tf32,
      example_store=FLAGS.example_store, folds=_cli_folds(FLAGS),
      refit=FLAGS.refit, group_duplicates=FLAGS.group_duplicates)
  _print_summary(metrics)
  print(f'model directory: {FLAGS.model_dir}')


if __name__ == '__main__':
  from vggish import cli
  cli.run(main, _define_flags)
