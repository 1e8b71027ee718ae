"""Audio -> VGGish examples exactly as the reference Fréchet Audio Distance reads it.

Google's reference FAD (Kilgour et al., 2019) does not use VGGish's own
input chain (`vggish.frontend`: 0.96 s examples, one after the other). Its
conventions, which published FAD numbers depend on:

1. Read a 16 kHz mono WAV with `scipy.io.wavfile.read`: int16 values, not
   rescaled to [-1, 1).
2. Loudness normalization: `samples / max(0.1, max(samples))`, the largest
   *signed* sample (not the largest magnitude); 0.1 only guards silence.
3. Windows of exactly 16,000 samples (1 s) every 8,000 samples,
   `range(0, n - 16000 + 1, 8000)`: a clip shorter than 1 s gives nothing,
   and the audio after the last whole window is not used.
4. Each window gives the standard VGGish log-mel spectrogram (98 frames of
   `vggish.mel_features`), of which the first 96 frames are one example.

`reference_examples` does 2-4. Since 8,000 samples are exactly 50 STFT hops,
window k's 96 frames are frames 50k .. 50k + 95 of the whole clip's log-mel,
so each frame is computed once rather than twice (the parity test compares
with the window-by-window computation).

Two readers give the samples of step 1:

- `read_reference_wav` ('reference' mode): scipy's WAV reader, and only
  16 kHz mono, as the reference; anything else is a clear error.
- `read_resampled` ('resample' mode, explicit): any file and rate
  `vggish.audio_io` reads, channels averaged, resampled to 16 kHz as VGGish
  does, in int16 units (x 32768). A 16 kHz mono int16 WAV gives exactly the
  reference's samples; anything else gives embeddings, and so FADs, that are
  not comparable with published numbers.

`write_reference_test_set` writes the reference's sanity-check set (sines with and
without a little noise).
"""

import logging
import os
import warnings
from typing import Dict, List, Tuple

import numpy as np

from vggish import audio_io
from vggish import extras
from vggish import mel_features
from vggish.params import DEFAULT_PARAMS

SAMPLE_RATE = 16000
WINDOW_SAMPLES = 16000  # 1 s: 98 log-mel frames, of which 96 make the example.
HOP_SAMPLES = 8000
MIN_PEAK = 0.1  # The normalization's floor: samples / max(MIN_PEAK, max(samples)).
# Resample mode works in the reference's units: int16 full scale.
INT16_SCALE = 32768.0

REFERENCE = 'reference'
RESAMPLE = 'resample'
MODES = (REFERENCE, RESAMPLE)

# Windows turned into log-mel at once (bounds memory on hour-long files: the
# STFT of 512 windows is about 0.5 GB).
_WINDOWS_PER_CHUNK = 512

_CONVERT_HINT = ('convert it (e.g. `ffmpeg -i IN -ar 16000 -ac 1 -c:a pcm_s16le OUT.wav`) '
                 'or pass --resample (its FADs are not comparable with published ones)')


def check_mode(mode: str) -> str:
  """Returns `mode`, or raises ValueError unless it is one of `MODES`."""
  if mode not in MODES:
    raise ValueError(f'mode must be one of {", ".join(MODES)}, got {mode!r}')
  return mode


def num_windows(num_samples: int) -> int:
  """len(range(0, num_samples - 16000 + 1, 8000)): the reference's window count."""
  if num_samples < WINDOW_SAMPLES:
    return 0
  return (num_samples - WINDOW_SAMPLES) // HOP_SAMPLES + 1


def read_reference_wav(path) -> np.ndarray:
  """A WAV file's samples as `scipy.io.wavfile.read` gives them (int16: not rescaled).

  Args:
    path: a 16 kHz mono WAV file.

  Returns:
    [samples] in the file's dtype (int16 for the reference's inputs; other
    PCM and float WAVs as scipy reads them, which the normalization then
    treats as the reference would).

  Raises:
    vggish.audio_io.AudioReadError: missing, not a WAV scipy reads, not
      16 kHz, not mono, empty or non-finite.
    vggish.extras.MissingExtraError: scipy is not installed.
  """
  wavfile = extras.require('scipy.io.wavfile', 'fad', 'the Fréchet Audio Distance')
  path = os.fspath(path)
  reason = audio_io.why_not_a_file(path)
  if reason:
    raise audio_io.AudioReadError(reason)
  try:
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter('always')
      rate, samples = wavfile.read(path)
  except MemoryError:
    raise
  except Exception as e:  # pylint: disable=broad-except  (struct.error, ValueError, EOFError...)
    raise audio_io.AudioReadError(
        f'{path}: cannot be read by the reference WAV reader (scipy.io.wavfile: {e}); '
        f'{_CONVERT_HINT}') from e
  for warning in caught:
    logging.debug('%s: %s', path, warning.message)
  samples = np.asarray(samples)
  if rate != SAMPLE_RATE:
    raise audio_io.AudioReadError(
        f'{path}: {rate} Hz, but the reference reads 16 kHz WAV only; {_CONVERT_HINT}')
  if samples.ndim != 1:
    raise audio_io.AudioReadError(
        f'{path}: {samples.shape[1]} channels, but the reference reads mono WAV only; '
        f'{_CONVERT_HINT}')
  if samples.size == 0:
    raise audio_io.AudioReadError(f'{path}: holds no audio samples')
  if samples.dtype.kind == 'f':
    audio_io.check_finite(samples, rate, source=path)
  return samples


def read_resampled(path) -> np.ndarray:
  """Any audio file as mono 16 kHz float64 samples in int16 units ('resample' mode).

  Channels are averaged and the rate converted as VGGish's own input chain
  does (`vggish.audio_io.prepare_waveform`); samples are scaled by 32768, so
  a 16 kHz mono int16 WAV gives exactly `read_reference_wav`'s values.

  Raises:
    vggish.audio_io.AudioReadError: the file cannot be decoded.
  """
  decoded = audio_io.decode_audio(path)
  waveform = audio_io.prepare_waveform(decoded.data, decoded.sample_rate)
  return waveform * INT16_SCALE


def read_samples(path, mode: str = REFERENCE) -> np.ndarray:
  """The samples of step 1 for `mode` ('reference' or 'resample')."""
  if check_mode(mode) == REFERENCE:
    return read_reference_wav(path)
  return read_resampled(path)


def normalize_loudness(samples: np.ndarray) -> np.ndarray:
  """`samples / max(0.1, max(samples))`, in the dtype numpy gives it (as the reference).

  int16 samples become float64 with their largest signed value 1.0; a clip
  whose samples are all <= 0.1 (silence, an all-negative clip) is divided by
  0.1.
  """
  samples = np.asarray(samples)
  if samples.size == 0:
    return samples.astype(np.float64)
  return samples / max(MIN_PEAK, samples.max())


def reference_examples(samples: np.ndarray, dtype=np.float64) -> np.ndarray:
  """Normalized 16 kHz samples -> one VGGish example per 1 s window, every 0.5 s.

  Args:
    samples: [num_samples] mono at 16 kHz, already loudness-normalized.
    dtype: of the result; the log-mel is computed in float64 either way
      (float32: what the model takes, at half the memory of an hour-long file).

  Returns:
    [num_windows(num_samples), 96, 64] of `dtype`: window k's log-mel frames
    0..95, as `vggish.frontend.waveform_to_examples` would give for
    `samples[8000 k: 8000 k + 16000]`.
  """
  params = DEFAULT_PARAMS
  frames_per_hop = HOP_SAMPLES // params.stft_hop_length_samples  # 50
  length = params.example_window_length  # 96
  total = num_windows(samples.shape[0])
  examples = np.empty((total, length, params.num_mel_bins), dtype)
  offsets = np.arange(length)
  for first in range(0, total, _WINDOWS_PER_CHUNK):
    count = min(_WINDOWS_PER_CHUNK, total - first)
    start = first * HOP_SAMPLES
    stop = start + (count - 1) * HOP_SAMPLES + WINDOW_SAMPLES
    log_mel = mel_features.log_mel_spectrogram(
        np.asarray(samples[start:stop], np.float64), params)
    rows = np.arange(count)[:, None] * frames_per_hop + offsets  # [count, 96]
    examples[first:first + count] = log_mel[rows]
  return examples


def file_examples(path, mode: str = REFERENCE) -> Tuple[np.ndarray, float]:
  """A file's FAD examples: (float32 [n, 96, 64], seconds of audio read).

  Raises:
    vggish.audio_io.AudioReadError: see `read_samples`.
  """
  samples = read_samples(path, mode)
  examples = reference_examples(normalize_loudness(samples), np.float32)
  return examples, samples.shape[0] / SAMPLE_RATE


# The reference's sanity check: sines at these frequencies; test1 and test2
# take every other one, with Gaussian noise of these standard deviations
# (relative to the peak).
TEST_SET_FREQUENCIES = tuple(range(100, 1001, 100))
TEST_SET_NOISY_FREQUENCIES = TEST_SET_FREQUENCIES[::2]
TEST_SET_NOISE = {'test1': 1e-4, 'test2': 1e-5}
TEST_SET_SECONDS = 6.0
_INT16_PEAK = 32767


def reference_test_set(seed: int = 0) -> Dict[str, Dict[str, np.ndarray]]:
  """The reference's test set as int16 arrays: {'background'|'test1'|'test2': {name: samples}}.

  background: 10 sines, 100 to 1,000 Hz every 100 Hz, 6 s, int16 full scale.
  test1, test2: 5 of those frequencies (100, 300, ..., 900 Hz) with Gaussian
  noise of standard deviation 1e-4 (test1) and 1e-5 (test2) times the peak,
  drawn with `seed`.
  """
  rng = np.random.default_rng(seed)
  t = np.arange(int(TEST_SET_SECONDS * SAMPLE_RATE)) / SAMPLE_RATE

  def to_int16(wave: np.ndarray) -> np.ndarray:
    return np.round(np.clip(wave, -1.0, 1.0) * _INT16_PEAK).astype(np.int16)

  sets: Dict[str, Dict[str, np.ndarray]] = {'background': {}}
  for frequency in TEST_SET_FREQUENCIES:
    sets['background'][f'sine_{frequency}hz'] = to_int16(np.sin(2 * np.pi * frequency * t))
  for name, noise in TEST_SET_NOISE.items():
    sets[name] = {}
    for frequency in TEST_SET_NOISY_FREQUENCIES:
      wave = np.sin(2 * np.pi * frequency * t) + rng.normal(0.0, noise, t.shape)
      sets[name][f'sine_{frequency}hz_noise_{noise:g}'] = to_int16(wave)
  return sets


def write_reference_test_set(directory, seed: int = 0) -> List[str]:
  """Writes the test set as 16 kHz mono int16 WAVs: DIR/{background,test1,test2}/*.wav.

  Returns:
    The files written.

  Raises:
    OSError: the directory cannot be created or written.
  """
  import soundfile  # pylint: disable=import-outside-toplevel  (a core dependency)
  from vggish import files as files_lib  # pylint: disable=import-outside-toplevel
  written = []
  for subset, waves in reference_test_set(seed).items():
    folder = os.path.join(os.fspath(directory), subset)
    os.makedirs(folder, exist_ok=True)
    for name, samples in waves.items():
      path = os.path.join(folder, name + '.wav')

      def write(f, samples=samples):
        soundfile.write(f, samples, SAMPLE_RATE, subtype='PCM_16', format='WAV')

      files_lib.write_atomically(path, write, what='the test file')
      written.append(path)
  return written
