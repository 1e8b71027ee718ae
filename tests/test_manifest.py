"""Tests of the manifest and resume state of an output directory (vggish.manifest)."""

import json

import pytest

from vggish import manifest as manifest_lib
from vggish.manifest import FAILED, OK, Row


def _shard(directory, index, suffix=''):
  path = directory / (manifest_lib.shard_name(index) + suffix)
  path.write_bytes(b'records')
  return path.name


def test_shard_names_and_listing(tmp_path):
  assert manifest_lib.shard_name(7) == 'embeddings-00007.tfrecord'
  _shard(tmp_path, 2)
  _shard(tmp_path, 0)
  _shard(tmp_path, 3, manifest_lib.TEMP_SUFFIX)
  (tmp_path / 'other.tfrecord').write_bytes(b'')
  assert manifest_lib.list_shards(str(tmp_path)) == [
      'embeddings-00000.tfrecord', 'embeddings-00002.tfrecord']
  # Numbers of leftover temporary shards are not reused either.
  assert manifest_lib.next_shard_index(str(tmp_path)) == 4
  assert manifest_lib.remove_temp_shards(str(tmp_path)) == [
      'embeddings-00003.tfrecord.tmp']
  assert not (tmp_path / 'embeddings-00003.tfrecord.tmp').exists()
  assert manifest_lib.next_shard_index(str(tmp_path)) == 3
  assert manifest_lib.next_shard_index(str(tmp_path / 'new')) == 0


def test_rows_round_trip_and_last_row_wins(tmp_path):
  shard = _shard(tmp_path, 0)
  manifest = manifest_lib.Manifest(str(tmp_path))
  manifest.append([Row('a', '/x/a.wav', FAILED, error='bad\nheader, "quoted"')])
  manifest.append([Row('a', '/x/a.wav', OK, 3, 2.5, shard),
                   Row('b,c', '/x/b,c.wav', OK, 1, 0.5, shard)])
  rows = manifest_lib.read_rows(manifest.path)
  assert [r.id for r in rows] == ['a', 'a', 'b,c']
  assert rows[0].error == 'bad header, "quoted"'  # One line per row.
  reloaded = manifest_lib.Manifest(str(tmp_path))
  assert reloaded.rows['a'] == Row('a', '/x/a.wav', OK, 3, 2.5, shard)
  assert reloaded.counts() == {OK: 2, FAILED: 0}
  # Loading compacts the file to one row per id, with a header.
  lines = (tmp_path / manifest_lib.MANIFEST_NAME).read_text().splitlines()
  assert lines[0] == ','.join(manifest_lib.FIELDS)
  assert len(lines) == 3
  assert reloaded.done_ids() == {'a', 'b,c'}


def test_torn_last_line_is_dropped(tmp_path):
  shard = _shard(tmp_path, 0)
  manifest = manifest_lib.Manifest(str(tmp_path))
  manifest.append([Row('a', '/a.wav', OK, 1, 1.0, shard)])
  with open(manifest.path, 'a') as f:
    f.write('b,/b.wav,ok,1,1.000000,embeddings-000')  # Killed mid-write.
  reloaded = manifest_lib.Manifest(str(tmp_path))
  assert set(reloaded.rows) == {'a'}
  # The rewrite ended the file cleanly, so later appends start a new line.
  reloaded.append([Row('c', '/c.wav', FAILED, error='x')])
  assert set(manifest_lib.Manifest(str(tmp_path)).rows) == {'a', 'c'}


def test_rows_of_a_deleted_shard_are_not_done(tmp_path):
  kept = _shard(tmp_path, 0)
  manifest = manifest_lib.Manifest(str(tmp_path))
  manifest.append([Row('a', '/a.wav', OK, 1, 1.0, kept),
                   Row('b', '/b.wav', OK, 1, 1.0, 'embeddings-00001.tfrecord'),
                   Row('c', '/c.wav', FAILED, error='unreadable')])
  assert manifest.done_ids() == {'a'}


def test_reconcile_recovers_rows_of_a_renamed_but_unrecorded_shard(tmp_path):
  first = _shard(tmp_path, 0)
  second = _shard(tmp_path, 1)
  third = _shard(tmp_path, 2)
  manifest = manifest_lib.Manifest(str(tmp_path))
  manifest.append([Row('a', '/a.wav', OK, 1, 1.0, first),
                   Row('b', '/b.wav', OK, 2, 2.0, second)])
  # A kill cut shard 1's rows short (its 'c' is missing) and struck before
  # shard 2's rows were appended at all.
  contents = {first: [('a', 1, 1.0)], second: [('b', 2, 2.0), ('c', 1, 0.5)],
              third: [('d', 4, 4.0)]}
  read = []

  def read_shard(path):
    name = path.rsplit('/', 1)[-1]
    read.append(name)
    return contents[name]

  manifest = manifest_lib.Manifest(str(tmp_path))
  added = manifest.reconcile(read_shard, {'d': '/d.wav'})
  # Only the shards that may be incomplete in the manifest are read.
  assert sorted(read) == [second, third]
  assert added == [Row('c', '', OK, 1, 0.5, second),
                   Row('d', '/d.wav', OK, 4, 4.0, third)]
  assert manifest_lib.Manifest(str(tmp_path)).done_ids() == {'a', 'b', 'c', 'd'}
  # Nothing more to recover the next time.
  assert manifest_lib.Manifest(str(tmp_path)).reconcile(read_shard) == []


def test_config_is_stored_then_checked(tmp_path):
  config = {'embedding': 'float32', 'hop_seconds': 0.96, 'short_clip_policy': 'pad'}
  manifest_lib.check_config(str(tmp_path), config)
  stored = json.loads((tmp_path / manifest_lib.CONFIG_NAME).read_text())
  assert stored == config
  manifest_lib.check_config(str(tmp_path), dict(config))  # Same: fine.
  with pytest.raises(ValueError, match="embedding: 'float32' before, 'uint8_pca' now"):
    manifest_lib.check_config(str(tmp_path), dict(config, embedding='uint8_pca'))
