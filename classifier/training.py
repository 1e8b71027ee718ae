"""The training loop shared by heads and fine-tuning: mini-batches from memory
or streamed from an example store (`ClipSource`), binary cross-entropy, mixup, two learning rates, early stopping on validation mAP.

A custom loop rather than `Model.fit`: fine-tuning needs a smaller learning
rate for the backbone than for the head (Keras optimizers take one rate), and
mixup mixes inputs and targets together. Everything else follows Keras'
conventions: a progress bar per epoch, TensorBoard scalars named like the
Keras callback's (`epoch_loss`, ...), a history of per-epoch values, and the
weights of the best epoch restored at the end.
"""

import dataclasses
import logging
import math
import os
import sys
import time
from typing import Dict, Iterator, List, Optional, Protocol, Sequence

import keras
import numpy as np
import tensorflow as tf
from tensorflow.core.framework import summary_pb2

from classifier import metrics as metrics_lib

CLASS_WEIGHTINGS = ('none', 'inverse_sqrt')
# Probabilities are clipped before the log, as Keras' binary cross-entropy
# does, so a confident wrong prediction costs at most -log(1e-7) = 16.
_EPSILON = 1e-7
_BAR_METRICS = ('loss', 'val_loss', 'val_mAP')


@dataclasses.dataclass(frozen=True)
class TrainOptions:
  """Hyperparameters of the loop.

  Attributes:
    epochs: most epochs (early stopping may end sooner).
    batch_size: clips per step.
    learning_rate: peak Adam learning rate (of the head when fine-tuning); it
      follows a cosine decay to 0 over `epochs`, after `warmup_epochs` of
      linear warm-up.
    backbone_learning_rate: peak rate of the backbone's variables
      (fine-tuning); None uses `learning_rate`.
    warmup_epochs: epochs of linear warm-up.
    label_smoothing: targets become `y * (1 - s) + s / 2`.
    mixup_alpha: > 0 mixes each batch with a shuffled copy of itself, inputs
      and targets alike, with weights ~ Beta(alpha, alpha) per clip (masks
      are united); 0 disables mixup.
    class_weighting: 'none', or 'inverse_sqrt': a positive label of class c
      weighs `sqrt(mean_count / count_c)` in the loss (clipped to [0.1, 10]).
    balanced_sampling: draw each epoch's clips with replacement, a clip's
      probability proportional to the inverse frequency of its rarest class.
    patience: stop after this many epochs without a better validation mAP.
    keep_last: run every epoch and keep the last one's weights: no early
      stopping and no choice of epoch by validation (for models trained on
      every clip, whose validation figures must not pick the weights).
    max_examples: training clips longer than this are cut to a random window
      of this many examples (None: no limit).
    eval_examples_per_batch: padded examples per validation step (None:
      `Predictor`'s default for the input).
    weight_decay: decoupled weight decay of AdamW (0: plain Adam).
    example_dropout: in training, each real example of a clip is masked out
      with this probability (a clip keeps at least one): the model cannot
      rely on any one second of the clip.
    seed: seeds batching, dropout, mixup and initialization.
    verbose: show a progress bar per epoch (on stdout).
  """
  epochs: int = 12
  batch_size: int = 128
  learning_rate: float = 1e-3
  backbone_learning_rate: Optional[float] = None
  warmup_epochs: float = 0.0
  label_smoothing: float = 0.0
  mixup_alpha: float = 0.0
  class_weighting: str = 'none'
  balanced_sampling: bool = False
  patience: int = 4
  keep_last: bool = False
  max_examples: Optional[int] = None
  eval_examples_per_batch: Optional[int] = None
  weight_decay: float = 0.0
  example_dropout: float = 0.0
  seed: int = 0
  verbose: bool = True

  def __post_init__(self):
    if self.epochs < 1 or self.batch_size < 1:
      raise ValueError('epochs and batch_size must be positive, got '
                       f'{self.epochs}, {self.batch_size}')
    if self.learning_rate <= 0 or (self.backbone_learning_rate is not None and
                                   self.backbone_learning_rate < 0):
      raise ValueError('learning rates must be positive')
    if not 0 <= self.label_smoothing < 1:
      raise ValueError(
          f'label_smoothing must lie in [0, 1), got {self.label_smoothing}')
    if self.mixup_alpha < 0:
      raise ValueError(f'mixup_alpha must be >= 0, got {self.mixup_alpha}')
    if self.class_weighting not in CLASS_WEIGHTINGS:
      raise ValueError(f'class_weighting must be one of {CLASS_WEIGHTINGS}, '
                       f'got {self.class_weighting!r}')
    if self.patience < 1:
      raise ValueError(f'patience must be >= 1, got {self.patience}')
    if self.weight_decay < 0:
      raise ValueError(f'weight_decay must be >= 0, got {self.weight_decay}')
    if not 0 <= self.example_dropout < 1:
      raise ValueError('example_dropout must lie in [0, 1), got '
                       f'{self.example_dropout}')
    if self.max_examples is not None and self.max_examples < 1:
      raise ValueError(f'max_examples must be >= 1, got {self.max_examples}')


@dataclasses.dataclass
class FitResult:
  """What `fit` did.

  Attributes:
    history: one dict per epoch (`epoch`, `loss`, `val_loss`, `val_mAP`,
      `learning_rate`, `seconds`).
    best_epoch: 1-based epoch whose weights the model holds now.
    best_val_map: its validation mAP.
    stopped_early: True if patience ran out before `epochs`.
    seconds: wall time of the loop.
  """
  history: List[Dict[str, float]]
  best_epoch: int
  best_val_map: float
  stopped_early: bool
  seconds: float


def positive_weights(labels: np.ndarray, class_weighting: str) -> np.ndarray:
  """[num_classes] float32 weights of positive labels in the loss."""
  num_classes = labels.shape[1]
  if class_weighting == 'none':
    return np.ones(num_classes, np.float32)
  counts = labels.sum(axis=0)
  mean_count = counts[counts > 0].mean() if np.any(counts > 0) else 1.0
  weights = np.sqrt(mean_count / np.maximum(counts, 1.0))
  return np.clip(weights, 0.1, 10.0).astype(np.float32)


def sampling_probabilities(labels: np.ndarray) -> np.ndarray:
  """Clip probabilities for balanced sampling (see `TrainOptions`)."""
  counts = np.maximum(labels.sum(axis=0), 1.0)
  rarity = np.where(labels > 0, 1.0 / counts[None, :], 0.0).max(axis=1)
  # Unlabelled clips keep the weight of the most common class.
  rarity = np.where(rarity > 0, rarity, 1.0 / counts.max())
  return rarity / rarity.sum()


class _CosineSchedule(keras.optimizers.schedules.LearningRateSchedule):
  """Linear warm-up to `peak`, then cosine decay to 0 at `total_steps`."""

  def __init__(self, peak, total_steps, warmup_steps=0):
    self.peak = float(peak)
    self.total_steps = max(1, int(total_steps))
    self.warmup_steps = int(warmup_steps)

  def __call__(self, step):
    step = keras.ops.cast(step, 'float32')
    warmup = keras.ops.cast(max(1, self.warmup_steps), 'float32')
    decay_steps = float(max(1, self.total_steps - self.warmup_steps))
    progress = keras.ops.clip(
        (step - float(self.warmup_steps)) / decay_steps, 0.0, 1.0)
    cosine = 0.5 * self.peak * (1.0 + keras.ops.cos(math.pi * progress))
    if self.warmup_steps == 0:
      return cosine
    return keras.ops.where(step < float(self.warmup_steps),
                           self.peak * (step + 1.0) / warmup, cosine)

  def get_config(self):
    return {'peak': self.peak, 'total_steps': self.total_steps,
            'warmup_steps': self.warmup_steps}


def _scalar(name, value, step):
  """Writes a TensorBoard scalar without needing the tensorboard package.

  `tf.summary.scalar` lives in tensorboard, which is not a dependency; the
  core op `tf.summary.write` with the scalars plugin's metadata writes the
  same event.
  """
  metadata = summary_pb2.SummaryMetadata()
  metadata.plugin_data.plugin_name = 'scalars'
  tf.summary.write(name, tf.constant(value, tf.float32), step=step,
                   metadata=metadata)


def _optimizer(peak_rate, total_steps, warmup_steps, options, variables):
  """Adam, or AdamW with `options.weight_decay`, on the cosine schedule."""
  schedule = _CosineSchedule(peak_rate, total_steps, warmup_steps)
  if options.weight_decay > 0:
    optimizer = keras.optimizers.AdamW(schedule,
                                       weight_decay=options.weight_decay)
    # Biases and normalization parameters are not decayed.
    optimizer.exclude_from_weight_decay(var_names=['bias', 'gamma', 'beta'])
  else:
    optimizer = keras.optimizers.Adam(schedule)
  optimizer.build(variables)
  return optimizer


def _bce(targets, probabilities, weights):
  """Mean binary cross-entropy; `weights` [num_classes] scale positives."""
  p = tf.clip_by_value(probabilities, _EPSILON, 1.0 - _EPSILON)
  loss = -(weights * targets * tf.math.log(p) +
           (1.0 - targets) * tf.math.log(1.0 - p))
  return tf.reduce_mean(loss)


class ClipSource(Protocol):
  """What `fit` and `Predictor` read clips from.

  `classifier.data.ClipSet` (in memory: heads on embeddings) and
  `classifier.example_store.ExampleStore` (streamed from disk: fine-tuning)
  both offer it. Batches are numpy arrays or tensors.

  Attributes:
    ids: [num_clips] clip ids.
    labels: [num_clips, num_classes] float32 0/1.
    num_examples: [num_clips] int64.
  """
  ids: np.ndarray
  labels: np.ndarray
  num_examples: np.ndarray

  def __len__(self) -> int:
    ...

  def subset(self, indices) -> 'ClipSource':
    """The clips at `indices` (ints or a boolean mask)."""

  def training_batches(self, batch_size: int, max_examples: Optional[int],
                       rng: np.random.Generator,
                       sampling: Optional[np.ndarray] = None) -> Iterator:
    """One epoch, ceil(num_clips / batch_size) batches (features [b, t,
    ...], mask [b, t], labels [b, C]): random order (or `sampling`
    probabilities, with replacement), clips cut to random windows of
    `max_examples`."""

  def inference_batches(self, examples_per_batch: int) -> Iterator:
    """Every clip once, whole: (clip indices [b], features [b, t, ...],
    mask [b, t]), about `examples_per_batch` padded examples a batch."""


class Predictor:
  """Batched, padded inference of a clip model over a `ClipSource`.

  The source groups clips by length so that little is padded, and batches
  by a budget of padded examples rather than of clips: an example is 128 floats
  for a head but a whole VGGish forward pass (about 100 MB of activations
  in the conv stack) for a fine-tuned model.

  Args:
    model: a clip model ({input_name, 'mask'} -> probabilities).
    input_name: 'embeddings' or 'examples'.
    examples_per_batch: padded examples per model call; None: 8192 for
      embeddings, 32 for log-mel examples.
  """

  def __init__(self, model, input_name: str,
               examples_per_batch: Optional[int] = None):
    self._model = model
    self._input_name = input_name
    if examples_per_batch is None:
      examples_per_batch = 8192 if input_name == 'embeddings' else 32
    self._budget = max(1, int(examples_per_batch))
    self._fn = tf.function(self._forward, reduce_retracing=True)

  def _forward(self, features, mask):
    return self._model({self._input_name: features, 'mask': mask},
                       training=False)

  def __call__(self, clip_set: 'ClipSource') -> np.ndarray:
    """[num_clips, num_classes] float32 probabilities."""
    num_classes = self._model.output_shape[-1]
    scores = np.zeros((len(clip_set), num_classes), np.float32)
    for indices, features, mask in clip_set.inference_batches(self._budget):
      scores[indices] = self._fn(tf.convert_to_tensor(features),
                                 tf.convert_to_tensor(mask)).numpy()
    return scores


def fit(model: keras.Model, train_set: ClipSource,
        val_set: Optional[ClipSource], input_name: str,
        options: TrainOptions,
        backbone_variables: Sequence = (), log_dir: Optional[str] = None
        ) -> FitResult:
  """Trains `model` in place; it ends holding the best epoch's weights.

  Args:
    model: a clip model ({input_name, 'mask'} -> probabilities).
    train_set: training clips (clips without examples are skipped): a
      `data.ClipSet` in memory or an `example_store.ExampleStore` on disk.
    val_set: validation clips, for early stopping on mAP (either kind);
      None only with `options.keep_last` (nothing to validate on).
    input_name: 'embeddings' or 'examples'.
    options: hyperparameters.
    backbone_variables: the model's variables that train at
      `options.backbone_learning_rate` (fine-tuning).
    log_dir: TensorBoard directory (None: no logs).

  Returns:
    A FitResult.

  Raises:
    ValueError: empty training or validation data, or no trainable weights.
  """
  keep = train_set.num_examples > 0
  if not keep.all():
    logging.warning('skipping %d training clips without examples',
                    int((~keep).sum()))
    train_set = train_set.subset(keep)
  if len(train_set) == 0:
    raise ValueError('no training clips with examples')
  if val_set is None:
    if not options.keep_last:
      raise ValueError('training without validation clips needs keep_last '
                       '(no epoch can be chosen)')
  elif len(val_set) == 0:
    raise ValueError('no validation clips: give validation records or a '
                     'validation split that selects some clips')
  if val_set is not None and not val_set.labels.any():
    raise ValueError('the validation clips have no positive label, so mAP is '
                     'undefined; use more validation data')

  rng = np.random.default_rng(options.seed)
  steps_per_epoch = max(1, math.ceil(len(train_set) / options.batch_size))
  total_steps = steps_per_epoch * options.epochs
  warmup_steps = int(round(options.warmup_epochs * steps_per_epoch))

  backbone_ids = {id(v) for v in backbone_variables}
  trainable = list(model.trainable_variables)
  head_vars = [v for v in trainable if id(v) not in backbone_ids]
  body_vars = [v for v in trainable if id(v) in backbone_ids]
  if not trainable:
    raise ValueError('the model has no trainable weights')
  head_opt = _optimizer(options.learning_rate, total_steps, warmup_steps,
                        options, head_vars)
  body_opt = None
  if body_vars:
    body_rate = (options.learning_rate if options.backbone_learning_rate is
                 None else options.backbone_learning_rate)
    body_opt = _optimizer(body_rate, total_steps, warmup_steps, options,
                          body_vars)

  weights = tf.constant(
      positive_weights(train_set.labels, options.class_weighting))
  smoothing = float(options.label_smoothing)
  alpha = float(options.mixup_alpha)
  mixup_seed = keras.random.SeedGenerator(options.seed + 1)
  example_dropout = float(options.example_dropout)
  dropout_seed = keras.random.SeedGenerator(options.seed + 2)

  def train_step(features, mask, targets):
    if example_dropout > 0:
      kept = mask * tf.cast(
          keras.random.uniform(tf.shape(mask), seed=dropout_seed) >=
          example_dropout, mask.dtype)
      # A clip that lost every example keeps them all.
      mask = tf.where(tf.reduce_sum(kept, axis=1, keepdims=True) > 0, kept,
                      mask)
    if alpha > 0:
      batch = tf.shape(features)[0]
      lam = keras.random.beta((batch,), alpha, alpha, seed=mixup_seed)
      perm = keras.random.shuffle(tf.range(batch), seed=mixup_seed)
      shape = tf.concat([[batch], tf.ones([tf.rank(features) - 1],
                                          tf.int32)], 0)
      lam_x = tf.reshape(lam, shape)
      features = lam_x * features + (1.0 - lam_x) * tf.gather(features, perm)
      mask = tf.maximum(mask, tf.gather(mask, perm))
      lam_y = lam[:, None]
      targets = lam_y * targets + (1.0 - lam_y) * tf.gather(targets, perm)
    targets = targets * (1.0 - smoothing) + 0.5 * smoothing
    with tf.GradientTape() as tape:
      probabilities = model({input_name: features, 'mask': mask},
                            training=True)
      loss = _bce(targets, probabilities, weights)
      if model.losses:
        loss += tf.add_n(model.losses)
    grads = tape.gradient(loss, head_vars + body_vars)
    head_opt.apply_gradients(zip(grads[:len(head_vars)], head_vars))
    if body_opt is not None:
      body_opt.apply_gradients(zip(grads[len(head_vars):], body_vars))
    return loss

  train_fn = tf.function(train_step, reduce_retracing=True)
  predictor = Predictor(model, input_name, options.eval_examples_per_batch)
  sampling = (sampling_probabilities(train_set.labels)
              if options.balanced_sampling else None)

  writers = None
  if log_dir:
    writers = {name: tf.summary.create_file_writer(os.path.join(log_dir, name))
               for name in ('train', 'validation')}

  history = []
  best_map, best_epoch, best_weights = -1.0, 0, None
  stale = 0
  start = time.monotonic()
  progress_mode = 1 if sys.stdout.isatty() else 2
  for epoch in range(1, options.epochs + 1):
    epoch_start = time.monotonic()
    batches = train_set.training_batches(options.batch_size,
                                         options.max_examples, rng, sampling)
    bar = (keras.utils.Progbar(steps_per_epoch, verbose=progress_mode,
                               unit_name='step',
                               stateful_metrics=_BAR_METRICS)
           if options.verbose else None)
    if bar is not None:
      # The progress display, like Model.fit's, on stdout.
      sys.stdout.write(f'Epoch {epoch}/{options.epochs}\n')
      sys.stdout.flush()
    losses = []
    for step, (features, mask, targets) in enumerate(batches):
      loss = float(train_fn(tf.convert_to_tensor(features),
                            tf.convert_to_tensor(mask),
                            tf.convert_to_tensor(targets)))
      if not math.isfinite(loss):
        raise FloatingPointError(
            f'the training loss became {loss} at epoch {epoch}, step '
            f'{step + 1}; lower the learning rate')
      losses.append(loss)
      if bar is not None and step + 1 < steps_per_epoch:
        bar.update(step + 1, [('loss', float(np.mean(losses)))],
                   finalize=False)

    if val_set is not None:
      val_scores = predictor(val_set)
    improved_weights = [np.array(w) for w in model.get_weights()]
    if val_set is None:
      val_map = val_loss = float('nan')
    else:
      val_map = metrics_lib.mean_average_precision(val_set.labels, val_scores)
      val_loss = float(_bce(tf.constant(val_set.labels),
                            tf.constant(val_scores), 1.0))
    improved = val_map > best_map + 1e-5
    if improved:
      best_map, best_epoch, stale = val_map, epoch, 0
      best_weights = improved_weights
    else:
      stale += 1
    rate = float(head_opt.learning_rate)
    record = {'epoch': epoch, 'loss': float(np.mean(losses)),
              'val_loss': val_loss, 'val_mAP': val_map,
              'learning_rate': rate,
              'seconds': time.monotonic() - epoch_start}
    history.append(record)
    if bar is not None:
      bar.update(steps_per_epoch, [('loss', record['loss']),
                                   ('val_loss', val_loss),
                                   ('val_mAP', val_map)], finalize=True)
    logging.info('epoch %d/%d: loss %.5f val_loss %.5f val_mAP %.4f%s '
                 '(%.0f s)', epoch, options.epochs, record['loss'], val_loss,
                 val_map, ' (best)' if improved else '', record['seconds'])
    if writers is not None:
      with writers['train'].as_default():
        _scalar('epoch_loss', record['loss'], epoch)
        _scalar('epoch_learning_rate', rate, epoch)
      if val_set is not None:
        with writers['validation'].as_default():
          _scalar('epoch_loss', val_loss, epoch)
          _scalar('epoch_mAP', val_map, epoch)
    if stale >= options.patience and not options.keep_last:
      logging.info('early stop: no better validation mAP for %d epochs',
                   options.patience)
      break

  if writers is not None:
    for writer in writers.values():
      writer.flush()
  if options.keep_last:
    model.set_weights(improved_weights)  # The last epoch's.
    best_epoch, best_map = len(history), history[-1]['val_mAP']
  elif best_weights is not None:
    model.set_weights(best_weights)
  return FitResult(history=history, best_epoch=best_epoch,
                   best_val_map=best_map,
                   stopped_early=len(history) < options.epochs,
                   seconds=time.monotonic() - start)
