"""The whole-process benchmark's reference job: the original pipeline, run as upstream ran it."""

import numpy as np

from conftest import GOLDEN_NAMES, golden_audio_path, load_golden
from vggish import process_benchmark
from vggish import records


def test_upstream_job_writes_the_golden_bytes(recipe_checkpoint, recipe_pca_params_path,
                                              tmp_path):
  paths = [str(golden_audio_path(name)) for name in GOLDEN_NAMES
           if golden_audio_path(name).suffix == '.wav']
  output = tmp_path / 'upstream.tfrecord'
  process_benchmark.main(['upstream', str(recipe_checkpoint), str(recipe_pca_params_path),
                          str(output), *paths])
  got = {records.record_id(raw)[:-len('.wav')]:
         np.asarray(records.parse_sequence_example(raw, dequantize=False)['embeddings'])
         for raw in records.raw_records(str(output))}
  # The 0.5 s clip gives no example upstream, hence no record.
  expected = [name for name in GOLDEN_NAMES
              if golden_audio_path(name).suffix == '.wav'
              and load_golden(name)['postprocessed'].shape[0]]
  assert sorted(got) == sorted(expected)
  for name in expected:
    # Tolerance: none (TF1 graph, resampy, float64 frontend: upstream's own chain).
    np.testing.assert_array_equal(got[name], load_golden(name)['postprocessed'], err_msg=name)


def test_usage():
  assert process_benchmark.main(['nothing']) == 2
