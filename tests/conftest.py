"""Shared fixtures: golden data (copied from the original code's outputs) and the recipe checkpoint.

Golden files in tests/golden/ are copies of ../shared/golden (outputs of the original
tensorflow/models VGGish code; see tests/golden/README.md for how they were made). The "recipe"
checkpoint is rebuilt here from its documented random recipe, so no test needs the real 289 MB
checkpoint; tests that do need it skip with a reason when it is absent.
"""

import os
import pathlib

import numpy as np
import pytest
import soundfile

os.environ.setdefault('TF_CPP_MIN_LOG_LEVEL', '2')

GOLDEN_DIR = pathlib.Path(__file__).parent / 'golden'
GOLDEN_NAMES = (
    'sine_1khz_16k_3s',
    'chirp_noise_44k1_5s',
    'stereo_48k_2.5s',
    'am_tone_22k05_10s',
    'short_16k_0.5s',
    'silence_16k_2s',
)
# Shared data of third parties, beside the checkout in development and CI; absent in a user's clone.
SHARED_REAL_DIR = pathlib.Path(__file__).resolve().parents[2] / 'shared' / 'real'

# The recipe's variable order (tests/golden/README.md): one RandomState(2017), drawn in this order.
RECIPE_VARIABLES = (
    ('vggish/conv1/weights', (3, 3, 1, 64)), ('vggish/conv1/biases', (64,)),
    ('vggish/conv2/weights', (3, 3, 64, 128)), ('vggish/conv2/biases', (128,)),
    ('vggish/conv3/conv3_1/weights', (3, 3, 128, 256)), ('vggish/conv3/conv3_1/biases', (256,)),
    ('vggish/conv3/conv3_2/weights', (3, 3, 256, 256)), ('vggish/conv3/conv3_2/biases', (256,)),
    ('vggish/conv4/conv4_1/weights', (3, 3, 256, 512)), ('vggish/conv4/conv4_1/biases', (512,)),
    ('vggish/conv4/conv4_2/weights', (3, 3, 512, 512)), ('vggish/conv4/conv4_2/biases', (512,)),
    ('vggish/fc1/fc1_1/weights', (12288, 4096)), ('vggish/fc1/fc1_1/biases', (4096,)),
    ('vggish/fc1/fc1_2/weights', (4096, 4096)), ('vggish/fc1/fc1_2/biases', (4096,)),
    ('vggish/fc2/weights', (4096, 128)), ('vggish/fc2/biases', (128,)),
)


def golden_audio_path(name):
  """Path of a golden input: .wav, or .npy for the float64 smoke-test sine."""
  for ext in ('.wav', '.npy'):
    path = GOLDEN_DIR / 'audio' / (name + ext)
    if path.exists():
      return path
  raise FileNotFoundError(name)


def load_golden(name):
  """The original code's outputs for one input: dict of examples, embedding, postprocessed."""
  with np.load(GOLDEN_DIR / (name + '.npz')) as data:
    return {key: data[key] for key in data.files}



def write_tone(path, seconds=1.0, rate=16000, channels=1, subtype='PCM_16', seed=0,
               **kwargs):
  """Writes a seeded tone plus noise clip (the extraction tests' generated audio)."""
  rng = np.random.RandomState(seed)
  n = int(round(seconds * rate))
  t = np.arange(n) / rate
  data = (0.4 * np.sin(2 * np.pi * (300 + 100 * seed) * t)[:, None] +
          0.1 * rng.standard_normal((n, channels)))
  path.parent.mkdir(parents=True, exist_ok=True)
  soundfile.write(str(path), np.clip(data, -1, 1), rate, subtype=subtype, **kwargs)
  return path

def build_recipe_weights():
  """The golden recipe checkpoint's variables, rebuilt from tests/golden/README.md."""
  rng = np.random.RandomState(2017)
  weights = {}
  for name, shape in RECIPE_VARIABLES:
    draw = rng.standard_normal(shape)
    if name.endswith('weights'):
      draw = draw * np.sqrt(2.0 / np.prod(shape[:-1]))
    else:
      draw = draw * 0.01
    weights[name] = draw.astype(np.float32)
  return weights


@pytest.fixture(scope='session')
def recipe_weights():
  return build_recipe_weights()


@pytest.fixture(scope='session')
def recipe_pca_params_path():
  return GOLDEN_DIR / 'pca_params_recipe.npz'


@pytest.fixture(scope='session')
def recipe_checkpoint(recipe_weights, tmp_path_factory):
  """The recipe weights written as a TF1 V1 checkpoint (one file), like the real one."""
  from vggish import slim_compat
  path = tmp_path_factory.mktemp('recipe_ckpt') / 'vggish_recipe.ckpt'
  slim_compat.write_slim_checkpoint(recipe_weights, str(path), version=1)
  return path


@pytest.fixture(scope='session')
def recipe_model(recipe_checkpoint):
  """A Keras VGGish loaded from the recipe V1 checkpoint through the project's loader."""
  from vggish import model as vggish_model
  return vggish_model.VGGish(weights=str(recipe_checkpoint))


def shared_real_path(*parts):
  """A path under ../shared/real, or skip the test when that data is absent."""
  path = SHARED_REAL_DIR.joinpath(*parts)
  if not path.exists():
    pytest.skip(f'third-party data not present at {path} (only in the development checkout)')
  return path


def real_checkpoint_path():
  """The real vggish_model.ckpt, or skip: it cannot be downloaded on machines without internet."""
  from vggish import workspace
  path = workspace.default_checkpoint_path()
  if not path.exists():
    pytest.skip(f'real checkpoint not present at {path}; run `python -m tools.download`')
  return path
