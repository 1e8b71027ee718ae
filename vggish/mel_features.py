"""The log-mel spectrogram of the original VGGish release, as small numpy functions.

Everything is float64, like upstream, and composes as

  waveform -> frame -> * periodic_hann -> |rfft| (stft_magnitude)
           -> @ spectrogram_to_mel_matrix -> log(mel + offset)

`log_mel_spectrogram` runs the whole chain with the sizes from a `Params`;
`vggish.frontend` cuts its output into [96, 64] examples, and
`vggish.tf_frontend` reuses `mel_matrix` so both frontends share one matrix.
"""

import functools

import numpy as np

from vggish.params import DEFAULT_PARAMS

# The HTK mel scale: mel = MEL_HIGH_FREQUENCY_Q * ln(1 + hz / MEL_BREAK_FREQUENCY_HERTZ).
MEL_BREAK_FREQUENCY_HERTZ = 700.0
MEL_HIGH_FREQUENCY_Q = 1127.0


def num_frames(num_samples, window_length, hop_length):
  """How many complete windows fit in a signal, with no padding at the end.

  Args:
    num_samples: int, length of the signal.
    window_length: int, samples per window.
    hop_length: int, samples between the starts of consecutive windows.

  Returns:
    int >= 0: `1 + floor((num_samples - window_length) / hop_length)`, or 0
    when not even one window fits (upstream raises inside numpy there).
  """
  if num_samples < window_length:
    return 0
  return 1 + (num_samples - window_length) // hop_length


def frame(data, window_length, hop_length):
  """Cuts an array into overlapping windows along axis 0, dropping the incomplete tail.

  Args:
    data: array [num_samples, ...] of any dtype.
    window_length: int > 0, samples per window.
    hop_length: int > 0, samples between window starts.

  Returns:
    A read-only strided view [num_frames, window_length, ...] of `data`, with
    num_frames as given by `num_frames` (possibly 0: short input never raises).

  Raises:
    ValueError: if window_length or hop_length is not positive.
  """
  if window_length <= 0 or hop_length <= 0:
    raise ValueError(
        f'window_length and hop_length must be positive, got {window_length} '
        f'and {hop_length}')
  data = np.asarray(data)
  count = num_frames(data.shape[0], window_length, hop_length)
  shape = (count, window_length) + data.shape[1:]
  strides = (data.strides[0] * hop_length,) + data.strides
  return np.lib.stride_tricks.as_strided(data, shape=shape, strides=strides,
                                         writeable=False)


def periodic_hann(window_length):
  """The periodic Hann window, `0.5 - 0.5 * cos(2 * pi * n / N)`, n = 0..N-1.

  Periodic (the denominator is N, not N - 1 as in `np.hanning`) because that is
  the window upstream used; the symmetric one changes every spectrum a little.

  Args:
    window_length: int, N.

  Returns:
    float64 [window_length].
  """
  return 0.5 - 0.5 * np.cos(2.0 * np.pi / window_length * np.arange(window_length))


@functools.lru_cache(maxsize=8)
def _cached_hann(window_length):
  window = periodic_hann(window_length)
  window.setflags(write=False)
  return window


def stft_magnitude(signal, fft_length, hop_length, window_length):
  """Magnitude (not power) of the short-time Fourier transform.

  Args:
    signal: float [num_samples], mono.
    fft_length: int, FFT size; frames are zero-padded up to it.
    hop_length: int, samples between frame starts.
    window_length: int, samples per frame.

  Returns:
    float64 [num_frames, fft_length // 2 + 1]; num_frames may be 0.
  """
  fft_length = int(fft_length)
  frames = frame(np.asarray(signal, dtype=np.float64), window_length, hop_length)
  if fft_length < window_length:  # rfft then crops each frame, as upstream's did.
    windowed = frames * _cached_hann(window_length)
    return np.abs(np.fft.rfft(windowed, n=fft_length, axis=-1))
  # The windowed frames written straight into their zero padding: the same
  # numbers as rfft(frames * window, n=fft_length), without its padded copy.
  padded = np.zeros((frames.shape[0], fft_length))  # [num_frames, fft_length]
  np.multiply(frames, _cached_hann(window_length), out=padded[:, :window_length])
  return np.abs(np.fft.rfft(padded, axis=-1))


def hertz_to_mel(frequencies_hertz):
  """Converts frequencies in Hz to the HTK mel scale, `1127 * ln(1 + f / 700)`.

  Args:
    frequencies_hertz: float scalar or array, in Hz.

  Returns:
    float64 of the same shape, in mel.
  """
  return MEL_HIGH_FREQUENCY_Q * np.log(
      1.0 + np.asarray(frequencies_hertz, dtype=np.float64) / MEL_BREAK_FREQUENCY_HERTZ)


def spectrogram_to_mel_matrix(num_mel_bins, num_spectrogram_bins, audio_sample_rate,
                              lower_edge_hertz, upper_edge_hertz):
  """The matrix that maps |rfft| bins to mel bands: triangles linear in mel.

  Spectrogram bin k sits at `linspace(0, nyquist, num_spectrogram_bins)[k]` Hz.
  The band edges are `num_mel_bins + 2` points spaced evenly in mel from
  `lower_edge_hertz` to `upper_edge_hertz`; band i rises from edge i to edge
  i + 1 and falls to edge i + 2, with slopes linear in mel (not in Hz), clipped
  at 0. The DC row is zeroed because upstream did so: the DC bin carries no
  pitch information, and a lower edge near 0 Hz would otherwise weight it.

  Args:
    num_mel_bins: int, number of mel bands (columns).
    num_spectrogram_bins: int, rfft bins (rows), fft_length // 2 + 1.
    audio_sample_rate: float, Hz, of the audio the spectrogram came from.
    lower_edge_hertz: float, lower edge of the lowest band.
    upper_edge_hertz: float, upper edge of the highest band.

  Returns:
    float64 [num_spectrogram_bins, num_mel_bins].

  Raises:
    ValueError: if the edges are not 0 <= lower < upper <= nyquist.
  """
  nyquist_hertz = audio_sample_rate / 2.0
  if lower_edge_hertz < 0.0:
    raise ValueError(f'lower_edge_hertz must be >= 0, got {lower_edge_hertz}')
  if lower_edge_hertz >= upper_edge_hertz:
    raise ValueError(f'lower_edge_hertz {lower_edge_hertz} must be below '
                     f'upper_edge_hertz {upper_edge_hertz}')
  if upper_edge_hertz > nyquist_hertz:
    raise ValueError(f'upper_edge_hertz {upper_edge_hertz} is above the Nyquist '
                     f'frequency {nyquist_hertz} of {audio_sample_rate} Hz audio')
  bins_mel = hertz_to_mel(np.linspace(0.0, nyquist_hertz, num_spectrogram_bins))
  edges_mel = np.linspace(hertz_to_mel(lower_edge_hertz), hertz_to_mel(upper_edge_hertz),
                          num_mel_bins + 2)
  lower, center, upper = edges_mel[:-2], edges_mel[1:-1], edges_mel[2:]  # [num_mel_bins]
  bins_mel = bins_mel[:, np.newaxis]  # [num_spectrogram_bins, 1]
  rising = (bins_mel - lower) / (center - lower)  # [num_spectrogram_bins, num_mel_bins]
  falling = (upper - bins_mel) / (upper - center)
  matrix = np.maximum(0.0, np.minimum(rising, falling))
  matrix[0, :] = 0.0
  return matrix


@functools.lru_cache(maxsize=8)
def mel_matrix(params=DEFAULT_PARAMS):
  """`spectrogram_to_mel_matrix` for the sizes in `params`: float64 [257, 64] by default.

  Computed once per `params` (the frontend needs it for every file); the
  array is read-only.
  """
  matrix = spectrogram_to_mel_matrix(
      num_mel_bins=params.num_mel_bins,
      num_spectrogram_bins=params.num_spectrogram_bins,
      audio_sample_rate=params.sample_rate,
      lower_edge_hertz=params.mel_min_hz,
      upper_edge_hertz=params.mel_max_hz)
  matrix.setflags(write=False)
  return matrix


def log_mel_spectrogram(data, params=DEFAULT_PARAMS):
  """The log-mel spectrogram of a mono waveform, as upstream computed it.

  Args:
    data: float [num_samples], mono, at `params.sample_rate`.
    params: `Params` giving window, hop, FFT size, mel bands and log offset.

  Returns:
    float64 [num_frames, params.num_mel_bins], `log(mel + params.log_offset)`;
    num_frames = 1 + floor((num_samples - 400) / 160) by default, or 0 for a
    signal shorter than one window.
  """
  magnitude = stft_magnitude(
      data,
      fft_length=params.fft_length,
      hop_length=params.stft_hop_length_samples,
      window_length=params.stft_window_length_samples)  # [num_frames, 257]
  mel = magnitude @ mel_matrix(params)  # [num_frames, 64]
  return np.log(mel + params.log_offset)
