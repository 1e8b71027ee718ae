"""The FAD's statistics and distance (vggish.analysis.fad_stats) against independent computations."""

import re
import sys

import numpy as np
import pytest

from vggish import extras
from vggish.analysis import fad_stats

linalg = pytest.importorskip('scipy.linalg', reason='the FAD needs scipy (the fad extra)')


def _random_spd(rng, d, rank=None):
  """A random covariance of `rank` (default full) plus a little of the identity."""
  a = rng.standard_normal((d, rank or d))
  return a @ a.T / (rank or d)


def _closed_form_diagonal(mu_e, var_e, mu_b, var_b):
  """FAD of diagonal covariances: sqrtm of a diagonal product is elementwise."""
  return float(np.sum((mu_e - mu_b) ** 2) + np.sum(var_e + var_b - 2 * np.sqrt(var_e * var_b)))


def _eigen_fad(mu_e, sigma_e, mu_b, sigma_b):
  """FAD through symmetric eigendecompositions only (no sqrtm of a non-symmetric product).

  tr(sqrtm(A B)) = tr(sqrtm(A^1/2 B A^1/2)) for positive semi-definite A, B, and the
  latter is symmetric: the sum of the square roots of its eigenvalues.
  """
  w, v = np.linalg.eigh(sigma_e)
  root_e = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
  inner = np.linalg.eigvalsh(root_e @ sigma_b @ root_e)
  diff = mu_e - mu_b
  return float(diff @ diff + np.trace(sigma_e) + np.trace(sigma_b)
               - 2 * np.sum(np.sqrt(np.clip(inner, 0, None))))


# --- Statistics.


def test_stats_match_numpy_cov_batch_by_batch():
  rng = np.random.default_rng(0)
  # A large mean next to a small spread: a running sum of squares would lose digits here.
  x = 50.0 + rng.standard_normal((1000, 16)) * np.linspace(0.01, 2.0, 16)
  accumulator = fad_stats.StatsAccumulator()
  for start, stop in ((0, 1), (1, 1), (1, 300), (300, 301), (301, 1000)):
    accumulator.add(x[start:stop].astype(np.float64))
  stats = accumulator.stats()
  assert stats.count == 1000
  assert stats.mu.dtype == np.float32 and stats.sigma.dtype == np.float32
  # Float64 accumulation, float32 storage: equal to numpy's float64 result rounded to
  # float32, within one float32 rounding step.
  np.testing.assert_allclose(stats.mu, np.mean(x, axis=0).astype(np.float32), rtol=1e-7)
  np.testing.assert_allclose(stats.sigma, np.cov(x, rowvar=False).astype(np.float32),
                             rtol=2e-7, atol=1e-12)


def test_compute_stats_equals_accumulated_and_float32_input():
  rng = np.random.default_rng(1)
  x = rng.standard_normal((37, 8)).astype(np.float32)  # Embeddings come as float32.
  stats = fad_stats.compute_stats(x)
  np.testing.assert_allclose(stats.sigma, np.cov(x.astype(np.float64), rowvar=False),
                             rtol=2e-7, atol=1e-9)
  assert stats.dim == 8


def test_too_few_or_bad_embeddings():
  with pytest.raises(fad_stats.FadError, match='at least 2'):
    fad_stats.compute_stats(np.ones((1, 128)))
  with pytest.raises(fad_stats.FadError, match='at least 2'):
    fad_stats.StatsAccumulator().stats()
  accumulator = fad_stats.StatsAccumulator()
  accumulator.add(np.ones((3, 4)))
  with pytest.raises(ValueError, match='size 5 added to statistics of size 4'):
    accumulator.add(np.ones((3, 5)))
  with pytest.raises(fad_stats.FadError, match='NaN'):
    accumulator.add(np.full((2, 4), np.nan))


def test_stats_file_round_trip(tmp_path):
  rng = np.random.default_rng(2)
  stats = fad_stats.compute_stats(rng.standard_normal((20, 6)), mode='reference',
                                  checkpoint_sha256='ab' * 32, inputs_sha256='cd' * 32,
                                  num_files=3)
  path = tmp_path / 'stats.npz'
  fad_stats.save_stats(stats, path)
  loaded = fad_stats.load_stats(path)
  np.testing.assert_array_equal(loaded.mu, stats.mu)
  np.testing.assert_array_equal(loaded.sigma, stats.sigma)
  assert (loaded.count, loaded.mode, loaded.checkpoint_sha256, loaded.inputs_sha256,
          loaded.num_files) == (20, 'reference', 'ab' * 32, 'cd' * 32, 3)
  assert [p.name for p in tmp_path.iterdir()] == ['stats.npz']  # No temporary left.


def test_bad_stats_files(tmp_path):
  with pytest.raises(FileNotFoundError, match='no such file'):
    fad_stats.load_stats(tmp_path / 'missing.npz')
  text = tmp_path / 'text.npz'
  text.write_text('hello')
  with pytest.raises(ValueError, match='not a FAD statistics file'):
    fad_stats.load_stats(text)
  zipped = tmp_path / 'cut.npz'
  zipped.write_bytes(b'PK\x03\x04 and nothing more')
  with pytest.raises(ValueError, match='not a FAD statistics file'):
    fad_stats.load_stats(zipped)
  other = tmp_path / 'other.npz'
  np.savez(other, embeddings=np.zeros(3))
  with pytest.raises(ValueError, match='no mu and sigma'):
    fad_stats.load_stats(other)
  broken = tmp_path / 'broken.npz'
  np.savez(broken, mu=np.zeros(3), sigma=np.zeros((3, 4)))
  with pytest.raises(ValueError, match='broken'):
    fad_stats.load_stats(broken)
  with pytest.raises(ValueError, match='it is a directory'):
    fad_stats.save_stats(fad_stats.compute_stats(np.eye(3)), tmp_path)


def test_reads_the_reference_implementations_statistics(tmp_path):
  tf = pytest.importorskip('tensorflow')
  rng = np.random.default_rng(7)
  stats = fad_stats.compute_stats(rng.standard_normal((40, 5)))

  def write(path, **features):
    example = tf.train.Example(features=tf.train.Features(feature=features))
    with tf.io.TFRecordWriter(str(path)) as writer:
      writer.write(example.SerializeToString())

  def floats(values):
    return tf.train.Feature(float_list=tf.train.FloatList(value=np.ravel(values)))

  path = tmp_path / 'reference_stats'
  write(path, mu=floats(stats.mu), sigma=floats(stats.sigma),
        embedding_length=tf.train.Feature(int64_list=tf.train.Int64List(value=[5])))
  loaded = fad_stats.load_stats(path)
  np.testing.assert_array_equal(loaded.mu, stats.mu)
  np.testing.assert_array_equal(loaded.sigma, stats.sigma)
  assert loaded.mode == '' and loaded.checkpoint_sha256 == ''  # Nothing to check against.
  assert abs(fad_stats.distance(loaded, stats)) < 1e-12
  write(tmp_path / 'other', embedding=floats(stats.mu))
  with pytest.raises(ValueError, match='no mu and sigma'):
    fad_stats.load_stats(tmp_path / 'other')
  write(tmp_path / 'cut', mu=floats(stats.mu), sigma=floats(stats.sigma.ravel()[:-1]))
  with pytest.raises(ValueError, match='5 means, 24 covariance values'):
    fad_stats.load_stats(tmp_path / 'cut')
  (tmp_path / 'garbage').write_bytes(b'\x00' * 40)
  with pytest.raises(ValueError, match='not a FAD statistics file'):
    fad_stats.load_stats(tmp_path / 'garbage')


# --- The distance.


def test_distance_of_diagonal_covariances_is_the_closed_form():
  rng = np.random.default_rng(3)
  mu_e, mu_b = rng.standard_normal(128), rng.standard_normal(128)
  var_e, var_b = rng.uniform(0.1, 3.0, 128), rng.uniform(0.1, 3.0, 128)
  got = fad_stats.frechet_distance(mu_e, np.diag(var_e), mu_b, np.diag(var_b))
  assert got == pytest.approx(_closed_form_diagonal(mu_e, var_e, mu_b, var_b), rel=1e-10)


def test_distance_of_full_covariances_matches_eigendecomposition():
  rng = np.random.default_rng(4)
  sigma_e, sigma_b = _random_spd(rng, 128), _random_spd(rng, 128)
  mu_e, mu_b = rng.standard_normal(128), rng.standard_normal(128) * 0.1
  got = fad_stats.frechet_distance(mu_e, sigma_e, mu_b, sigma_b)
  assert got == pytest.approx(_eigen_fad(mu_e, sigma_e, mu_b, sigma_b), rel=1e-9)


def test_distance_of_a_set_to_itself_is_zero_and_symmetric():
  rng = np.random.default_rng(5)
  x, y = rng.standard_normal((400, 32)), rng.standard_normal((300, 32)) + 0.3
  a, b = fad_stats.compute_stats(x), fad_stats.compute_stats(y)
  assert abs(fad_stats.distance(a, a)) < 1e-9 * np.trace(a.sigma)
  assert fad_stats.distance(a, b) == pytest.approx(fad_stats.distance(b, a), rel=1e-9)
  # Computed from the stored float32 values, in float64.
  expected = _eigen_fad(a.mu.astype(np.float64), a.sigma.astype(np.float64),
                        b.mu.astype(np.float64), b.sigma.astype(np.float64))
  assert fad_stats.distance(a, b) == pytest.approx(expected, rel=1e-9)


def test_singular_covariances_of_few_embeddings():
  # The reference's own test set has 110 background embeddings for 128 dimensions: both
  # covariances are singular, and float32 storage leaves their product with tiny (even
  # negative) eigenvalues where it should have zeros.
  rng = np.random.default_rng(6)
  a = fad_stats.compute_stats(rng.standard_normal((50, 128)))
  b = fad_stats.compute_stats(rng.standard_normal((60, 128)) + 0.2)
  got = fad_stats.distance(a, b)
  mu_a, sigma_a, mu_b, sigma_b = (np.asarray(v, np.float64)
                                  for v in (a.mu, a.sigma, b.mu, b.sigma))
  # tr(sqrtm(M)) is the sum of the principal square roots of M's eigenvalues, of which
  # the real part is kept: computed here with numpy's general eigensolver instead.
  eigenvalues = np.linalg.eigvals(sigma_a @ sigma_b).astype(complex)
  diff = mu_a - mu_b
  expected = (diff @ diff + np.trace(sigma_a) + np.trace(sigma_b)
              - 2 * np.sum(np.sqrt(eigenvalues)).real)
  assert got == pytest.approx(expected, rel=1e-8)
  # The symmetric route, which clips the float32 rounding's negative eigenvalues, differs
  # by that rounding's noise: 1e-5 here, which is why the reference's route is followed.
  assert got == pytest.approx(_eigen_fad(mu_a, sigma_a, mu_b, sigma_b), rel=1e-4)


class _FakeSqrtm:
  """Stands in for scipy.linalg.sqrtm: returns `answers` in turn, records its arguments."""

  def __init__(self, *answers):
    self.answers = list(answers)
    self.calls = []

  def __call__(self, matrix):
    self.calls.append(np.array(matrix))
    answer = self.answers.pop(0)
    return answer(matrix) if callable(answer) else answer


def test_sqrtm_not_finite_retries_with_an_offset(monkeypatch, caplog):
  d = 4
  var_e, var_b = np.array([1.0, 2.0, 0.0, 3.0]), np.array([0.5, 0.0, 1.0, 2.0])
  fake = _FakeSqrtm(np.full((d, d), np.nan), linalg.sqrtm)
  monkeypatch.setattr(linalg, 'sqrtm', fake)
  mu = np.zeros(d)
  got = fad_stats.frechet_distance(mu, np.diag(var_e), mu, np.diag(var_b))
  assert len(fake.calls) == 2
  np.testing.assert_array_equal(fake.calls[0], np.diag(var_e * var_b))
  offset = fad_stats.SQRTM_OFFSET
  np.testing.assert_allclose(fake.calls[1], np.diag((var_e + offset) * (var_b + offset)),
                             rtol=1e-15)
  # The traces are of the covariances as given; only the square root sees the offset.
  expected = (np.sum(var_e + var_b)
              - 2 * np.sum(np.sqrt((var_e + offset) * (var_b + offset))))
  assert got == pytest.approx(expected, rel=1e-12)
  assert 'adding 1e-07 I' in caplog.text


def test_sqrtm_still_not_finite_is_an_error(monkeypatch):
  monkeypatch.setattr(linalg, 'sqrtm', _FakeSqrtm(np.full((2, 2), np.inf),
                                                  np.full((2, 2), np.nan)))
  with pytest.raises(fad_stats.FadError, match='not finite, even with 1e-07 I'):
    fad_stats.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))


def test_complex_square_root(monkeypatch):
  root = np.diag([1.0, 2.0]).astype(complex)
  small = root + np.diag([5e-4j, -5e-4j])  # Below 1e-3: dropped.
  monkeypatch.setattr(linalg, 'sqrtm', _FakeSqrtm(small))
  got = fad_stats.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2) * 2)
  assert got == pytest.approx(2 + 4 - 2 * 3)
  large = root + np.diag([0.0, 2e-3j])
  monkeypatch.setattr(linalg, 'sqrtm', _FakeSqrtm(large))
  with pytest.raises(fad_stats.FadError, match=r'imaginary part of 0\.002'):
    fad_stats.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2) * 2)


def test_mismatched_sizes():
  with pytest.raises(fad_stats.FadError, match='different sizes'):
    fad_stats.frechet_distance(np.zeros(3), np.eye(3), np.zeros(4), np.eye(4))


def test_missing_scipy_names_the_extra(monkeypatch):
  monkeypatch.setitem(sys.modules, 'scipy.linalg', None)  # import scipy.linalg fails.
  with pytest.raises(extras.MissingExtraError, match=re.escape('pip install -e ".[fad]"')):
    fad_stats.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), np.eye(2))
