"""The VGGish log-mel frontend in TensorFlow: batched, in-graph, float32.

`LogMelFrontend` computes what `vggish.frontend.waveform_to_examples` computes
for 16 kHz mono audio (periodic-Hann STFT without end padding, magnitude, the
same mel matrix from `vggish.mel_features`, log(mel + 0.01), framing into
[96, 64] examples), but on a batch of waveforms, on any device, inside a Keras
model or a `tf.function`. It works in float32, so its examples differ from the
float64 ones: by a few 1e-4 at worst (quiet bands next to a loud pure tone),
by ~1e-7 typically (tests/test_tf_frontend.py states the tolerances).
Resampling is not part of it: feed it 16 kHz audio (`vggish.audio_io`).
"""

import dataclasses
import functools

import keras
import numpy as np
import tensorflow as tf

from vggish import mel_features
from vggish.params import DEFAULT_PARAMS, Params


@keras.saving.register_keras_serializable(package='vggish')
class LogMelFrontend(keras.layers.Layer):
  """Keras layer: batch of 16 kHz waveforms -> VGGish examples and their counts.

  Call arguments:
    waveform: float32 [batch, samples] at `params.sample_rate`, mono. Items of
      different lengths are zero-padded (or padded with anything) to a common
      length and described by `lengths`.
    lengths: optional int32 [batch], the valid samples of each item (clipped to
      [0, samples]); None means every item fills the whole row.

  Returns:
    (examples, num_examples):
      examples: float32 [batch, max_examples, 96, 64], where max_examples is the
        count that the padded length `samples` gives. Row i holds exactly the
        examples that item i alone gives in its first num_examples[i] slots and
        zeros after them.
      num_examples: int32 [batch], 0 for an item shorter than one example (and
        for an empty batch row); nothing raises on short input.
  """

  def __init__(self, params=DEFAULT_PARAMS, **kwargs):
    """Builds the layer.

    Args:
      params: `Params`; a dict (as `get_config` writes it) is accepted too.
      **kwargs: Keras layer arguments (name, ...). The layer computes in float32
        whatever the global dtype policy: float16 would ruin the spectrum.
    """
    if isinstance(params, dict):
      params = Params(**params)
    if not isinstance(params, Params):
      raise ValueError(f'params must be a vggish Params, got {type(params).__name__}')
    kwargs.setdefault('dtype', 'float32')
    kwargs.setdefault('autocast', False)
    super().__init__(**kwargs)
    self.params = params
    # The numpy frontend's own window and matrix, computed in float64 and rounded
    # once: tf.signal.hann_window's float32 cosine is off by up to 2.5e-7, which
    # more than doubles the worst log-mel error on a pure tone (6e-4 vs 2.6e-4).
    self._window = mel_features.periodic_hann(
        params.stft_window_length_samples).astype(np.float32)  # [400]
    self._mel_matrix = mel_features.mel_matrix(params).astype(np.float32)  # [257, 64]

  def call(self, waveform, lengths=None):
    p = self.params
    window = p.stft_window_length_samples
    hop = p.stft_hop_length_samples
    waveform = tf.cast(waveform, tf.float32)  # [b, samples]
    num_samples = tf.shape(waveform)[1]
    # The STFT spelled out (tf.signal.stft does the same steps) because the RFFT
    # kernel rejects an empty input whose rows are shorter than fft_length, and
    # an empty batch or a batch shorter than one window is valid input here.
    frames = tf.signal.frame(waveform, frame_length=window, frame_step=hop,
                             pad_end=False)  # [b, frames, 400]
    frames *= tf.constant(self._window)  # [b, frames, 400]
    frames = tf.pad(frames, [[0, 0], [0, 0], [0, p.fft_length - window]])  # [b, frames, 512]
    magnitude = tf.abs(tf.signal.rfft(frames, [p.fft_length]))  # [b, frames, 257]
    mel = tf.matmul(magnitude, tf.constant(self._mel_matrix))  # [b, frames, 64]
    log_mel = tf.math.log(mel + p.log_offset)  # [b, frames, 64]
    examples = tf.signal.frame(
        log_mel, frame_length=p.example_window_length,
        frame_step=p.example_hop_length, axis=1)  # [b, max_examples, 96, 64]

    if lengths is None:
      lengths = tf.fill(tf.shape(waveform)[:1], num_samples)  # [b]
    else:
      lengths = tf.clip_by_value(tf.cast(lengths, tf.int32), 0, num_samples)  # [b]
    num_examples = self._count_examples(lengths)  # [b]
    # Example j of item i reads samples below lengths[i] iff j < num_examples[i],
    # so the kept examples never see the padding; the rest are zeroed (tf.where,
    # not a product, so that NaN padding cannot leak in).
    keep = tf.sequence_mask(num_examples, tf.shape(examples)[1])  # [b, max_examples]
    # expand_dims, not [..., tf.newaxis]: TFLite has no builtin strided slice
    # for bool tensors, and the exports (vggish/export.py) run this layer there.
    keep = tf.expand_dims(tf.expand_dims(keep, -1), -1)  # [b, max_examples, 1, 1]
    examples = tf.where(keep, examples, tf.zeros_like(examples))
    return examples, num_examples

  def _count_examples(self, lengths):
    """int32 [b] lengths in samples -> int32 [b] examples, without end padding."""
    p = self.params
    frames = _count_windows(lengths, p.stft_window_length_samples,
                            p.stft_hop_length_samples)
    return _count_windows(frames, p.example_window_length, p.example_hop_length)

  def compute_output_shape(self, waveform_shape, lengths_shape=None):
    p = self.params
    batch, num_samples = waveform_shape[0], waveform_shape[1]
    max_examples = None
    if num_samples is not None:
      frames = mel_features.num_frames(num_samples, p.stft_window_length_samples,
                                       p.stft_hop_length_samples)
      max_examples = mel_features.num_frames(frames, p.example_window_length,
                                             p.example_hop_length)
    return ((batch, max_examples, p.example_window_length, p.num_mel_bins), (batch,))

  def compute_output_spec(self, waveform, lengths=None):
    examples_shape, counts_shape = self.compute_output_shape(
        waveform.shape, None if lengths is None else lengths.shape)
    return (keras.KerasTensor(examples_shape, dtype='float32'),
            keras.KerasTensor(counts_shape, dtype='int32'))

  def get_config(self):
    config = super().get_config()
    config['params'] = dataclasses.asdict(self.params)
    return config


def _count_windows(lengths, window, hop):
  """int32 [b]: complete windows in each length, `1 + (n - window) // hop` or 0."""
  return tf.where(lengths >= window, 1 + (lengths - window) // hop,
                  tf.zeros_like(lengths))


def waveform_to_examples_tf(waveform, params=DEFAULT_PARAMS):
  """One 16 kHz waveform -> examples, with `LogMelFrontend` (float32).

  Args:
    waveform: float [samples] at `params.sample_rate`, mono (numpy or tensor).
    params: `Params`.

  Returns:
    float32 tensor [num_examples, 96, 64]; num_examples is 0 for a clip
    shorter than 0.975 s (no short-clip policy is applied here).
  """
  return _single_waveform_fn(params)(waveform)


@functools.lru_cache(maxsize=8)
def _single_waveform_fn(params):
  """A `tf.function` [samples] -> [n, 96, 64], built once per params."""
  frontend = LogMelFrontend(params, name='log_mel_frontend')

  @tf.function(input_signature=[tf.TensorSpec([None], tf.float32)])
  def waveform_to_examples(waveform):
    examples, _ = frontend(waveform[tf.newaxis, :])
    return examples[0]

  return waveform_to_examples
