"""Parity of vggish.resample with resampy.resample (kaiser_best), which upstream uses."""

import numpy as np
import pytest
import resampy

from vggish import resample as resample_lib

# Max |ours - resampy| on signals in [-1, 1] (observed: ~5e-11).
TOLERANCE = 1e-6
TARGET_RATE = 16000
RATES = (44100, 48000, 22050, 8000, 96000, 32000, 11025, 24000)


def _noise(num_samples, seed):
  return np.random.RandomState(seed).uniform(-1.0, 1.0, num_samples)


def _chirp(num_samples, sample_rate):
  """A 0.9-amplitude sweep from 20 Hz to 0.45 * sample_rate (past 8 kHz)."""
  t = np.arange(num_samples) / sample_rate
  duration = max(num_samples / sample_rate, 1e-9)
  f0, f1 = 20.0, 0.45 * sample_rate
  return 0.9 * np.sin(2 * np.pi * (f0 * t + (f1 - f0) * t**2 / (2 * duration)))


def _assert_matches_resampy(x, sr_orig, sr_new=TARGET_RATE):
  ours = resample_lib.resample(x, sr_orig, sr_new)
  expected = resampy.resample(x, sr_orig, sr_new)
  assert ours.dtype == np.float64
  assert ours.shape == expected.shape
  np.testing.assert_allclose(ours, expected, rtol=0, atol=TOLERANCE)


@pytest.mark.parametrize('sr_orig', RATES)
@pytest.mark.parametrize('signal', ['noise', 'chirp'])
def test_matches_resampy(sr_orig, signal):
  num_samples = int(1.3 * sr_orig) + 7  # Not a whole number of periods.
  if signal == 'noise':
    x = _noise(num_samples, seed=sr_orig)
  else:
    x = _chirp(num_samples, sr_orig)
  _assert_matches_resampy(x, sr_orig)


@pytest.mark.parametrize('sr_orig', RATES)
def test_inputs_shorter_than_the_filter(sr_orig):
  # The filter reaches ~50 / min(1, ratio) input samples each way: every
  # output here sees the implicit zeros outside the signal on both sides.
  for num_samples in (3, 7, 40, 151, 399):
    x = _noise(num_samples, seed=num_samples)
    expected_len = int(num_samples * float(TARGET_RATE) / sr_orig)
    if expected_len == 0:
      # resampy raises here; we return an empty signal (documented).
      assert resample_lib.resample(x, sr_orig, TARGET_RATE).shape == (0,)
    else:
      _assert_matches_resampy(x, sr_orig)


def test_empty_and_too_short_give_empty_output():
  assert resample_lib.resample(np.zeros(0), 44100, 16000).shape == (0,)
  assert resample_lib.resample(np.ones(2), 44100, 16000).shape == (0,)
  with pytest.raises(ValueError):
    resampy.resample(np.ones(2), 44100, 16000)  # The difference we document.


def test_upsampling_matches_resampy():
  _assert_matches_resampy(_noise(5000, seed=1), 16000, 44100)
  _assert_matches_resampy(_chirp(5000, 16000), 16000, 48000)


def test_output_times_that_round_below_an_integer():
  # At 18432 -> 16000 Hz (period L = 125), resampy's float output times
  # t * 1.152 land one ulp below the exact integer t * 1.152 for some t
  # multiple of L. resampy then centers on the previous sample, which differs
  # from exact taps by ~1e-4: without special handling this test fails.
  sr_orig, num_samples = 18432, 2 * 18432
  t = np.arange(0, int(num_samples * 16000.0 / sr_orig), 125)
  times = t * (1.0 / (16000.0 / sr_orig))
  assert np.any(np.floor(times) < t * sr_orig // 16000), 'case not exercised'
  _assert_matches_resampy(_noise(num_samples, seed=3), sr_orig)


def test_rate_pair_without_compact_table_matches_resampy():
  # 44101 -> 16000 Hz has a period of 16000 outputs; we fall back to resampy.
  _assert_matches_resampy(_noise(3000, seed=4), 44101)


def test_same_rate_returns_a_float64_copy():
  x = _noise(100, seed=5)
  y = resample_lib.resample(x, 16000, 16000)
  assert y is not x and y.dtype == np.float64
  np.testing.assert_array_equal(y, x)
  y[0] = 7.0
  assert x[0] != 7.0


def test_integer_input_is_converted():
  x = (_noise(4410, seed=6) * 32767).astype(np.int16)
  ours = resample_lib.resample(x, 44100, 16000)
  expected = resampy.resample(x.astype(np.float64), 44100, 16000)
  np.testing.assert_allclose(ours, expected, rtol=0, atol=TOLERANCE * 32767)


@pytest.mark.parametrize('x, sr_orig, sr_new', [
    (np.zeros((10, 2)), 44100, 16000),
    (np.zeros(10), 0, 16000),
    (np.zeros(10), 44100, -16000),
    (np.zeros(10), float('nan'), 16000),
])
def test_rejects_bad_arguments(x, sr_orig, sr_new):
  with pytest.raises(ValueError):
    resample_lib.resample(x, sr_orig, sr_new)
