"""Tests of corpus extraction (vggish.extractor) with the golden recipe checkpoint.

The model is VGGish's full 72 M parameters, so clips are short (about 1 s = one
example) and the batch is small; one `Embedder` (traced once) serves every test.
"""

import dataclasses
import errno
import os
import shutil

import numpy as np
import pytest
import soundfile

from conftest import GOLDEN_NAMES, golden_audio_path, load_golden, write_tone
from vggish import corpus
from vggish import extractor
from vggish import labels
from vggish import manifest as manifest_lib
from vggish import records
from vggish.params import DEFAULT_PARAMS

PAD = dataclasses.replace(DEFAULT_PARAMS, short_clip_policy='pad')
BATCH_SIZE = 4


@pytest.fixture(scope='module')
def embedder(recipe_model):
  return extractor.Embedder(recipe_model, batch_size=BATCH_SIZE)


def _extract(inputs, out, embedder, **kwargs):
  kwargs.setdefault('params', PAD)
  kwargs.setdefault('show_progress', False)
  return extractor.extract(inputs, out, embedder=embedder, **kwargs)


def _records(out, dequantize=False):
  return {r[records.VIDEO_ID]: r for r in records.read_records(
      str(out / 'embeddings-*.tfrecord'), dequantize=dequantize)}


def _all_ids_in_shards(out):
  ids = []
  for name in manifest_lib.list_shards(str(out)):
    ids += [video_id for video_id, _, _ in
            records.summarize_records(str(out / name))]
  return ids


@pytest.fixture(scope='module')
def golden_dir(tmp_path_factory):
  """The golden inputs as audio files; the float64 smoke-test sine as a DOUBLE wav."""
  directory = tmp_path_factory.mktemp('golden_audio')
  for name in GOLDEN_NAMES:
    source = golden_audio_path(name)
    if source.suffix == '.npy':
      # 64-bit float samples are stored exactly, so the bytes must still match.
      soundfile.write(str(directory / (name + '.wav')), np.load(source), 16000,
                      subtype='DOUBLE')
    else:
      shutil.copy(source, directory)
  return directory


def test_postprocessed_bytes_equal_golden(golden_dir, embedder, recipe_pca_params_path,
                                          tmp_path):
  result = _extract([golden_dir], tmp_path, embedder, postprocess=True,
                    pca_params_path=recipe_pca_params_path, records_per_shard=4)
  assert result.all_ok and result.num_ok == len(GOLDEN_NAMES)
  assert result.shards == ['embeddings-00000.tfrecord', 'embeddings-00001.tfrecord']
  got = _records(tmp_path)
  assert sorted(got) == sorted(GOLDEN_NAMES)
  for name in GOLDEN_NAMES:
    golden = load_golden(name)['postprocessed']
    record = got[name]
    if golden.shape[0] == 0:
      # Upstream gives no example for the 0.5 s clip; the tool pads it to one.
      assert name == 'short_16k_0.5s' and record['embeddings'].shape == (1, 128)
      continue
    # Tolerance: none. Batching examples of several files must not change a byte.
    assert record['embeddings'].dtype == np.uint8
    np.testing.assert_array_equal(record['embeddings'], golden, err_msg=name)
    info = soundfile.info(str(golden_dir / (name + '.wav')))
    assert record[records.END_TIME] == pytest.approx(info.duration, abs=1e-6)
    assert record[records.START_TIME] == 0.0
    assert record[records.EXAMPLE_HOP] == pytest.approx(0.96)
    assert record[records.LABELS].size == 0
  assert records.detect_embedding_format(
      str(tmp_path / 'embeddings-00000.tfrecord')) == records.UINT8


def test_raw_embeddings_match_golden(golden_dir, embedder, tmp_path):
  result = _extract([golden_dir], tmp_path, embedder)
  assert result.all_ok
  got = _records(tmp_path)
  for name in GOLDEN_NAMES:
    golden = load_golden(name)['embedding']
    if golden.shape[0] == 0:
      continue
    embeddings = got[name]['embeddings']
    assert embeddings.dtype == np.float32
    # The model tolerance of the golden README: max |diff| / max |embedding| < 1e-5.
    scale = np.abs(golden).max()
    assert np.abs(embeddings - golden).max() / scale < 1e-5, name


def test_schema_round_trip_with_labels_csv_and_hop(embedder, tmp_path):
  audio = tmp_path / 'audio'
  write_tone(audio / 'dog.wav', seconds=2.0, rate=22050, channels=2, seed=1)
  write_tone(audio / 'cats' / 'cat.flac', seconds=1.5, rate=16000, seed=2)
  csv_path = tmp_path / 'train.csv'
  csv_path.write_text('fname,labels\ndog.wav,"Dog,Bark"\ncats/cat.flac,Meow\n')
  out = tmp_path / 'out'
  out.mkdir()
  inputs, label_map = corpus.prepare_labels(
      corpus.read_input_csv(csv_path, audio), out)
  params = dataclasses.replace(PAD, example_hop_seconds=0.48)
  result = _extract(inputs, out, embedder, params=params)
  assert result.all_ok and result.num_examples == 3 + 2

  assert label_map.display_names == ('Bark', 'Dog', 'Meow')
  assert labels.read_label_map(out / corpus.LABEL_MAP_NAME) == label_map
  got = _records(out)
  dog, cat = got['dog'], got['cats/cat']
  np.testing.assert_array_equal(dog[records.LABELS], [1, 0])
  np.testing.assert_array_equal(cat[records.LABELS], [2])
  # 2 s -> 198 frames -> examples at frames 0, 48, 96 with a 0.48 s hop.
  assert dog['embeddings'].shape == (3, 128) and dog['embeddings'].dtype == np.float32
  assert dog[records.EXAMPLE_HOP] == pytest.approx(0.48)
  assert dog[records.END_TIME] == pytest.approx(2.0)
  assert cat['num_examples'] == 2
  rows = manifest_lib.Manifest(str(out)).rows
  assert rows['dog'].examples == 3 and rows['dog'].duration == pytest.approx(2.0)
  assert rows['dog'].path == os.path.abspath(audio / 'dog.wav')
  assert rows['cats/cat'].status == manifest_lib.OK
  assert rows['cats/cat'].shard == 'embeddings-00000.tfrecord'


AUDIOSET_MAP = ('index,mid,display_name\n'
                '0,/m/0bt9lr,"Dog"\n'
                '1,/m/05tny_,"Bark"\n')


def test_every_failure_is_recorded_and_the_run_goes_on(embedder, tmp_path):
  audio = tmp_path / 'audio'
  write_tone(audio / 'good.wav', seed=3)
  write_tone(audio / 'unknown_label.wav', seed=4)
  rng = np.random.RandomState(5)
  (audio / 'garbage.wav').write_bytes(rng.bytes(3000))
  (audio / 'empty.wav').write_bytes(b'')
  soundfile.write(str(audio / 'no_samples.wav'), np.zeros(0), 16000)
  (audio / 'text.wav').write_text('this is not audio\n' * 20)
  full = write_tone(audio / 'truncated.wav', seconds=2.0, seed=6).read_bytes()
  (audio / 'truncated.wav').write_bytes(full[:len(full) // 2])
  (audio / 'header_only.wav').write_bytes(full[:44])
  nan = 0.1 * np.ones(2 * 16000)
  nan[[300, 301, 9000]] = [np.nan, np.inf, np.nan]
  soundfile.write(str(audio / 'nan.wav'), nan, 16000, subtype='FLOAT')
  csv_path = tmp_path / 'train.csv'
  csv_path.write_text('fname,labels\n'
                      'good.wav,Dog\n'
                      'garbage.wav,Dog\n'
                      'empty.wav,Dog\n'
                      'no_samples.wav,Dog\n'
                      'missing.wav,Dog\n'
                      'text.wav,Bark\n'
                      'unknown_label.wav,"Dog,Kazoo"\n'
                      'truncated.wav,Dog\n'
                      'header_only.wav,Dog\n'
                      'nan.wav,Dog\n')
  map_path = tmp_path / 'labels.csv'
  map_path.write_text(AUDIOSET_MAP)
  out = tmp_path / 'out'
  inputs, _ = corpus.prepare_labels(corpus.read_input_csv(csv_path, audio), out,
                                    map_path)
  result = _extract(inputs, out, embedder)

  assert not result.all_ok
  assert (result.num_ok, result.num_failed) == (2, 8)
  rows = manifest_lib.Manifest(str(out)).rows
  reasons = {
      'garbage': 'cannot be read as audio',
      'empty': 'empty (0 bytes)',
      'no_samples': 'no audio samples',
      'missing': 'missing.wav: no such file or directory',
      'text': 'cannot be read as audio',
      'unknown_label': "unknown label(s) 'Kazoo'",
      'header_only': 'no audio samples',
      'nan': '3 non-finite sample(s) (NaN/Inf) of 32000, the first at sample 300',
  }
  for video_id, reason in reasons.items():
    row = rows[video_id]
    assert row.status == manifest_lib.FAILED, video_id
    assert reason in row.error, (video_id, row.error)
    assert (row.examples, row.shard, row.warning) == (0, '', '')
  assert dict(result.failures).keys() == reasons.keys()
  assert rows['good'].status == manifest_lib.OK and rows['good'].warning == ''
  # A truncated file is embedded as far as it decodes (as upstream), and says so.
  truncated = rows['truncated']
  assert (truncated.status, truncated.examples) == (manifest_lib.OK, 1)
  assert truncated.duration == pytest.approx(1.0, abs=1e-3)
  assert truncated.warning.startswith('truncated: header says 2.000 s, decoded 0.999 s')
  assert result.warnings == [('truncated', truncated.warning)]
  assert sorted(_records(out)) == ['good', 'truncated']


def test_nonfinite_zero_extracts_repaired_audio_with_a_warning(embedder, tmp_path):
  clean = 0.1 * np.sin(np.arange(2 * 16000) * 0.05)
  dirty = clean.copy()
  dirty[[5, 17000]] = [np.nan, -np.inf]
  repaired = clean.copy()
  repaired[[5, 17000]] = 0.0
  audio = tmp_path / 'audio'
  audio.mkdir()
  for name, data in (('dirty', dirty), ('repaired', repaired)):
    soundfile.write(str(audio / f'{name}.wav'), data, 16000, subtype='DOUBLE')
  result = _extract([audio], tmp_path / 'out', embedder, nonfinite='zero')
  assert result.all_ok
  got = _records(tmp_path / 'out')
  # Exactly the embeddings of the audio with zeros written in by hand.
  np.testing.assert_array_equal(got['dirty']['embeddings'], got['repaired']['embeddings'])
  assert np.isfinite(got['dirty']['embeddings']).all()
  rows = manifest_lib.Manifest(str(tmp_path / 'out')).rows
  assert rows['dirty'].warning == ('2 non-finite sample(s) (NaN/Inf) of 32000, the first '
                                   'at sample 5 (0.000 s) replaced with zeros')
  assert rows['repaired'].warning == ''
  with pytest.raises(ValueError, match='nonfinite must be one of'):
    _extract([audio], tmp_path / 'other', embedder, nonfinite='keep')


class _NaNModel:
  """A model whose embeddings are NaN for loud examples (mean log-mel > 2)."""

  def __init__(self, model):
    self._model = model

  def __call__(self, examples, training=False):
    import tensorflow as tf  # pylint: disable=import-outside-toplevel
    embeddings = self._model(examples, training=training)
    poisoned = tf.reduce_mean(examples, axis=[1, 2]) > 2.0
    return tf.where(poisoned[:, None], float('nan'), embeddings)


def test_nan_embeddings_are_never_written(recipe_model, tmp_path):
  audio = tmp_path / 'audio'
  write_tone(audio / 'fine.wav', seed=1)
  loud = np.clip(0.9 * np.random.RandomState(5).standard_normal(16000), -1, 1)
  soundfile.write(str(audio / 'loud.wav'), loud, 16000, subtype='FLOAT')  # Mean log-mel 3.
  embedder = extractor.Embedder(_NaNModel(recipe_model), batch_size=BATCH_SIZE)
  result = _extract([audio], tmp_path / 'out', embedder)
  assert (result.num_ok, result.num_failed) == (1, 1)
  assert 'the model gave NaN/Inf embeddings for 1 of its 1 example(s)' in result.failures[0][1]
  assert list(_records(tmp_path / 'out')) == ['fine']
  # The record writer refuses them too, whoever calls it.
  with pytest.raises(records.NonFiniteEmbeddingError, match="'x' hold 1 NaN/Inf"):
    records.make_sequence_example('x', np.array([[0.0] * 127 + [np.inf]]))


def test_short_clips_are_padded_repeated_or_dropped(embedder, tmp_path):
  audio = tmp_path / 'audio'
  write_tone(audio / 'tenth.wav', seconds=0.1, seed=7)
  write_tone(audio / 'half.wav', seconds=0.5, rate=44100, seed=8)
  write_tone(audio / 'tiny.wav', seconds=3 / 8000, rate=8000, seed=9)  # 3 samples.
  # One sample at 48 kHz resamples to no sample at 16 kHz: pad still gives an
  # example (of silence), and says so.
  soundfile.write(str(audio / 'one_sample.wav'), np.array([0.5]), 48000, subtype='FLOAT')
  result = _extract([audio], tmp_path / 'pad', embedder)
  assert result.all_ok
  assert {k: v['num_examples'] for k, v in _records(tmp_path / 'pad').items()} == {
      'tenth': 1, 'half': 1, 'tiny': 1, 'one_sample': 1}
  assert result.warnings == [(
      'one_sample', '0.021 ms of audio give no sample at 16000 Hz; the example is silence')]
  assert manifest_lib.Manifest(str(tmp_path / 'pad')).rows['half'].duration == (
      pytest.approx(0.5))

  repeat = dataclasses.replace(PAD, short_clip_policy='repeat')
  result = _extract([audio / 'tenth.wav'], tmp_path / 'repeat', embedder,
                    params=repeat)
  assert result.all_ok and result.num_examples == 1

  repeat_one = _extract([audio / 'one_sample.wav'], tmp_path / 'repeat_one', embedder,
                        params=repeat)
  assert repeat_one.all_ok and repeat_one.num_examples == 1

  drop = dataclasses.replace(PAD, short_clip_policy='drop')
  result = _extract([audio], tmp_path / 'drop', embedder, params=drop)
  assert result.num_failed == 4 and result.num_ok == 0
  assert 'shorter than one example' in result.failures[0][1]


def test_channels_rates_sample_formats_and_containers(embedder, tmp_path):
  audio = tmp_path / 'audio'
  cases = {
      'stereo_48k.wav': dict(rate=48000, channels=2),
      'quad_96k.wav': dict(rate=96000, channels=4),
      'mono_8k.wav': dict(rate=8000),
      'u8.wav': dict(subtype='PCM_U8'),
      'i24.wav': dict(subtype='PCM_24', rate=32000),
      'i32.wav': dict(subtype='PCM_32', rate=11025),
      'f32.wav': dict(subtype='FLOAT', rate=22050),
      'f64.wav': dict(subtype='DOUBLE', rate=44100),
      'i24_88k.flac': dict(subtype='PCM_24', rate=88200),
      'vorbis.ogg': dict(format='OGG', subtype='VORBIS'),
      'i16.aiff': dict(format='AIFF', rate=24000),
      'layer3.mp3': dict(format='MP3', subtype='MPEG_LAYER_III', rate=44100),
  }
  for i, (name, kwargs) in enumerate(cases.items()):
    write_tone(audio / name, seconds=1.1, seed=10 + i, **kwargs)
  result = _extract([audio], tmp_path / 'out', embedder)
  assert result.all_ok, result.failures
  got = _records(tmp_path / 'out')
  assert sorted(got) == sorted(os.path.splitext(name)[0] for name in cases)
  for video_id, record in got.items():
    assert record['num_examples'] == 1, video_id
    assert np.all(np.isfinite(record['embeddings'])), video_id


def test_resume_skips_done_inputs_and_adds_new_shards(embedder, tmp_path):
  audio = tmp_path / 'audio'
  write_tone(audio / 'a.wav', seed=20)
  write_tone(audio / 'b.wav', seed=21)
  out = tmp_path / 'out'
  first = _extract([audio], out, embedder)
  assert (first.num_ok, first.shards) == (2, ['embeddings-00000.tfrecord'])
  shard0 = (out / 'embeddings-00000.tfrecord').read_bytes()

  write_tone(audio / 'c.wav', seed=22)
  (audio / 'd.wav').write_bytes(b'RIFF....WAVEjunk')
  second = _extract([audio], out, embedder)
  assert (second.num_skipped, second.num_ok, second.num_failed) == (2, 1, 1)
  assert second.shards == ['embeddings-00001.tfrecord']
  assert (out / 'embeddings-00000.tfrecord').read_bytes() == shard0

  # Failed inputs are retried; with the file fixed, the corpus is complete.
  write_tone(audio / 'd.wav', seed=23)
  third = _extract([audio], out, embedder)
  assert (third.num_skipped, third.num_ok, third.num_failed) == (3, 1, 0)
  assert third.all_ok
  assert sorted(_all_ids_in_shards(out)) == ['a', 'b', 'c', 'd']
  rows = manifest_lib.read_rows(str(out / manifest_lib.MANIFEST_NAME))
  assert [r.id for r in rows] == ['a', 'b', 'd', 'c']  # One row per id.
  assert all(r.status == manifest_lib.OK for r in rows)


def test_stop_request_saves_finished_files_then_resume_completes(embedder, tmp_path):
  audio = tmp_path / 'audio'
  for i in range(5):
    write_tone(audio / f'clip{i}.wav', seed=30 + i)
  polls = []

  def stop_after_three():
    polls.append(1)
    return len(polls) > 3

  out = tmp_path / 'out'
  result = _extract([audio], out, embedder, should_stop=stop_after_three,
                    records_per_shard=100)
  assert result.interrupted and not result.all_ok
  assert result.num_ok == 3
  assert sorted(_all_ids_in_shards(out)) == ['clip0', 'clip1', 'clip2']
  assert manifest_lib.Manifest(str(out)).done_ids() == {'clip0', 'clip1', 'clip2'}
  result = _extract([audio], out, embedder)
  assert (result.num_skipped, result.num_ok) == (3, 2)
  assert sorted(_all_ids_in_shards(out)) == [f'clip{i}' for i in range(5)]


def test_shard_without_manifest_rows_is_recovered_not_redone(embedder, tmp_path):
  audio = tmp_path / 'audio'
  write_tone(audio / 'a.wav', seed=40)
  write_tone(audio / 'b.wav', seed=41)
  out = tmp_path / 'out'
  _extract([audio], out, embedder)
  # As if killed after the shard's rename, before its rows were appended; and
  # with a temporary shard left by the kill.
  (out / manifest_lib.MANIFEST_NAME).write_text(','.join(manifest_lib.FIELDS) + '\n')
  (out / 'embeddings-00001.tfrecord.tmp').write_bytes(b'partial')
  result = _extract([audio], out, embedder)
  assert (result.num_skipped, result.num_ok, result.shards) == (2, 0, [])
  assert not (out / 'embeddings-00001.tfrecord.tmp').exists()
  rows = manifest_lib.Manifest(str(out)).rows
  assert rows['a'] == manifest_lib.Row(
      'a', os.path.abspath(audio / 'a.wav'), manifest_lib.OK, 1, 1.0,
      'embeddings-00000.tfrecord')


def test_resume_with_other_settings_is_refused(embedder, recipe_pca_params_path,
                                               tmp_path):
  clip = write_tone(tmp_path / 'a.wav', seed=50)
  out = tmp_path / 'out'
  _extract([clip], out, embedder)
  with pytest.raises(ValueError, match='other settings'):
    _extract([clip], out, embedder, postprocess=True,
             pca_params_path=recipe_pca_params_path)
  with pytest.raises(ValueError, match='hop_seconds'):
    _extract([clip], out, embedder,
             params=dataclasses.replace(PAD, example_hop_seconds=0.5))


def test_bad_arguments(embedder, tmp_path):
  clip = write_tone(tmp_path / 'a.wav', seed=51)
  with pytest.raises(ValueError, match='records_per_shard'):
    _extract([clip], tmp_path / 'out', embedder, records_per_shard=0)
  with pytest.raises(ValueError, match='no inputs'):
    _extract([], tmp_path / 'out', embedder)
  with pytest.raises(ValueError, match='batch_size'):
    extractor.Embedder(None, batch_size=0)


def test_a_second_run_on_the_same_directory_is_refused(embedder, tmp_path):
  clip = write_tone(tmp_path / 'a.wav', seed=52)
  out = tmp_path / 'out'
  out.mkdir()
  with manifest_lib.OutputLock(str(out)):
    with pytest.raises(ValueError, match='another extraction is writing'):
      _extract([clip], out, embedder)
  assert _extract([clip], out, embedder).all_ok


def test_an_examples_embedding_does_not_depend_on_its_batch(embedder):
  # The kernels' arithmetic depends on the batch's shape (on CPU a batch of 1 and one of 4
  # differ by ~1e-5), so the Embedder pads every call to batch_size: the bytes written are
  # the same however files were grouped (tools.extract, Beam workers and bundles, resume).
  rng = np.random.default_rng(61)
  examples = rng.standard_normal((BATCH_SIZE,) + embedder.example_shape).astype(np.float32)
  full = embedder(examples)
  for k in range(1, BATCH_SIZE):
    np.testing.assert_array_equal(embedder(examples[:k]), full[:k])
  others = rng.standard_normal(examples.shape).astype(np.float32)
  for position in range(BATCH_SIZE):
    mixed = others.copy()
    mixed[position] = examples[0]
    np.testing.assert_array_equal(embedder(mixed)[position], full[0])
  assert embedder(examples[:0]).shape == (0, embedder.embedding_size)


def test_model_is_traced_once_for_every_batch(embedder):
  # Runs after the tests above: every call had the same padded shape.
  assert embedder.tracing_count == 1


def test_full_disk_when_recording_rows_loses_nothing(embedder, tmp_path, monkeypatch):
  audio = tmp_path / 'audio'
  for i in range(4):
    write_tone(audio / f'clip{i}.wav', seed=i)
  out = tmp_path / 'out'
  real_append = manifest_lib.Manifest.append
  ok_appends = []

  def append(self, rows):
    if any(row.status == manifest_lib.OK for row in rows):
      ok_appends.append(rows)
      if len(ok_appends) == 2:  # The second shard is renamed; its rows find the disk full.
        raise OSError(errno.ENOSPC, 'No space left on device', self.path)
    real_append(self, rows)

  monkeypatch.setattr(manifest_lib.Manifest, 'append', append)
  with pytest.raises(manifest_lib.OutputWriteError) as error:
    _extract([audio], out, embedder, records_per_shard=2)
  assert error.value.no_space and error.value.path == str(out / 'manifest.csv')
  assert 'rerun the same command' in str(error.value)
  monkeypatch.setattr(manifest_lib.Manifest, 'append', real_append)

  # The next run finds the complete shard without rows and records it: nothing
  # is extracted twice, nothing is lost.
  resumed = _extract([audio], out, embedder, records_per_shard=2)
  assert (resumed.num_skipped, resumed.num_ok) == (4, 0)
  assert sorted(_all_ids_in_shards(out)) == [f'clip{i}' for i in range(4)]


def test_unwritable_output_is_an_output_write_error(embedder, tmp_path):
  (tmp_path / 'file').write_text('x')
  with pytest.raises(manifest_lib.OutputWriteError, match='cannot write .*file'):
    _extract([golden_audio_path('sine_1khz_16k_3s')], tmp_path / 'file' / 'out', embedder)


def test_embedder_gives_empty_embeddings_for_no_examples(embedder):
  # Without running the model: oneDNN's Conv2D mis-shapes an empty batch.
  empty = embedder(np.zeros((0, 96, 64), np.float32))
  assert empty.shape == (0, 128) and empty.dtype == np.float32
  with pytest.raises(ValueError, match='at most 4'):
    embedder(np.zeros((5, 96, 64), np.float32))


def test_embedder_switches_tf32_off_unless_allowed(recipe_checkpoint):
  import tensorflow as tf  # pylint: disable=import-outside-toplevel
  before = tf.config.experimental.tensor_float_32_execution_enabled()
  try:
    tf.config.experimental.enable_tensor_float_32_execution(True)
    extractor.Embedder.from_checkpoint(recipe_checkpoint, batch_size=2)
    assert not tf.config.experimental.tensor_float_32_execution_enabled()
    extractor.Embedder.from_checkpoint(recipe_checkpoint, batch_size=2, allow_tf32=True)
    assert tf.config.experimental.tensor_float_32_execution_enabled()
  finally:
    tf.config.experimental.enable_tensor_float_32_execution(before)
