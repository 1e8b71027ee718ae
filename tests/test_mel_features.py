"""Tests of vggish.mel_features: each step against the spec, and the chain against golden."""

import dataclasses

import numpy as np
import pytest

from conftest import golden_audio_path, load_golden
from vggish import mel_features
from vggish.params import DEFAULT_PARAMS


@pytest.mark.parametrize('num_samples, expected', [
    (0, 0), (1, 0), (239, 0), (399, 0), (400, 1), (559, 1), (560, 2), (16000, 98),
    (15600, 96)])
def test_num_frames_drops_incomplete_tail(num_samples, expected):
  assert mel_features.num_frames(num_samples, 400, 160) == expected
  assert mel_features.frame(np.zeros(num_samples), 400, 160).shape == (expected, 400)


def test_frame_contents_and_trailing_axes():
  data = np.arange(1000 * 3).reshape(1000, 3)
  frames = mel_features.frame(data, 400, 160)  # 1 + (1000 - 400) // 160 = 4
  assert frames.shape == (4, 400, 3)
  for i in range(4):
    np.testing.assert_array_equal(frames[i], data[i * 160:i * 160 + 400])


def test_frame_rejects_bad_sizes():
  with pytest.raises(ValueError, match='positive'):
    mel_features.frame(np.zeros(10), 0, 1)
  with pytest.raises(ValueError, match='positive'):
    mel_features.frame(np.zeros(10), 4, 0)


def test_periodic_hann_is_periodic_not_symmetric():
  window = mel_features.periodic_hann(400)
  n = np.arange(400)
  np.testing.assert_allclose(window, 0.5 - 0.5 * np.cos(2 * np.pi * n / 400), atol=1e-15)
  assert window[0] == 0.0 and window[200] == pytest.approx(1.0)
  # The periodic window is the symmetric one of length N + 1 without its last point.
  np.testing.assert_allclose(window, np.hanning(401)[:400], atol=1e-15)
  assert np.abs(window - np.hanning(400)).max() > 1e-3


def test_stft_magnitude_matches_explicit_dft():
  rng = np.random.RandomState(0)
  signal = rng.uniform(-1, 1, 1200)
  magnitude = mel_features.stft_magnitude(signal, fft_length=512, hop_length=160,
                                          window_length=400)
  assert magnitude.shape == (1 + (1200 - 400) // 160, 257)
  assert magnitude.dtype == np.float64
  # Direct DFT of each windowed frame, zero-padded to 512: sum_n x[n] e^{-2 pi i k n / 512}.
  k = np.arange(257)[:, np.newaxis]
  n = np.arange(400)[np.newaxis, :]
  dft = np.exp(-2j * np.pi * k * n / 512)  # [257, 400]
  hann = 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(400) / 400)
  for i in range(magnitude.shape[0]):
    expected = np.abs(dft @ (signal[i * 160:i * 160 + 400] * hann))
    np.testing.assert_allclose(magnitude[i], expected, rtol=0, atol=1e-11)


def test_stft_magnitude_of_short_signal_is_empty():
  assert mel_features.stft_magnitude(np.zeros(399), 512, 160, 400).shape == (0, 257)
  assert mel_features.stft_magnitude(np.zeros(0), 512, 160, 400).shape == (0, 257)


def test_hertz_to_mel_htk():
  assert mel_features.hertz_to_mel(0.0) == 0.0
  assert mel_features.hertz_to_mel(700.0) == pytest.approx(1127.0 * np.log(2.0), rel=1e-15)
  freqs = np.array([125.0, 1000.0, 7500.0])
  np.testing.assert_allclose(mel_features.hertz_to_mel(freqs),
                             1127.0 * np.log(1.0 + freqs / 700.0), rtol=1e-15)


def _reference_mel_matrix():
  """The spec's matrix, entry by entry in plain Python."""
  def mel(hz):
    return 1127.0 * np.log(1.0 + hz / 700.0)
  edges = np.linspace(mel(125.0), mel(7500.0), 66)
  bins_hz = np.linspace(0.0, 8000.0, 257)
  matrix = np.zeros((257, 64))
  for k in range(1, 257):  # Row 0 (DC) stays zero.
    m = mel(bins_hz[k])
    for i in range(64):
      if edges[i] <= m <= edges[i + 1]:
        matrix[k, i] = (m - edges[i]) / (edges[i + 1] - edges[i])
      elif edges[i + 1] < m <= edges[i + 2]:
        matrix[k, i] = (edges[i + 2] - m) / (edges[i + 2] - edges[i + 1])
  return matrix


def test_mel_matrix_matches_spec():
  matrix = mel_features.mel_matrix(DEFAULT_PARAMS)
  assert matrix.shape == (257, 64) and matrix.dtype == np.float64
  np.testing.assert_allclose(matrix, _reference_mel_matrix(), rtol=0, atol=1e-12)
  assert np.all(matrix[0] == 0.0)
  assert np.all(matrix >= 0.0) and np.all(matrix <= 1.0)
  # Every band gets some bin (the lowest ones are narrow: about 2 bins).
  assert np.all(matrix.max(axis=0) > 0.3)
  # Bins above 7500 Hz (bin 240 is exactly 7500 Hz) belong to no band.
  assert np.all(matrix[241:] == 0.0)


def test_mel_matrix_rejects_bad_edges():
  with pytest.raises(ValueError, match='Nyquist'):
    mel_features.spectrogram_to_mel_matrix(64, 257, 16000, 125.0, 8001.0)
  with pytest.raises(ValueError, match='below'):
    mel_features.spectrogram_to_mel_matrix(64, 257, 16000, 500.0, 500.0)
  with pytest.raises(ValueError, match='>= 0'):
    mel_features.spectrogram_to_mel_matrix(64, 257, 16000, -1.0, 7500.0)


def test_log_mel_of_silence_is_log_offset():
  log_mel = mel_features.log_mel_spectrogram(np.zeros(16000))
  assert log_mel.shape == (98, 64)
  np.testing.assert_array_equal(log_mel, np.log(0.01))


def test_log_mel_uses_params():
  params = dataclasses.replace(DEFAULT_PARAMS, num_mel_bins=32, log_offset=1.0)
  log_mel = mel_features.log_mel_spectrogram(np.zeros(1000), params)
  assert log_mel.shape == (4, 32)
  np.testing.assert_array_equal(log_mel, 0.0)


def test_log_mel_of_golden_sine_matches_golden_examples():
  # Tolerance 1e-6 (tests/golden/README.md, float64 frontend); we get ~0.
  waveform = np.load(golden_audio_path('sine_1khz_16k_3s'))
  golden = load_golden('sine_1khz_16k_3s')['examples'].reshape(-1, 64)  # [288, 64]
  log_mel = mel_features.log_mel_spectrogram(waveform)  # [298, 64]
  assert log_mel.shape == (298, 64)
  assert np.abs(log_mel[:288] - golden).max() < 1e-6
  # The tone is at 1 kHz, so the loudest band is the one whose centre is nearest to it.
  centers_hz = 700.0 * (np.exp(np.linspace(mel_features.hertz_to_mel(125.0),
                                           mel_features.hertz_to_mel(7500.0),
                                           66)[1:-1] / 1127.0) - 1.0)
  assert np.argmax(log_mel.mean(axis=0)) == np.argmin(np.abs(centers_hz - 1000.0))
