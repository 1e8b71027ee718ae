"""A tiny run of the extraction benchmark (vggish.benchmark), so that it keeps working."""

import soundfile

from vggish import benchmark
from vggish import manifest as manifest_lib


def test_corpus_mixes_rates_and_channels(tmp_path):
  paths = benchmark.make_corpus(str(tmp_path), num_clips=2, seconds=1.0, num_other=2)
  infos = sorted((soundfile.info(p).samplerate, soundfile.info(p).channels)
                 for p in paths)
  assert infos == [(22050, 1), (44100, 1), (44100, 1), (48000, 2)]
  assert all(soundfile.info(p).subtype == 'PCM_16' for p in paths)


def test_benchmark_measures_all_three_pipelines(recipe_model, tmp_path):
  result = benchmark.run_benchmark(
      str(tmp_path), num_clips=2, seconds=2.0, num_other=2, batch_sizes=(2,),
      extract_batch_size=2, num_rounds=2, model=recipe_model)
  # 2 s clips give 2 examples each; extract must produce what upstream does.
  assert (result.num_files, result.num_examples) == (4, 8)
  assert result.sequential_rate > 0 and result.extract_rate > 0
  assert list(result.model_rates) == [2] and result.ceiling_batch_size == 2
  assert result.ceiling_rate > 0 and result.num_rounds == 2
  assert result.peak_rss_mb >= result.extract_peak_rss_mb > 0
  # Both rounds extracted into one directory: every file once.
  manifest = manifest_lib.Manifest(str(tmp_path / 'output'))
  assert manifest.counts() == {'ok': 4, 'failed': 0}
  report = result.report()
  for phrase in ('(a) sequential', '(b) model alone, batch   2', '(c) extract',
                 'c/a = ', 'c/b = ', 'peak RSS', 'load average'):
    assert phrase in report
