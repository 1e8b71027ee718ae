"""Tests of vggish.frontend: golden parity with upstream, short clips, timestamps."""

import dataclasses

import numpy as np
import pytest

from conftest import GOLDEN_NAMES, golden_audio_path, load_golden
from vggish import frontend
from vggish import mel_features
from vggish.params import DEFAULT_PARAMS

# tests/golden/README.md: a float64 frontend must match upstream's examples within 1e-6.
# The 16 kHz inputs match exactly; the resampled ones differ by ~1e-9, from vggish.resample
# (which reproduces resampy's kaiser_best to ~1e-12) and not from the log-mel.
GOLDEN_TOLERANCE = 1e-6
LOG_SILENCE = np.log(DEFAULT_PARAMS.log_offset)


def _examples_from_golden_input(name, params=DEFAULT_PARAMS):
  path = golden_audio_path(name)
  if path.suffix == '.npy':  # The smoke-test sine, passed as an array at 16 kHz.
    return frontend.waveform_to_examples(np.load(path), 16000, params)
  return frontend.wavfile_to_examples(path, params)


@pytest.mark.parametrize('name', GOLDEN_NAMES)
def test_matches_golden_examples(name):
  golden = load_golden(name)['examples']
  examples = _examples_from_golden_input(name)
  assert examples.dtype == np.float64
  assert examples.shape == golden.shape
  if golden.size:
    assert np.abs(examples - golden).max() < GOLDEN_TOLERANCE


def test_golden_short_clip_gives_zero_examples_by_default():
  assert _examples_from_golden_input('short_16k_0.5s').shape == (0, 96, 64)


@pytest.mark.parametrize('num_samples', [0, 1, 239, 240, 399, 400, 15599])
@pytest.mark.parametrize('policy', ['drop', 'pad', 'repeat'])
def test_short_input_never_raises(num_samples, policy):
  params = dataclasses.replace(DEFAULT_PARAMS, short_clip_policy=policy)
  waveform = np.random.RandomState(num_samples).uniform(-1, 1, num_samples)
  examples = frontend.waveform_to_examples(waveform, 16000, params)
  assert examples.shape == ((0 if policy == 'drop' else 1), 96, 64)
  assert np.all(np.isfinite(examples))


@pytest.mark.parametrize('sample_rate', [8000, 44100])
def test_short_input_at_other_rates_never_raises(sample_rate):
  for num_samples in (0, 1, 2, 100):
    examples = frontend.waveform_to_examples(np.ones(num_samples), sample_rate)
    assert examples.shape == (0, 96, 64)


def test_pad_policy_appends_zeros():
  params = dataclasses.replace(DEFAULT_PARAMS, short_clip_policy='pad')
  clip = np.random.RandomState(1).uniform(-1, 1, 8000)
  padded = frontend.apply_short_clip_policy(clip, params)
  assert padded.shape == (15600,)
  np.testing.assert_array_equal(padded[:8000], clip)
  np.testing.assert_array_equal(padded[8000:], 0.0)
  examples = frontend.waveform_to_examples(clip, 16000, params)
  np.testing.assert_array_equal(examples, frontend.waveform_to_examples(padded, 16000))
  # Frames entirely in the padding are digital silence.
  assert np.all(examples[0, 50:] == LOG_SILENCE)
  assert np.all(examples[0, :45] > LOG_SILENCE)


def test_repeat_policy_tiles_to_one_example():
  params = dataclasses.replace(DEFAULT_PARAMS, short_clip_policy='repeat')
  clip = np.random.RandomState(2).uniform(-1, 1, 7000)
  repeated = frontend.apply_short_clip_policy(clip, params)
  assert repeated.shape == (15600,)
  np.testing.assert_array_equal(repeated, np.concatenate([clip, clip, clip[:1600]]))
  # Long enough that whole tiles would make two examples: still one.
  clip = np.random.RandomState(3).uniform(-1, 1, 15500)
  assert frontend.waveform_to_examples(clip, 16000, params).shape == (1, 96, 64)


def test_repeat_policy_pads_an_empty_clip():
  params = dataclasses.replace(DEFAULT_PARAMS, short_clip_policy='repeat')
  np.testing.assert_array_equal(frontend.apply_short_clip_policy(np.zeros(0), params),
                                np.zeros(15600))
  examples = frontend.waveform_to_examples(np.zeros(0), 16000, params)
  np.testing.assert_array_equal(examples, np.full((1, 96, 64), LOG_SILENCE))


@pytest.mark.parametrize('policy', ['drop', 'pad', 'repeat'])
def test_policy_leaves_long_clips_alone(policy):
  params = dataclasses.replace(DEFAULT_PARAMS, short_clip_policy=policy)
  clip = np.random.RandomState(4).uniform(-1, 1, 15600)
  np.testing.assert_array_equal(frontend.apply_short_clip_policy(clip, params), clip)
  assert frontend.apply_short_clip_policy(clip[:100], DEFAULT_PARAMS).shape == (100,)


def test_channels_are_averaged_over_axis_1():
  rng = np.random.RandomState(5)
  stereo = rng.uniform(-1, 1, (20000, 2))
  np.testing.assert_array_equal(frontend.waveform_to_examples(stereo, 16000),
                                frontend.waveform_to_examples(stereo.mean(axis=1), 16000))


def test_resamples_other_rates():
  # A 1 kHz tone at 8 kHz must land in the same mel band as at 16 kHz, with 2x the examples
  # of the raw sample count.
  t8 = np.arange(2 * 8000) / 8000.0
  t16 = np.arange(2 * 16000) / 16000.0
  at_8k = frontend.waveform_to_examples(np.sin(2 * np.pi * 1000 * t8), 8000)
  at_16k = frontend.waveform_to_examples(np.sin(2 * np.pi * 1000 * t16), 16000)
  assert at_8k.shape == at_16k.shape == (2, 96, 64)
  assert np.argmax(at_8k.mean(axis=(0, 1))) == np.argmax(at_16k.mean(axis=(0, 1)))


def test_frames_into_examples_with_configurable_hop():
  params = dataclasses.replace(DEFAULT_PARAMS, example_hop_seconds=0.48)
  waveform = np.random.RandomState(6).uniform(-1, 1, 3 * 16000)
  examples = frontend.waveform_to_examples(waveform, 16000, params)
  log_mel = mel_features.log_mel_spectrogram(waveform)  # [298, 64]
  assert examples.shape == (1 + (298 - 96) // 48, 96, 64)
  for i in range(examples.shape[0]):
    np.testing.assert_array_equal(examples[i], log_mel[48 * i:48 * i + 96])
  assert examples.flags.writeable


def test_rejects_bad_arguments():
  with pytest.raises(ValueError, match='shape'):
    frontend.waveform_to_examples(np.zeros((10, 2, 2)), 16000)
  with pytest.raises(ValueError, match='sample_rate'):
    frontend.waveform_to_examples(np.zeros(16000), 0)
  with pytest.raises(ValueError, match='num_examples'):
    frontend.example_start_times(-1)


def test_example_start_times():
  np.testing.assert_array_equal(frontend.example_start_times(0), np.zeros(0))
  times = frontend.example_start_times(40)
  assert times.dtype == np.float64
  np.testing.assert_array_equal(times[:4], [0.0, 0.96, 1.92, 2.88])
  # Rounded once: example 19 starts at the double nearest to 18.24.
  assert times[19] == 18.24
  half_hop = dataclasses.replace(DEFAULT_PARAMS, example_hop_seconds=0.48)
  np.testing.assert_array_equal(frontend.example_start_times(3, half_hop), [0.0, 0.48, 0.96])
