"""Classifier heads over a clip's VGGish embeddings, and the fine-tuning model.

A clip is a variable number of 0.96 s examples, so every model here takes a
padded batch plus a mask:

  {'embeddings': [batch, max_examples, 128] float32,
   'mask': [batch, max_examples] float32 (1 = real example, 0 = padding)}

and returns per-class probabilities [batch, num_classes] float32 (sigmoid
outputs; the classes are not exclusive). Two heads:

- `mean_mlp`: the mean of the clip's embeddings, then an MLP (Dense, batch
  norm, ReLU, dropout) and a sigmoid layer: the classic AudioSet baseline.
- `attention`: multiple-instance learning. A small MLP encodes every example;
  multi-head attention pooling then weights the examples, each head with its
  own softmax over the clip's real examples and its own slice of the
  features, so a sound present in one second of ten is not averaged away
  (feature-level attention, Kong et al. 2019, "Weakly labelled AudioSet
  tagging with attention neural networks"). The plain mean is kept beside
  the attended features (a head with uniform weights), then a clip-level MLP
  and a sigmoid layer classify.

`build_finetune_model` stacks VGGish (from the `vggish` package) under a head:
its inputs are log-mel examples `{'examples': [batch, max_examples, 96, 64],
'mask': ...}` and it returns the same probabilities, so evaluation and
prediction treat both kinds alike.

All custom layers are registered with Keras, so saved `.keras` models reload
with plain `keras.models.load_model` once this module is imported.
"""

import warnings

import keras
from keras import ops

HEADS = ('mean_mlp', 'attention')
# Tuned on a held-out part of AudioSet's balanced train split (see
# classifier/experiments/audioset_baseline.py).
HEAD_DEFAULTS = {
    'mean_mlp': dict(hidden_units=2048, num_layers=2, dropout=0.5,
                     input_dropout=0.0),
    'attention': dict(hidden_units=2048, num_layers=1, dropout=0.5,
                      input_dropout=0.0, example_units=1024,
                      example_layers=1, attention_heads=16),
}
EMBEDDINGS, EXAMPLES, MASK = 'embeddings', 'examples', 'mask'
_PACKAGE = 'classifier'
# Attention logits of padding are pushed this far down before the softmax:
# exp(-1e9) underflows to exactly 0 in float32.
_NEG_INF = -1e9


def _expand_mask(example_mask, dtype):
  return ops.expand_dims(ops.cast(example_mask, dtype), -1)  # [b, t, 1]


@keras.saving.register_keras_serializable(package=_PACKAGE)
class MaskedMean(keras.layers.Layer):
  """Mean over the real (unmasked) examples of each clip.

  Call args:
    inputs: [batch, time, features] float32.
    example_mask: [batch, time] float32, 1 for real examples.

  Returns:
    [batch, features] float32; a clip with no real example gives zeros.
  """

  def call(self, inputs, example_mask):
    weights = _expand_mask(example_mask, inputs.dtype)
    total = ops.sum(inputs * weights, axis=1)  # [b, features]
    count = ops.maximum(ops.sum(weights, axis=1), 1.0)  # [b, 1]
    return total / count

  def compute_output_shape(self, inputs_shape, example_mask_shape=None):
    return (inputs_shape[0], inputs_shape[2])


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ApplyMask(keras.layers.Layer):
  """Zeroes the padding rows: [b, t, ...] * mask [b, t]."""

  def call(self, inputs, example_mask):
    mask = ops.cast(example_mask, inputs.dtype)
    for _ in range(len(inputs.shape) - 2):
      mask = ops.expand_dims(mask, -1)
    return inputs * mask


@keras.saving.register_keras_serializable(package=_PACKAGE)
class AttentionPooling(keras.layers.Layer):
  """Multi-head attention pooling over a clip's examples.

  The features [b, t, d] are split into `num_heads` slices of d / num_heads;
  head k pools its slice with weights `softmax_t(w_k . h_t)` over the real
  examples. With `include_mean`, the masked mean of all features is
  appended (a head with uniform weights, which the attention then only has
  to refine).

  Args:
    num_heads: attention heads; must divide the feature size.
    include_mean: also output the masked mean.

  Call args:
    inputs: [batch, time, features] float32.
    example_mask: [batch, time] float32, 1 for real examples.

  Returns:
    [batch, features] float32, or [batch, 2 * features] with the mean.
  """

  def __init__(self, num_heads=8, include_mean=True, **kwargs):
    super().__init__(**kwargs)
    self.num_heads = int(num_heads)
    self.include_mean = bool(include_mean)
    self.scores = keras.layers.Dense(self.num_heads, name='scores')

  def build(self, inputs_shape, example_mask_shape=None):
    features = inputs_shape[-1]
    if features % self.num_heads:
      raise ValueError(f'attention_heads ({self.num_heads}) must divide the '
                       f'feature size ({features})')
    self.scores.build(inputs_shape)
    self.built = True

  def call(self, inputs, example_mask):
    mask = _expand_mask(example_mask, inputs.dtype)  # [b, t, 1]
    logits = self.scores(inputs) + (1.0 - mask) * _NEG_INF  # [b, t, heads]
    with warnings.catch_warnings():
      # A clip of one example (t == 1) is legitimate: its weight is 1. Keras
      # warns about any softmax over an axis of size 1.
      warnings.filterwarnings('ignore', message='You are using a softmax')
      weights = ops.softmax(logits, axis=1)  # [b, t, heads]
    features = inputs.shape[-1]
    batch, time = ops.shape(inputs)[0], ops.shape(inputs)[1]
    sliced = ops.reshape(
        inputs, (batch, time, self.num_heads, features // self.num_heads))
    pooled = ops.sum(sliced * ops.expand_dims(weights, -1), axis=1)
    pooled = ops.reshape(pooled, (batch, features))  # [b, d]
    if not self.include_mean:
      return pooled
    mean = ops.sum(inputs * mask, axis=1) / ops.maximum(
        ops.sum(mask, axis=1), 1.0)  # [b, d]
    return ops.concatenate([pooled, mean], axis=-1)  # [b, 2d]

  def compute_output_shape(self, inputs_shape, example_mask_shape=None):
    features = inputs_shape[-1]
    if self.include_mean and features is not None:
      features *= 2
    return (inputs_shape[0], features)

  def get_config(self):
    config = super().get_config()
    config.update(num_heads=self.num_heads, include_mean=self.include_mean)
    return config


@keras.saving.register_keras_serializable(package=_PACKAGE)
class FeatureNormalization(keras.layers.Layer):
  """Fixed per-feature standardization `(x - mean) / std`.

  The statistics are measured once on the training embeddings, so the head
  works alike on dequantized PCA embeddings (range [-2, 2]) and on raw float
  embeddings (a different scale per dimension).

  Args:
    mean: [features] floats.
    std: [features] floats, positive.
  """

  def __init__(self, mean, std, **kwargs):
    super().__init__(**kwargs)
    self.mean = [float(v) for v in mean]
    self.std = [float(v) for v in std]
    if len(self.mean) != len(self.std):
      raise ValueError('mean and std must have the same length')
    if min(self.std) <= 0:
      raise ValueError('std must be positive')

  def call(self, inputs):
    mean = ops.convert_to_tensor(self.mean, dtype=inputs.dtype)
    std = ops.convert_to_tensor(self.std, dtype=inputs.dtype)
    return (inputs - mean) / std

  def get_config(self):
    config = super().get_config()
    config.update(mean=self.mean, std=self.std)
    return config


def _mlp(x, units, num_layers, dropout, name):
  """Dense -> batch norm -> ReLU -> dropout, `num_layers` times."""
  for i in range(num_layers):
    x = keras.layers.Dense(units, name=f'{name}_dense{i + 1}')(x)
    x = keras.layers.BatchNormalization(name=f'{name}_bn{i + 1}')(x)
    x = keras.layers.ReLU(name=f'{name}_relu{i + 1}')(x)
    if dropout > 0:
      x = keras.layers.Dropout(dropout, name=f'{name}_dropout{i + 1}')(x)
  return x


def head_options(head, **overrides):
  """The head's defaults (`HEAD_DEFAULTS`) with `overrides` (None: default).

  Raises:
    ValueError: for an unknown head or option.
  """
  if head not in HEADS:
    raise ValueError(f'head must be one of {HEADS}, got {head!r}')
  options = dict(HEAD_DEFAULTS[head])
  for key, value in overrides.items():
    if key not in options:
      raise ValueError(f'the {head} head has no option {key!r}; its options '
                       f'are {sorted(options)}')
    if value is not None:
      options[key] = value
  return options


def build_head(num_classes, head='mean_mlp', embedding_size=128,
               feature_mean=None, feature_std=None, name=None, **options):
  """A classifier head on padded clips of embeddings.

  Args:
    num_classes: number of output classes.
    head: one of `HEADS`.
    embedding_size: features per example (128 for VGGish).
    feature_mean, feature_std: [embedding_size] statistics of the training
      embeddings for input standardization (None: no standardization).
    name: model name (default: the head's name).
    **options: overrides of `HEAD_DEFAULTS[head]`: `hidden_units` and
      `num_layers` (the clip-level MLP), `dropout` (after each hidden layer),
      `input_dropout`; for `attention` also `example_units`,
      `example_layers` (the per-example MLP) and `attention_heads`.

  Returns:
    A functional `keras.Model`: {'embeddings': [b, t, embedding_size]
    float32, 'mask': [b, t] float32} -> [b, num_classes] float32
    probabilities.

  Raises:
    ValueError: for an unknown head or option, or a bad size or rate.
  """
  options = head_options(head, **options)
  if num_classes < 1 or options['hidden_units'] < 1 or options[
      'num_layers'] < 0:
    raise ValueError(
        f'num_classes and hidden_units must be positive and num_layers '
        f'non-negative, got {num_classes}, {options["hidden_units"]}, '
        f'{options["num_layers"]}')
  for key in ('dropout', 'input_dropout'):
    if not 0.0 <= options[key] < 1.0:
      raise ValueError(f'{key} must lie in [0, 1), got {options[key]}')
  embeddings = keras.Input((None, embedding_size), name=EMBEDDINGS)
  mask = keras.Input((None,), name=MASK)
  x = embeddings
  if feature_mean is not None:
    x = FeatureNormalization(feature_mean, feature_std, name='normalize')(x)
    # Padding rows are zero before, not after, standardization.
    x = ApplyMask(name='zero_padding')(x, mask)
  if options['input_dropout'] > 0:
    x = keras.layers.Dropout(options['input_dropout'], name='input_dropout')(x)
  if head == 'mean_mlp':
    x = MaskedMean(name='mean_pool')(x, mask)  # [b, embedding_size]
  else:
    # Dense and batch norm act on the last axis, so this MLP runs on every
    # example of every clip. Padding rows are computed and then pooled away
    # (their batch-norm statistics count; clips are mostly full length).
    x = _mlp(x, options['example_units'], options['example_layers'],
             options['dropout'], 'example')  # [b, t, example_units]
    x = AttentionPooling(options['attention_heads'], include_mean=True,
                         name='attention_pool')(x, mask)  # [b, 2 * units]
  x = _mlp(x, options['hidden_units'], options['num_layers'],
           options['dropout'], 'clip')
  outputs = keras.layers.Dense(num_classes, activation='sigmoid',
                               name='classifier')(x)
  return keras.Model({EMBEDDINGS: embeddings, MASK: mask}, outputs,
                     name=name or head)


def build_ensemble(members, name='ensemble'):
  """One model whose probabilities are the mean of `members`' probabilities.

  The members (e.g. the models of k-fold training) take the same inputs and
  are nested whole, so the ensemble saves, reloads, evaluates, predicts and
  exports like a single model.

  Args:
    members: two or more clip models with the same input names and shapes
      and the same number of classes, each with its own name.
    name: the ensemble's name.

  Returns:
    A functional `keras.Model` with the members' inputs -> [b, num_classes]
    mean probabilities.

  Raises:
    ValueError: fewer than two members, repeated names, or members that
      disagree on their inputs or outputs.
  """
  members = list(members)
  if len(members) < 2:
    raise ValueError(f'an ensemble needs at least 2 models, got '
                     f'{len(members)}')
  names = [m.name for m in members]
  if len(set(names)) != len(names):
    raise ValueError(f'ensemble members need distinct names, got {names}')
  first = members[0]
  specs = {key: tensor.shape for key, tensor in first.input.items()}
  for member in members[1:]:
    if ({key: t.shape for key, t in member.input.items()} != specs or
        member.output_shape != first.output_shape):
      raise ValueError(f'ensemble member {member.name!r} has other inputs or '
                       f'outputs than {first.name!r}')
  inputs = {key: keras.Input(shape[1:], name=key)
            for key, shape in specs.items()}
  outputs = keras.layers.Average(name='mean_probability')(
      [member(inputs) for member in members])
  return keras.Model(inputs, outputs, name=name)


# ------------------------------------------------------------ fine-tuning


@keras.saving.register_keras_serializable(package=_PACKAGE)
class ExampleEncoder(keras.layers.Layer):
  """Runs a per-example backbone (VGGish) over the real examples of clips.

  Only unmasked examples go through the backbone (padding would cost a full
  VGGish forward pass each); their outputs are scattered back into place,
  padding rows get zeros.

  Args:
    backbone: a Keras model [n, *example_shape] -> [n, features].

  Call args:
    examples: [batch, time, *example_shape] float32.
    example_mask: [batch, time] float32, 1 for real examples.

  Returns:
    [batch, time, features] float32.
  """

  def __init__(self, backbone, **kwargs):
    super().__init__(**kwargs)
    self.backbone = backbone

  def build(self, examples_shape, example_mask_shape=None):
    # The backbone is a functional model, built at construction.
    self.built = True

  def call(self, examples, example_mask, training=None):
    batch, time = ops.shape(examples)[0], ops.shape(examples)[1]
    example_shape = tuple(examples.shape[2:])
    flat = ops.reshape(examples, (-1,) + example_shape)  # [b * t, ...]
    flat_mask = ops.reshape(example_mask, (-1,))  # [b * t]
    (indices,) = ops.nonzero(flat_mask > 0.5)  # [n]
    encoded = self.backbone(ops.take(flat, indices, axis=0),
                            training=training)  # [n, features]
    features = encoded.shape[-1]
    scattered = ops.scatter(ops.expand_dims(indices, -1), encoded,
                            (batch * time, features))  # [b * t, features]
    return ops.reshape(scattered, (batch, time, features))

  def compute_output_shape(self, examples_shape, example_mask_shape=None):
    features = self.backbone.output_shape[-1]
    return (examples_shape[0], examples_shape[1], features)

  def get_config(self):
    config = super().get_config()
    config['backbone'] = keras.saving.serialize_keras_object(self.backbone)
    return config

  @classmethod
  def from_config(cls, config):
    # Registers VGGish's own layers (the empty-batch guard) before they are
    # deserialized; slow to import, so only here.
    # pylint: disable-next=g-import-not-at-top,unused-import
    from vggish import model as _
    config = dict(config)
    config['backbone'] = keras.saving.deserialize_keras_object(
        config['backbone'])
    return cls(**config)


@keras.saving.register_keras_serializable(package=_PACKAGE)
class SpecAugment(keras.layers.Layer):
  """SpecAugment-style masking of log-mel examples, in training only.

  Each example gets `time_masks` runs of up to `max_time_frames` frames and
  `freq_masks` runs of up to `max_freq_bands` bands set to the example's mean
  log-mel value (a neutral level; zero would be loud in the log domain).
  Widths and positions are uniform random (Park et al. 2019). At inference
  the layer is the identity.

  Args:
    time_masks, max_time_frames: number and width of time masks.
    freq_masks, max_freq_bands: number and width of frequency masks.
    seed: seed of the masks.

  Call args:
    inputs: [batch, time, frames, bands] float32.
    training: masks only when True.
  """

  def __init__(self, time_masks=2, max_time_frames=12, freq_masks=2,
               max_freq_bands=8, seed=None, **kwargs):
    super().__init__(**kwargs)
    self.time_masks = int(time_masks)
    self.max_time_frames = int(max_time_frames)
    self.freq_masks = int(freq_masks)
    self.max_freq_bands = int(max_freq_bands)
    self.seed = seed
    self.seed_generator = keras.random.SeedGenerator(seed)

  def _mask(self, batch_shape, size, count, max_width):
    """[*batch_shape, size] bool, True inside one of `count` random runs."""
    positions = ops.arange(size)
    masked = ops.zeros(tuple(batch_shape) + (size,), dtype='bool')
    for _ in range(count):
      width = keras.random.randint(tuple(batch_shape) + (1,), 0,
                                   max_width + 1, seed=self.seed_generator)
      start = ops.cast(
          keras.random.uniform(tuple(batch_shape) + (1,),
                               seed=self.seed_generator) *
          ops.cast(size - width + 1, 'float32'), 'int32')
      masked = ops.logical_or(
          masked, ops.logical_and(positions >= start,
                                  positions < start + width))
    return masked

  def call(self, inputs, training=None):
    if not training:
      return inputs
    shape = ops.shape(inputs)
    frames, bands = inputs.shape[-2], inputs.shape[-1]
    batch_shape = (shape[0], shape[1])
    time_mask = self._mask(batch_shape, frames, self.time_masks,
                           self.max_time_frames)  # [b, t, frames]
    freq_mask = self._mask(batch_shape, bands, self.freq_masks,
                           self.max_freq_bands)  # [b, t, bands]
    masked = ops.logical_or(ops.expand_dims(time_mask, -1),
                            ops.expand_dims(freq_mask, -2))
    fill = ops.mean(inputs, axis=(-2, -1), keepdims=True)  # [b, t, 1, 1]
    return ops.where(masked, fill, inputs)

  def get_config(self):
    config = super().get_config()
    config.update(time_masks=self.time_masks,
                  max_time_frames=self.max_time_frames,
                  freq_masks=self.freq_masks,
                  max_freq_bands=self.max_freq_bands, seed=self.seed)
    return config


def build_finetune_model(backbone, head_model, spec_augment=None,
                         name='vggish_finetune'):
  """VGGish and a head as one model on log-mel examples.

  Args:
    backbone: VGGish, [n, 96, 64] -> [n, 128] pre-activation embeddings
      (from `vggish.model.VGGish`); freeze layers on it before training.
    head_model: a model from `build_head` on 128-d embeddings.
    spec_augment: optional `SpecAugment` layer applied to the examples.
    name: the model's name.

  Returns:
    A functional `keras.Model`: {'examples': [b, t, 96, 64] float32,
    'mask': [b, t] float32} -> [b, num_classes] probabilities. A ReLU sits
    between VGGish's pre-activation embedding and the head, as upstream
    advises for stacking a model on VGGish.
  """
  frames, bands = backbone.input_shape[1:]
  examples = keras.Input((None, frames, bands), name=EXAMPLES)
  mask = keras.Input((None,), name=MASK)
  x = examples
  if spec_augment is not None:
    x = spec_augment(x)
  x = ExampleEncoder(backbone, name='encoder')(x, mask)  # [b, t, 128]
  x = keras.layers.ReLU(name='embedding_relu')(x)
  outputs = head_model({EMBEDDINGS: x, MASK: mask})
  return keras.Model({EXAMPLES: examples, MASK: mask}, outputs, name=name)
