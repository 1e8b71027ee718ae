"""Tests of the Beam pipeline (vggish.pipelines.beam, tools.extract_beam).

Its records must be the bytes `tools.extract` writes for the same inputs, raw
and with --postprocess; bad files must become manifest rows; a retried or dead
job must not write a record twice; --skip_existing must extend an output.

Pipelines run on the DirectRunner's FnApiRunner with the options in
$VGGISH_BEAM_TEST_OPTIONS (default, as in CI: two worker processes), so the
model is built in worker processes from the recipe checkpoint on disk.
"""

import dataclasses
import os
import shlex
import shutil
import subprocess
import sys

import numpy as np
import pytest
import soundfile

pytest.importorskip('apache_beam', reason='the Beam tests need pip install -e ".[beam]"')

from apache_beam.options.pipeline_options import PipelineOptions  # pylint: disable=g-import-not-at-top,wrong-import-position

from vggish import corpus  # pylint: disable=g-import-not-at-top,wrong-import-position
from conftest import write_tone  # pylint: disable=wrong-import-position
from vggish import extractor
from vggish import manifest as manifest_lib
from vggish import records
from vggish.params import DEFAULT_PARAMS
from vggish.pipelines import beam as beam_pipeline
from vggish.pipelines import filesystem

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
PAD = dataclasses.replace(DEFAULT_PARAMS, short_clip_policy='pad')
BATCH_SIZE = 4  # Small batches: files share them, and one file spans several.
BEAM_OPTIONS = shlex.split(os.environ.get(
    'VGGISH_BEAM_TEST_OPTIONS',
    '--direct_running_mode=multi_processing --direct_num_workers=2'))
HOSTILE = ('empty', 'text', 'random_bytes', 'nan', 'header_only')


def _write_corpus(directory):
  """Clips of several rates, lengths and channel counts, and hostile files."""
  specs = [(1.0, 16000, 1), (2.5, 44100, 2), (0.4, 16000, 1), (3.2, 22050, 1),
           (1.9, 48000, 2), (0.98, 16000, 1), (4.1, 8000, 1), (1.3, 32000, 1)]
  for i, (seconds, rate, channels) in enumerate(specs):
    write_tone(directory / 'clips' / f'clip{i}.wav', seconds, rate, channels, seed=i)
  (directory / 'empty.wav').write_bytes(b'')
  (directory / 'text.wav').write_text('this is not audio\n')
  (directory / 'random_bytes.wav').write_bytes(np.random.RandomState(7).bytes(5000))
  nan = np.full((16000, 1), 0.1, np.float32)
  nan[100] = np.nan
  soundfile.write(str(directory / 'nan.wav'), nan, 16000, subtype='FLOAT')
  soundfile.write(str(directory / 'header_only.wav'), np.zeros((0, 1)), 16000)
  return directory


@pytest.fixture(scope='module')
def model_files(recipe_checkpoint, recipe_pca_params_path):
  return {'checkpoint_path': str(recipe_checkpoint),
          'pca_params_path': str(recipe_pca_params_path)}


@pytest.fixture(scope='module')
def audio(tmp_path_factory):
  return _write_corpus(tmp_path_factory.mktemp('beam_audio'))


def _beam(inputs, out, model_files, postprocess, **kwargs):
  kwargs.setdefault('params', PAD)
  kwargs.setdefault('batch_size', BATCH_SIZE)
  return beam_pipeline.run_extraction(
      inputs, str(out), postprocess=postprocess,
      pipeline_options=PipelineOptions(BEAM_OPTIONS), **kwargs,
      checkpoint_path=model_files['checkpoint_path'],
      pca_params_path=model_files['pca_params_path'] if postprocess else None)


def _records_by_id(out):
  """video_id -> serialized record, over all shards; fails on a repeated id."""
  found = {}
  for name in manifest_lib.list_shards(str(out)):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    for raw in tf.data.TFRecordDataset(str(out / name)).as_numpy_iterator():
      video_id = records.record_id(raw)
      assert video_id not in found, f'{video_id} written twice'
      found[video_id] = raw
  return found


def _rows(out):
  return manifest_lib.latest_rows(manifest_lib.read_rows(str(out / 'manifest.csv')))


@pytest.fixture(scope='module', params=[False, True], ids=['raw', 'postprocess'])
def both_outputs(request, audio, recipe_model, model_files, tmp_path_factory):
  """The same corpus through tools.extract's library and through Beam."""
  postprocess = request.param
  inputs = corpus.discover_inputs([str(audio)])
  local = tmp_path_factory.mktemp('local')
  extractor.extract(inputs, local, embedder=extractor.Embedder(recipe_model, BATCH_SIZE),
                    postprocess=postprocess,
                    pca_params_path=model_files['pca_params_path'], params=PAD,
                    show_progress=False)
  beam_out = tmp_path_factory.mktemp('beam')
  result = _beam(inputs, beam_out, model_files, postprocess, records_per_shard=3)
  return local, beam_out, result, postprocess


def test_records_are_the_bytes_of_tools_extract(both_outputs):
  local, beam_out, result, _ = both_outputs
  expected = _records_by_id(local)
  got = _records_by_id(beam_out)
  assert len(expected) == 8
  assert got.keys() == expected.keys()
  for video_id, raw in expected.items():
    assert got[video_id] == raw, video_id
  assert result.num_ok == 8 and result.num_failed == len(HOSTILE)
  assert result.num_examples == sum(row.examples for row in _rows(local).values())
  # At most records_per_shard records per shard, numbered from 0.
  shards = manifest_lib.list_shards(str(beam_out))
  assert shards == [manifest_lib.shard_name(i) for i in range(len(shards))]
  assert all(sum(1 for _ in records.summarize_records(str(beam_out / name))) <= 3
             for name in shards)
  assert not (beam_out / beam_pipeline.STAGING_DIR).exists()


def test_manifest_matches_tools_extract(both_outputs):
  local, beam_out, _, _ = both_outputs
  expected, got = _rows(local), _rows(beam_out)
  assert got.keys() == expected.keys()
  for video_id, row in expected.items():
    assert dataclasses.replace(got[video_id], shard='') == dataclasses.replace(
        row, shard=''), video_id
    if row.status == manifest_lib.OK:
      ids = [v for v, _, _ in records.summarize_records(
          str(beam_out / got[video_id].shard))]
      assert video_id in ids
  with open(local / manifest_lib.CONFIG_NAME) as a, \
      open(beam_out / manifest_lib.CONFIG_NAME) as b:
    assert a.read() == b.read()


def test_hostile_files_are_failed_rows_with_reasons(both_outputs):
  _, beam_out, result, _ = both_outputs
  rows = _rows(beam_out)
  reasons = {video_id: rows[video_id].error for video_id in HOSTILE}
  assert all(rows[v].status == manifest_lib.FAILED for v in HOSTILE)
  assert 'empty' in reasons['empty']
  assert 'cannot be read as audio' in reasons['text']
  assert 'cannot be read as audio' in reasons['random_bytes']
  assert 'NaN' in reasons['nan']
  assert 'no audio samples' in reasons['header_only']
  assert sorted(v for v, _ in result.failures) == sorted(HOSTILE)


def test_skip_existing_extends_an_output(both_outputs, audio, model_files, tmp_path):
  _, beam_out, first, postprocess = both_outputs
  out = tmp_path / 'extended'
  shutil.copytree(beam_out, out)
  before = _records_by_id(out)
  inputs = corpus.discover_inputs([str(audio)])
  with pytest.raises(ValueError, match='--skip_existing'):
    _beam(inputs, out, model_files, postprocess)
  with pytest.raises(ValueError, match='other settings'):
    _beam(inputs, out, model_files, not postprocess, skip_existing=True)
  extra = write_tone(tmp_path / 'more' / 'late.wav', 1.5, 16000, seed=11)
  inputs.append(corpus.AudioInput(video_id='late', path=str(extra)))
  result = _beam(inputs, out, model_files, postprocess, skip_existing=True)
  assert result.num_skipped == first.num_ok
  assert result.num_ok == 1 and result.num_failed == len(HOSTILE)  # Retried.
  after = _records_by_id(out)
  assert after.keys() == before.keys() | {'late'}
  assert all(after[v] == raw for v, raw in before.items())
  rows = _rows(out)
  assert rows['late'].status == manifest_lib.OK
  assert rows['late'].shard not in {rows[v].shard for v in before}


def _stage_copy(source_shard, staging, name, keep=None):
  """A staged shard as a dead job leaves it: a copy of (some of) a shard's records."""
  staging.mkdir(exist_ok=True)
  records.copy_records(str(source_shard), str(staging / name),
                       (lambda _: True) if keep is None else keep.__contains__)
  return staging / name


def test_staged_shards_of_a_dead_job_are_adopted_once(both_outputs, audio, model_files,
                                                      tmp_path):
  """A job killed before Finalize: its staged records count, each id once."""
  local, _, _, postprocess = both_outputs
  out = tmp_path / 'dead'
  out.mkdir()
  shard = local / manifest_lib.list_shards(str(local))[0]
  ids = [v for v, _, _ in records.summarize_records(str(shard))]
  assert len(ids) >= 3
  staging = out / beam_pipeline.STAGING_DIR
  # A bundle's attempt, then its retry (which also holds a record the first
  # attempt lacks), and an unfinished temporary file.
  _stage_copy(shard, staging, 'run-a-1.tfrecord', keep=set(ids[:2]))
  _stage_copy(shard, staging, 'run-a-2.tfrecord', keep=set(ids[:3]))
  (staging / 'run-a-3.tfrecord.tmp-0123').write_bytes(b'torn')
  inputs = corpus.discover_inputs([str(audio)])
  with pytest.raises(ValueError, match='--skip_existing'):
    _beam(inputs, out, model_files, postprocess)
  paths = {item.video_id: os.path.abspath(item.path) for item in inputs}
  rows = beam_pipeline._prepare_output(  # pylint: disable=protected-access
      str(out), {'embedding': 'any'}, paths, skip_existing=True)
  assert {v for v, row in rows.items() if row.status == manifest_lib.OK} == set(ids[:3])
  assert manifest_lib.next_shard_index(str(out)) == 2
  assert not staging.exists()  # Adopted, filtered or deleted.
  got = _records_by_id(out)  # No id twice.
  expected = _records_by_id(local)
  assert got == {v: expected[v] for v in ids[:3]}
  assert all(rows[v].path == paths[v] for v in ids[:3])


def test_adopt_staged_drops_ids_already_placed(both_outputs, tmp_path):
  local, _, _, _ = both_outputs
  shard = local / manifest_lib.list_shards(str(local))[0]
  summary = list(records.summarize_records(str(shard)))
  staging = tmp_path / 'staging'
  rows = [manifest_lib.Row(id=v, path='', status=manifest_lib.OK, examples=n,
                           duration=d) for v, n, d in summary]
  a = _stage_copy(shard, staging, 'a.tfrecord')
  b = _stage_copy(shard, staging, 'b.tfrecord')
  out = tmp_path / 'out'
  out.mkdir()
  placed = {rows[0].id}
  adopted = beam_pipeline.adopt_staged([(str(a), rows), (str(b), rows)], placed,
                                       str(out), first_index=7)
  assert [row.id for row in adopted] == [row.id for row in rows[1:]]
  assert {row.shard for row in adopted} == {manifest_lib.shard_name(7)}
  assert manifest_lib.list_shards(str(out)) == [manifest_lib.shard_name(7)]
  assert placed == {row.id for row in rows}
  assert not a.exists() and not b.exists()


def test_remote_style_paths_and_discovery(audio, tmp_path):
  """The filesystem layer on local paths: same ids as corpus.discover_inputs."""
  args = [str(audio / 'clips'), str(audio / 'nan.wav')]
  assert filesystem.discover_inputs(args) == corpus.discover_inputs(args)
  target = tmp_path / 'x' / 'file.bin'
  filesystem.makedirs(str(target.parent))
  filesystem.write_atomic(str(target), b'abc')
  assert filesystem.read_bytes(str(target)) == b'abc'
  assert filesystem.list_names(str(target.parent)) == ['file.bin']
  with filesystem.atomic_local_write(str(tmp_path / 'y.bin')) as local:
    with open(local, 'wb') as f:
      f.write(b'xyz')
    assert not (tmp_path / 'y.bin').exists()  # Only once complete.
  assert (tmp_path / 'y.bin').read_bytes() == b'xyz'
  with pytest.raises(RuntimeError):
    with filesystem.atomic_local_write(str(tmp_path / 'z.bin')) as local:
      with open(local, 'wb') as f:
        f.write(b'partial')
      raise RuntimeError('interrupted')
  assert sorted(os.listdir(tmp_path)) == ['x', 'y.bin']  # Nothing half-written.


def test_split_beam_args():
  from tools import extract_beam  # pylint: disable=import-outside-toplevel
  beam_args, inputs = extract_beam.split_beam_args(
      ['a.wav', '--runner', 'DataflowRunner', 'dir/', '--direct_num_workers=3',
       '--save_main_session', 'gs://b/*.wav'])
  assert beam_args == ['--runner', 'DataflowRunner', '--direct_num_workers=3',
                       '--save_main_session']
  assert inputs == ['a.wav', 'dir/', 'gs://b/*.wav']
  with pytest.raises(ValueError, match='unknown option --no_such_option'):
    extract_beam.split_beam_args(['--no_such_option=1', 'a.wav'])


def _cli(*args, **env):
  return subprocess.run(
      [sys.executable, '-m', 'tools.extract_beam', *map(str, args)], cwd=REPO,
      capture_output=True, text=True, timeout=600,
      env={**os.environ, 'TF_CPP_MIN_LOG_LEVEL': '2', **env})


def test_cli_runs_and_reports(audio, model_files, tmp_path):
  out = tmp_path / 'cli'
  proc = _cli('--output', out, '--checkpoint', model_files['checkpoint_path'],
              '--batch_size', BATCH_SIZE, audio / 'clips', audio / 'text.wav',
              *BEAM_OPTIONS)
  assert proc.returncode == 3, proc.stderr  # One input failed.
  assert '8 files extracted' in proc.stdout and '1 failed' in proc.stdout
  assert 'Traceback' not in proc.stderr
  rows = _rows(out)
  assert rows['text'].status == manifest_lib.FAILED
  assert sum(row.status == manifest_lib.OK for row in rows.values()) == 8
  again = _cli('--output', out, '--checkpoint', model_files['checkpoint_path'],
               audio / 'clips', *BEAM_OPTIONS)
  assert again.returncode == 2
  assert again.stderr.count('\n') == 1 and '--skip_existing' in again.stderr


@pytest.mark.parametrize('args, message', [
    ((), '--output DIR is required'),
    (('--output', 'OUT'), 'give INPUT'),
    (('--output', 'OUT', '--no_such_flag', 'x.wav'), 'unknown option --no_such_flag'),
    (('--output', 'OUT', '--checkpoint', 'missing.ckpt', 'AUDIO'), 'missing.ckpt'),
])
def test_cli_usage_errors_are_one_line(args, message, audio, tmp_path):
  args = [str(a).replace('OUT', str(tmp_path / 'o')).replace('AUDIO', str(audio / 'clips'))
          for a in args]
  proc = _cli(*args)
  assert proc.returncode == 2, proc.stderr
  assert proc.stderr.startswith('error: ') and proc.stderr.count('\n') == 1, proc.stderr
  assert message in proc.stderr


def test_cli_without_the_beam_extra_says_what_to_install(tmp_path):
  # Blocks the import as if apache-beam were not installed.
  code = ("import sys, runpy; sys.modules['apache_beam'] = None; "
          "sys.argv = ['extract_beam', '--output', sys.argv[1], 'x.wav']; "
          "runpy.run_module('tools.extract_beam', run_name='__main__')")
  proc = subprocess.run([sys.executable, '-c', code, str(tmp_path / 'o')], cwd=REPO,
                        capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr
  assert 'pip install -e ".[beam]"' in proc.stderr and 'Traceback' not in proc.stderr


def test_a_full_disk_is_an_output_error_and_leaves_no_shard(audio, model_files, tmp_path,
                                                            monkeypatch):
  """A worker that cannot write: OutputWriteError (exit status 4), nothing half-written."""
  import tensorflow as tf  # pylint: disable=import-outside-toplevel

  class FullDiskWriter:

    def __init__(self, path):
      self._path = path

    def write(self, data):
      raise tf.errors.ResourceExhaustedError(None, None,
                                             self._path + '; No space left on device')

    def close(self):
      pass

  # In one process, so that the patched writer is the workers' too.
  monkeypatch.setattr(beam_pipeline, '_open_record_writer', FullDiskWriter)
  out = tmp_path / 'full'
  inputs = corpus.discover_inputs([str(audio / 'clips')])
  with pytest.raises(manifest_lib.OutputWriteError, match='No space left on device') as e:
    beam_pipeline.run_extraction(
        inputs, str(out), params=PAD, batch_size=BATCH_SIZE,
        checkpoint_path=model_files['checkpoint_path'],
        pipeline_options=PipelineOptions(['--direct_running_mode=in_memory']))
  assert e.value.no_space
  assert manifest_lib.list_shards(str(out)) == []
  staging = out / beam_pipeline.STAGING_DIR
  assert not staging.exists() or not [
      n for n in os.listdir(staging) if n.endswith(manifest_lib.SHARD_SUFFIX)]
