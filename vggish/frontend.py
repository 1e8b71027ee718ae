"""Waveform -> VGGish input examples [num_examples, 96, 64], exactly as upstream (float64).

The chain is upstream's `vggish_input`: average channels, resample to 16 kHz,
log-mel spectrogram (`vggish.mel_features`), then cut the log-mel frames into
examples of `params.example_window_length` frames every
`params.example_hop_length` frames, dropping an incomplete last example.

One addition, off by default: `params.short_clip_policy` decides what happens to a
clip too short for a single example (0.975 s). Upstream's behaviour, 'drop', gives
zero examples; 'pad' and 'repeat' give one. Short or even empty input never raises.
"""

import numpy as np

from vggish import audio_io
from vggish import mel_features
from vggish.params import DEFAULT_PARAMS


def apply_short_clip_policy(waveform, params=DEFAULT_PARAMS):
  """Lengthens a clip shorter than one example according to `params.short_clip_policy`.

  - 'drop' (upstream): the clip is returned unchanged, so it yields zero examples.
  - 'pad': zeros are appended up to `params.min_samples_per_example`.
  - 'repeat': the clip is tiled and cut to `params.min_samples_per_example`
    (cut, so that a short clip always gives exactly one example, as with 'pad');
    an empty clip has nothing to tile and is padded instead.

  Clips at least `params.min_samples_per_example` long are returned unchanged.

  Args:
    waveform: float [samples], mono at `params.sample_rate`.
    params: `Params`.

  Returns:
    float64 [samples'] with samples' >= min_samples_per_example unless the policy
    is 'drop'.
  """
  waveform = np.asarray(waveform, dtype=np.float64)
  min_samples = params.min_samples_per_example
  shortfall = min_samples - waveform.shape[0]
  if shortfall <= 0 or params.short_clip_policy == 'drop':
    return waveform
  if params.short_clip_policy == 'repeat' and waveform.shape[0] > 0:
    repeats = -(-min_samples // waveform.shape[0])  # ceil
    return np.tile(waveform, repeats)[:min_samples]
  return np.pad(waveform, (0, shortfall))  # 'pad', or 'repeat' of an empty clip.


def waveform_to_examples(data, sample_rate, params=DEFAULT_PARAMS):
  """Converts a waveform into VGGish input examples, as upstream's `waveform_to_examples`.

  Args:
    data: float [samples] or [samples, channels], nominally in [-1, 1]
      (channels are averaged over axis 1).
    sample_rate: int, Hz, of `data`; other rates than `params.sample_rate` are
      resampled with `vggish.resample` (resampy's kaiser_best, as upstream).
    params: `Params`.

  Returns:
    float64 [num_examples, params.example_window_length, params.num_mel_bins],
    i.e. [n, 96, 64] by default; n is 0 for a clip shorter than 0.975 s under the
    default short-clip policy 'drop'.

  Raises:
    ValueError: if data has more than two dimensions or sample_rate is not positive.
  """
  waveform = audio_io.prepare_waveform(data, sample_rate, params)  # [samples] float64
  waveform = apply_short_clip_policy(waveform, params)
  log_mel = mel_features.log_mel_spectrogram(waveform, params)  # [num_frames, 64]
  # A frame copy, so that the caller owns a writeable array, not a view of log_mel.
  return np.array(mel_features.frame(
      log_mel, window_length=params.example_window_length,
      hop_length=params.example_hop_length))  # [num_examples, 96, 64]


def wavfile_to_examples(path, params=DEFAULT_PARAMS):
  """Reads an audio file (any format `vggish.audio_io` reads) into VGGish examples.

  Args:
    path: str or os.PathLike.
    params: `Params`.

  Returns:
    float64 [num_examples, 96, 64], see `waveform_to_examples`.

  Raises:
    vggish.audio_io.AudioReadError: if the file cannot be read.
  """
  data, sample_rate = audio_io.read_audio(path)
  return waveform_to_examples(data, sample_rate, params)


def example_start_times(num_examples, params=DEFAULT_PARAMS):
  """Start time in seconds of each example, relative to the start of the clip.

  Args:
    num_examples: int >= 0.
    params: `Params`; examples start every `params.example_hop_length` frames
      of `params.stft_hop_seconds`.

  Returns:
    float64 [num_examples]: 0.0, 0.96, 1.92, ... by default.
  """
  if num_examples < 0:
    raise ValueError(f'num_examples must be >= 0, got {num_examples}')
  # An exact frame count divided by the frame rate rounds once: example 19 starts
  # at 18.24, where 19 * 96 * 0.01 gives 18.240000000000002.
  return np.arange(num_examples) * params.example_hop_length / params.features_sample_rate
