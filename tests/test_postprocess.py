"""Parity of vggish.postprocess with the original postprocessor's golden bytes."""

import numpy as np
import pytest

import conftest
from vggish import postprocess
from vggish.params import DEFAULT_PARAMS

# Dequantizing undoes truncation to within one quantization step.
STEP = (DEFAULT_PARAMS.quantize_max_val - DEFAULT_PARAMS.quantize_min_val) / 255


@pytest.fixture(scope='module')
def recipe_pca(recipe_pca_params_path):
  return postprocess.load_pca_params(recipe_pca_params_path)


def _pca_applied(pca, embeddings):
  eigen_vectors, means = pca
  return (eigen_vectors @ (embeddings.astype(np.float64).T - means)).T


@pytest.mark.parametrize('name', conftest.GOLDEN_NAMES)
def test_bytes_identical_to_golden(name, recipe_pca_params_path):
  golden = conftest.load_golden(name)
  postprocessor = postprocess.Postprocessor(recipe_pca_params_path)
  quantized = postprocessor.postprocess(golden['embedding'])
  assert quantized.dtype == np.uint8
  assert quantized.shape == golden['postprocessed'].shape
  np.testing.assert_array_equal(quantized, golden['postprocessed'])


def test_flat_means_give_identical_bytes(recipe_pca, tmp_path):
  # The released vggish_pca_params.npz stores the means as [128].
  eigen_vectors, means = recipe_pca
  path = tmp_path / 'flat_means.npz'
  np.savez(path, pca_eigen_vectors=eigen_vectors, pca_means=means.ravel())
  loaded_eigen_vectors, loaded_means = postprocess.load_pca_params(path)
  assert loaded_means.shape == (128, 1)
  np.testing.assert_array_equal(loaded_means, means)
  golden = conftest.load_golden('chirp_noise_44k1_5s')
  for pca_params in (path, (eigen_vectors, means.ravel())):
    quantized = postprocess.Postprocessor(pca_params).postprocess(
        golden['embedding'])
    np.testing.assert_array_equal(quantized, golden['postprocessed'])


def test_truncation_not_rounding(recipe_pca):
  # The golden bytes tell truncation from rounding apart...
  golden = conftest.load_golden('am_tone_22k05_10s')
  clipped = np.clip(_pca_applied(recipe_pca, golden['embedding']), -2.0, 2.0)
  rounded = np.round((clipped + 2.0) * (255.0 / 4.0)).astype(np.uint8)
  assert np.mean(rounded != golden['postprocessed']) > 0.1
  # ...and quantize() truncates.
  values = np.array([-2.0, -3.0, 3.0, 2.0, -2.0 + 0.9 * STEP, 1.0])
  np.testing.assert_array_equal(
      postprocess.quantize(values), [0, 0, 255, 255, 0, 191])  # 191.25 -> 191


def test_empty_batch_and_single_vector(recipe_pca):
  postprocessor = postprocess.Postprocessor(recipe_pca)
  empty = postprocessor.postprocess(np.zeros((0, 128), np.float32))
  assert empty.shape == (0, 128) and empty.dtype == np.uint8
  golden = conftest.load_golden('sine_1khz_16k_3s')
  single = postprocessor.postprocess(golden['embedding'][1])
  assert single.shape == (128,)
  np.testing.assert_array_equal(single, golden['postprocessed'][1])


@pytest.mark.parametrize('shape', [(3, 127), (2, 3, 128), (129,), ()])
def test_rejects_wrong_embedding_shapes(recipe_pca, shape):
  with pytest.raises(ValueError, match='embeddings must have shape'):
    postprocess.Postprocessor(recipe_pca).postprocess(np.zeros(shape))


def test_dequantize_round_trip(recipe_pca):
  golden = conftest.load_golden('chirp_noise_44k1_5s')
  clipped = np.clip(_pca_applied(recipe_pca, golden['embedding']), -2.0, 2.0)
  restored = postprocess.dequantize(golden['postprocessed'])
  assert restored.dtype == np.float32
  error = clipped - restored  # Truncation only ever rounds down.
  assert error.min() >= -1e-6 and error.max() < STEP + 1e-6
  endpoints = postprocess.dequantize(np.array([0, 255], np.uint8))
  np.testing.assert_allclose(endpoints, [-2.0, 2.0], atol=1e-6)
  # A quantized grid value survives dequantize -> quantize.
  q = np.arange(256, dtype=np.uint8)
  np.testing.assert_array_equal(
      postprocess.quantize(postprocess.dequantize(q).astype(np.float64) +
                           1e-4), q)


def test_load_errors(tmp_path, recipe_pca):
  eigen_vectors, means = recipe_pca
  with pytest.raises(ValueError, match='not found'):
    postprocess.load_pca_params(tmp_path / 'missing.npz')
  path = tmp_path / 'no_means.npz'
  np.savez(path, pca_eigen_vectors=eigen_vectors)
  with pytest.raises(ValueError, match='pca_means'):
    postprocess.load_pca_params(path)
  path = tmp_path / 'bad_shape.npz'
  np.savez(path, pca_eigen_vectors=eigen_vectors[:64], pca_means=means)
  with pytest.raises(ValueError, match='eigen vectors must have shape'):
    postprocess.load_pca_params(path)
  path = tmp_path / 'bad_means.npz'
  np.savez(path, pca_eigen_vectors=eigen_vectors, pca_means=means[:100])
  with pytest.raises(ValueError, match='means must have shape'):
    postprocess.Postprocessor(path)
  path = tmp_path / 'not_npz.npz'
  path.write_text('not an npz file')
  with pytest.raises(ValueError, match='cannot read'):
    postprocess.load_pca_params(path)
  np.save(tmp_path / 'array.npy', means)
  with pytest.raises(ValueError, match='cannot read'):
    postprocess.load_pca_params(tmp_path / 'array.npy')
  with pytest.raises(ValueError, match='pca_params must be'):
    postprocess.Postprocessor(42)


def test_released_pca_params():
  path = conftest.shared_real_path('vggish_pca_params.npz')
  with np.load(path) as data:
    assert data['pca_means'].shape == (128,)  # Flat in the released file.
    flat_means = data['pca_means']
  eigen_vectors, means = postprocess.load_pca_params(path)
  assert eigen_vectors.shape == (128, 128) and means.shape == (128, 1)
  np.testing.assert_array_equal(means[:, 0], flat_means)
  embeddings = conftest.load_golden('chirp_noise_44k1_5s')['embedding']
  from_path = postprocess.Postprocessor(path).postprocess(embeddings)
  column = postprocess.Postprocessor(
      (eigen_vectors, flat_means.reshape(128, 1))).postprocess(embeddings)
  np.testing.assert_array_equal(from_path, column)
