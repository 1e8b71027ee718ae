"""Near-duplicates: the search on known embeddings, the CLI on generated audio, the groups.

The search is checked on embeddings whose matches are known exactly (random
example vectors, copies with noise, cut-outs at known offsets, a shared
"silence" example), then end to end: generated audio and its transformed
copies through tools.extract (recipe checkpoint) and tools.duplicates, and
`classifier.train --group_duplicates` keeping each group in one split.
"""

import csv
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import soundfile

from classifier import data as data_lib
from vggish.analysis import clips as clips_lib
from vggish.analysis import duplicate_benchmark
from vggish.analysis import duplicates

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]
HOP = 0.96


def make_clips(per_clip, ids=None, hop=HOP):
  """A `Clips` of [n_i, 128] arrays (no labels)."""
  n = len(per_clip)
  ids = ids or [f'clip{i:02d}' for i in range(n)]
  lengths = np.array([len(e) for e in per_clip], np.int64)
  return clips_lib.Clips(
      ids=np.array(ids, dtype=object), labels=np.zeros(0, np.int64),
      label_splits=np.zeros(n + 1, np.int64),
      embeddings=np.concatenate(per_clip).astype(np.float32),
      splits=np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64),
      start_seconds=np.zeros(n, np.float32),
      end_seconds=(lengths * hop).astype(np.float32),
      hop_seconds=np.full(n, hop, np.float32), embedding_format='float32')


@pytest.fixture
def corpus():
  """20 random clips of 10 examples; clip 20 = clip 3 plus noise; clip 21 =
  examples 4..7 of clip 5 (a cut-out); clip 22 = two new examples, then clip 8
  (delayed by 2 examples, cut to 10)."""
  rng = np.random.default_rng(0)
  base = [rng.standard_normal((10, 128)) for _ in range(20)]
  noisy = base[3] + 0.2 * rng.standard_normal((10, 128))
  cut = base[5][4:8].copy()
  delayed = np.concatenate([rng.standard_normal((2, 128)), base[8][:8]])
  return make_clips(base + [noisy, cut, delayed])


def by_ids(pairs):
  return {(p.id_a, p.id_b): p for p in pairs}


def test_finds_copies_cutouts_and_delays_with_their_offsets(corpus):
  found = by_ids(duplicates.find_duplicates(corpus))
  assert set(found) == {('clip03', 'clip20'), ('clip05', 'clip21'),
                        ('clip08', 'clip22')}
  noisy = found['clip03', 'clip20']
  assert noisy.offset_seconds == 0 and noisy.coverage_a == noisy.coverage_b == 1
  assert 0.95 < noisy.similarity < 1
  cut = found['clip05', 'clip21']
  # Audio at t in clip 5 is at t - 4 examples in the cut-out.
  assert cut.offset_seconds == pytest.approx(-4 * HOP)
  assert cut.start_a == pytest.approx(4 * HOP) and cut.start_b == 0
  assert cut.coverage_b == 1 and cut.coverage_a == pytest.approx(0.4)
  assert cut.matched_seconds == pytest.approx(4 * HOP)
  assert cut.similarity == pytest.approx(1.0, abs=1e-5)
  delayed = found['clip08', 'clip22']
  assert delayed.offset_seconds == pytest.approx(2 * HOP)
  assert delayed.matched_seconds == pytest.approx(8 * HOP)
  # Most similar first.
  assert [p.id_b for p in duplicates.find_duplicates(corpus)][0] in ('clip21', 'clip22')


def test_threshold_and_min_examples(corpus):
  # The noisy copy's similarity is ~0.98: a threshold above it drops it only.
  found = by_ids(duplicates.find_duplicates(corpus, threshold=0.999))
  assert set(found) == {('clip05', 'clip21'), ('clip08', 'clip22')}
  # A match needs min_examples overlapping examples unless a clip is shorter.
  found = by_ids(duplicates.find_duplicates(corpus, min_examples=9))
  assert set(found) == {('clip03', 'clip20'), ('clip05', 'clip21')}


def test_generic_examples_propose_no_pairs():
  """Clips sharing one 'silent' example are not duplicates; real copies still are."""
  rng = np.random.default_rng(1)
  silence = rng.standard_normal(128)
  base = []
  for i in range(12):
    clip = rng.standard_normal((6, 128))
    clip[i % 6] = silence
    base.append(clip)
  copy = base[2].copy()
  clips = make_clips(base + [copy])
  # With a single shared example allowed to match, silent clips pair up.
  loose = duplicates.find_duplicates(clips, min_examples=1, max_neighbors=0)
  assert len(loose) > 1
  strict = duplicates.find_duplicates(clips, min_examples=1, max_neighbors=5)
  assert [(p.id_a, p.id_b) for p in strict] == [('clip02', 'clip12')]
  # The default min_examples=2 also refuses a single shared example.
  assert [(p.id_a, p.id_b) for p in duplicates.find_duplicates(clips)] == [
      ('clip02', 'clip12')]


def test_short_clips_and_empty_corpus():
  rng = np.random.default_rng(2)
  a = rng.standard_normal((5, 128))
  one = a[2:3] + 0.01 * rng.standard_normal((1, 128))
  clips = make_clips([a, one, rng.standard_normal((0, 128)),
                      rng.standard_normal((3, 128))])
  found = duplicates.find_duplicates(clips)
  assert [(p.id_a, p.id_b, p.offset_seconds) for p in found] == [
      ('clip00', 'clip01', pytest.approx(-2 * HOP))]
  assert duplicates.find_duplicates(make_clips([np.zeros((0, 128))])) == []


@pytest.mark.parametrize('kwargs, message', [
    (dict(threshold=0), 'threshold'), (dict(threshold=1.5), 'threshold'),
    (dict(min_examples=0), 'min_examples'), (dict(max_neighbors=-1), 'max_neighbors')])
def test_refuses_bad_arguments(corpus, kwargs, message):
  with pytest.raises(ValueError, match=message):
    duplicates.find_duplicates(corpus, **kwargs)


def test_refuses_mixed_hops():
  rng = np.random.default_rng(3)
  clips = make_clips([rng.standard_normal((4, 128))] * 2)
  mixed = clips_lib.Clips(**{**clips.__dict__,
                             'hop_seconds': np.array([0.96, 0.48], np.float32)})
  with pytest.raises(ValueError, match='mix example hops'):
    duplicates.find_duplicates(mixed)


def test_blocks_do_not_change_the_result(corpus, monkeypatch):
  whole = duplicates.find_duplicates(corpus)
  monkeypatch.setattr(duplicates, '_BLOCK_ELEMENTS', 7 * len(corpus.embeddings))
  assert duplicates.find_duplicates(corpus) == whole


def test_pairs_csv_round_trip_and_groups(corpus, tmp_path):
  pairs = duplicates.find_duplicates(corpus)
  path = tmp_path / 'pairs.csv'
  duplicates.write_pairs(pairs, path)
  with open(path, newline='') as f:
    rows = list(csv.DictReader(f))
  assert tuple(rows[0]) == duplicates.PAIR_FIELDS
  assert [(r['id_a'], r['id_b']) for r in rows] == [(p.id_a, p.id_b) for p in pairs]
  assert [float(r['offset_seconds']) for r in rows] == pytest.approx(
      [p.offset_seconds for p in pairs], abs=1e-3)
  assert duplicates.read_pair_ids(path) == [(p.id_a, p.id_b) for p in pairs]
  assert not [f for f in os.listdir(tmp_path) if f != 'pairs.csv']
  (tmp_path / 'bad.csv').write_text('a,b\n1,2\n')
  with pytest.raises(ValueError, match='id_a and id_b'):
    duplicates.read_pair_ids(tmp_path / 'bad.csv')


def test_groups_are_connected_components():
  groups = duplicates.group_ids([('d', 'c'), ('b', 'c'), ('x', 'y'), ('e', 'd')])
  assert groups == {'b': 'b', 'c': 'b', 'd': 'b', 'e': 'b', 'x': 'x', 'y': 'x'}
  # The order of the pairs does not matter.
  assert duplicates.group_ids([('x', 'y'), ('e', 'd'), ('b', 'c'), ('d', 'c')]) == groups


def test_split_assignment_keeps_groups_together():
  ids = [f'id{i:04d}' for i in range(2000)]
  groups = {clip_id: ids[(i // 4) * 4] for i, clip_id in enumerate(ids[:800])}
  plain = data_lib.split_assignment(ids, 0.2, 0.2, seed=3)
  grouped = data_lib.split_assignment(ids, 0.2, 0.2, seed=3, groups=groups)
  for start in range(0, 800, 4):
    assert len(set(grouped[start:start + 4])) == 1
  # Without pairs the groups' leaders, and clips in no group, keep their split.
  assert (grouped[::4][:200] == plain[::4][:200]).all()
  assert (grouped[800:] == plain[800:]).all()
  # Ungrouped, some groups would have been torn apart.
  assert any(len(set(plain[s:s + 4])) > 1 for s in range(0, 800, 4))
  folds = data_lib.fold_assignment(ids, 4, 0.1, seed=3, groups=groups)
  for start in range(0, 800, 4):
    assert len(set(folds[start:start + 4])) == 1


def test_benchmark_transformations():
  rng = np.random.default_rng(0)
  wave = duplicate_benchmark.generate_clip('notes', 1)
  assert wave.dtype == np.float32 and len(wave) == 160000
  assert np.max(np.abs(wave)) == pytest.approx(0.5)
  for kind in duplicate_benchmark.TRANSFORMS:
    copy = duplicate_benchmark.transform(wave, kind, rng)
    if kind == 'crop':
      assert 3 * 16000 <= len(copy) <= 6 * 16000
    else:
      assert abs(len(copy) - len(wave)) < 2000  # MP3 may pad a frame.
    assert np.isfinite(copy).all() and not np.array_equal(copy[:len(wave)], wave[:len(copy)])
  corpus = duplicate_benchmark.generate_corpus(5)
  assert len(corpus.ids) == 10 and set(corpus.pairs.values()) == set(
      duplicate_benchmark.TRANSFORMS)


# ------------------------------------------------------------- end to end

def _write(path, wave):
  soundfile.write(str(path), wave, 16000, subtype='PCM_16')


@pytest.fixture(scope='module')
def audio_records(recipe_model, tmp_path_factory):
  """Generated clips of four families and three kinds of copies, extracted."""
  from vggish import embedder as embedder_lib
  from vggish import extractor
  root = tmp_path_factory.mktemp('duplicates_audio')
  audio = root / 'audio'
  audio.mkdir()
  rng = np.random.default_rng(7)
  waves = {f'{family}': duplicate_benchmark.generate_clip(family, 11 + k)
           for k, family in enumerate(('notes', 'chirps', 'bursts', 'clicks'))}
  for name, wave in waves.items():
    _write(audio / f'{name}.wav', wave)
  # A cut-out starting at 2 examples (1.92 s), 4 s long.
  _write(audio / 'notes_cut.wav', waves['notes'][30720:30720 + 64000])
  _write(audio / 'chirps_mp3.wav', duplicate_benchmark.transform(waves['chirps'], 'mp3', rng))
  # Delayed by one example (0.96 s of other audio first), cut to 10 s.
  _write(audio / 'bursts_copy.wav', np.concatenate(
      [waves['clicks'][:15360], waves['bursts']])[:160000])
  records = root / 'records'
  extractor.extract([str(audio)], str(records),
                    embedder=embedder_lib.Embedder(recipe_model), show_progress=False)
  return records


def test_cli_finds_the_copies_of_generated_audio(audio_records, tmp_path):
  out = tmp_path / 'pairs.csv'
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  result = subprocess.run(
      [sys.executable, '-m', 'tools.duplicates', f'--output={out}', str(audio_records)],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  assert 'wrote' in result.stderr and '3 pairs' in result.stderr
  with open(out, newline='') as f:
    rows = {(r['id_a'], r['id_b']): r for r in csv.DictReader(f)}
  assert set(rows) == {('notes', 'notes_cut'), ('chirps', 'chirps_mp3'),
                       ('bursts', 'bursts_copy')}
  cut = rows['notes', 'notes_cut']
  assert float(cut['offset_seconds']) == pytest.approx(-1.92)
  assert float(cut['similarity']) == pytest.approx(1.0, abs=1e-4)
  assert float(cut['coverage_b']) == 1.0
  assert float(rows['chirps', 'chirps_mp3']['offset_seconds']) == 0
  assert float(rows['chirps', 'chirps_mp3']['similarity']) > 0.95
  assert float(rows['bursts', 'bursts_copy']['offset_seconds']) == pytest.approx(0.96)


def test_cli_usage_errors(tmp_path):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  for args, message in [
      ([f'--output={tmp_path / "p.txt"}', str(tmp_path)], 'must end in .csv'),
      ([f'--output={tmp_path / "missing" / "p.csv"}', str(tmp_path)], 'does not exist'),
      ([f'--output={tmp_path / "p.csv"}', str(tmp_path / 'none*.tfrecord')], 'no TFRecord'),
  ]:
    result = subprocess.run([sys.executable, '-m', 'tools.duplicates'] + args,
                            cwd=REPO_ROOT, env=env, capture_output=True, text=True,
                            timeout=300)
    assert result.returncode == 2, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith('error:')]
    assert len(errors) == 1 and message in errors[0], result.stderr[-2000:]
    assert 'Traceback' not in result.stderr


def test_classifier_keeps_duplicate_groups_in_one_split(tmp_path):
  """classifier.train --group_duplicates: each group in one split, on evaluation too."""
  import json
  from classifier import evaluate
  from classifier import synthetic
  synthetic.write_label_map(tmp_path / 'labels.csv', ['a', 'b', 'c'])
  ids, embeddings, label_lists = synthetic.embedding_task(200, num_classes=3, seed=2)
  synthetic.write_embedding_records(tmp_path / 'train.tfrecord', ids, embeddings,
                                    label_lists, 'uint8')
  # Groups of three: (0, 1, 2), (3, 4, 5), ... linked by chains of pairs.
  with open(tmp_path / 'pairs.csv', 'w') as f:
    f.write('id_a,id_b,similarity\n')
    for start in range(0, 60, 3):
      f.write(f'{ids[start]},{ids[start + 1]},0.99\n{ids[start + 1]},{ids[start + 2]},0.99\n')
    f.write('not_a_clip,clip00000,0.95\n')
  fractions = dict(validation_fraction=0.25, test_fraction=0.25, seed=4)
  plain = data_lib.split_assignment(ids, **fractions)
  groups = {ids[i]: ids[(i // 3) * 3] for i in range(60)}
  grouped = data_lib.split_assignment(ids, **fractions, groups=groups)
  assert any(len(set(plain[s:s + 3])) > 1 for s in range(0, 60, 3))
  assert all(len(set(grouped[s:s + 3])) == 1 for s in range(0, 60, 3))
  assert (grouped == 'test').sum() != (plain == 'test').sum()  # So the count below tells.

  out = tmp_path / 'model'
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2')
  result = subprocess.run(
      [sys.executable, '-m', 'classifier.train',
       f'--train_records={tmp_path / "train.tfrecord"}', f'--label_map={tmp_path / "labels.csv"}',
       f'--model_dir={out}', '--validation_split=0.25', '--test_split=0.25', '--split_seed=4',
       f'--group_duplicates={tmp_path / "pairs.csv"}', '--head=mean_mlp',
       '--hidden_units=8', '--epochs=1', '--batch_size=32', '--noprogress'],
      cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)
  assert result.returncode == 0, result.stderr[-3000:]
  metrics = json.loads((out / 'metrics.json').read_text())
  assert metrics['test']['num_clips'] == (grouped == 'test').sum()
  assert metrics['num_train_clips'] == (grouped == 'train').sum()
  saved = duplicates.read_groups(out / 'duplicate_groups.csv')
  assert saved == groups  # 'not_a_clip' is not among the records.
  config = json.loads((out / 'config.json').read_text())
  assert config['split']['groups'] == 'duplicate_groups.csv'
  # Evaluation finds the same test clips again.
  report = evaluate.evaluate(out, records=str(tmp_path / 'train.tfrecord'), split='test',
                             output_dir=str(tmp_path / 'eval'))
  assert report['num_clips'] == (grouped == 'test').sum()
