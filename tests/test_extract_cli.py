"""Tests of `python -m tools.extract` as a user runs it: exit codes, usage errors, kill."""

import os
import pathlib
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import soundfile

from vggish import records
from vggish import manifest as manifest_lib

REPO_ROOT = pathlib.Path(__file__).resolve().parents[1]


def _env(**extra):
  env = dict(os.environ, TF_CPP_MIN_LOG_LEVEL='2', PYTHONPATH=str(REPO_ROOT))
  env.update(extra)
  return env


def _command(*args):
  return [sys.executable, '-m', 'tools.extract', *map(str, args)]


def _run(*args, **env):
  return subprocess.run(_command(*args), cwd=REPO_ROOT, env=_env(**env),
                        capture_output=True, text=True, timeout=120)


def _assert_usage_error(proc, *phrases):
  assert proc.returncode == 2, proc.stderr
  assert 'Traceback' not in proc.stderr
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('error: '), proc.stderr
  for phrase in phrases:
    assert phrase in lines[0], lines[0]


def _write_clips(directory, count, seconds=1.0):
  directory.mkdir(parents=True, exist_ok=True)
  rng = np.random.RandomState(0)
  for i in range(count):
    data = 0.3 * rng.standard_normal(int(seconds * 16000))
    soundfile.write(str(directory / f'clip{i:02d}.wav'), data, 16000, subtype='PCM_16')


def test_usage_errors_are_one_line_with_status_2(tmp_path, recipe_pca_params_path):
  out = tmp_path / 'out'
  _assert_usage_error(_run('--output', out), 'give INPUT')
  (tmp_path / 'docs').mkdir()
  (tmp_path / 'docs' / 'readme.txt').write_text('hi')
  _assert_usage_error(_run('--output', out, tmp_path / 'docs'), 'no audio files found')
  _assert_usage_error(_run('--output', out, tmp_path / 'nothing.wav'),
                      'none of the 1 input(s) exists', 'nothing.wav: no such file')
  _assert_usage_error(_run('--output', out, str(tmp_path / '*.flac')), 'matches no file')
  (tmp_path / 'list.csv').write_text('fname\nnot_here.wav\n')
  _assert_usage_error(_run('--output', out, '--input_csv', tmp_path / 'list.csv'),
                      'none of the 1 input(s) exists', 'not_here.wav')
  clips = tmp_path / 'clips'
  _write_clips(clips, 1)
  _assert_usage_error(_run('--output', out, '--records_per_shard=0', clips),
                      'records_per_shard')
  _assert_usage_error(_run('--output', out, '--hop_seconds=0.005', clips),
                      '--hop_seconds')
  _assert_usage_error(_run(clips), '--output')
  _assert_usage_error(
      _run('--output', out, '--checkpoint', tmp_path / 'no.ckpt', clips),
      'python -m tools.download')
  # No --checkpoint and none in the workspace: the message says how to get it.
  _assert_usage_error(
      _run('--output', out, clips, VGGISH_CHECKPOINT_DIR=str(tmp_path / 'empty')),
      'python -m tools.download', 'vggish_model.ckpt')
  assert not out.exists()  # Nothing is written before the inputs and model check out.


def _wait_for_new_shard(proc, out, known, timeout=120.0):
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if set(manifest_lib.list_shards(str(out))) - set(known):
      return True
    if proc.poll() is not None:
      return False
    time.sleep(0.01)
  return False


def _run_until_a_new_shard_then_signal(args, out, sig):
  """Starts the CLI, sends `sig` once it has renamed a new shard; returns rc."""
  known = manifest_lib.list_shards(str(out))
  proc = subprocess.Popen(_command(*args), cwd=REPO_ROOT, env=_env(),
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE)
  try:
    assert _wait_for_new_shard(proc, out, known), proc.communicate()[1].decode()[-2000:]
    assert proc.poll() is None, 'the run ended before the signal could be sent'
    proc.send_signal(sig)
    _, stderr = proc.communicate(timeout=120)
  finally:
    proc.kill()
    proc.communicate()
  return proc.returncode, stderr.decode()


def _check_consistent(out):
  """Only complete shards, and ok rows that agree with them; returns the ids."""
  in_shards = {}
  for name in manifest_lib.list_shards(str(out)):
    for video_id, examples, _ in records.summarize_records(str(out / name)):
      assert video_id not in in_shards, f'{video_id} is in two shards'
      in_shards[video_id] = (name, examples)
  for row in manifest_lib.read_rows(str(out / 'manifest.csv')):
    if row.status == manifest_lib.OK:
      assert in_shards[row.id] == (row.shard, row.examples)
  return in_shards


def test_bad_named_paths_are_failed_rows_and_the_run_goes_on(tmp_path, recipe_checkpoint):
  clips = tmp_path / 'clips'
  _write_clips(clips, 2)
  dangling = tmp_path / 'dangling.wav'
  dangling.symlink_to(tmp_path / 'deleted.wav')
  out = tmp_path / 'out'
  proc = _run('--output', out, '--checkpoint', recipe_checkpoint, '--noprogress',
              clips / 'clip00.wav', dangling, tmp_path / 'typo.wav', clips / 'clip01.wav')
  assert proc.returncode == 3, proc.stderr  # Some inputs failed; the rest is done.
  assert 'Traceback' not in proc.stderr
  rows = manifest_lib.Manifest(str(out)).rows
  assert {k: r.status for k, r in rows.items()} == {
      'clip00': 'ok', 'clip01': 'ok', 'dangling': 'failed', 'typo': 'failed'}
  assert 'broken symbolic link' in rows['dangling'].error
  assert 'no such file' in rows['typo'].error


# Runs tools.extract with TFRecord writes failing as on a full disk: the first
# `VGGISH_TEST_GOOD_WRITES` records are written, every later write raises what
# TensorFlow raises there.
_FULL_DISK_MAIN = '''
import os
import tensorflow as tf
from vggish import extractor

class FullDiskWriter:
  good = int(os.environ['VGGISH_TEST_GOOD_WRITES'])

  def __init__(self, path):
    self._path = path
    self._writer = tf.io.TFRecordWriter(path)

  def write(self, data):
    if FullDiskWriter.good <= 0:
      raise tf.errors.ResourceExhaustedError(
          None, None, self._path + '; No space left on device')
    FullDiskWriter.good -= 1
    self._writer.write(data)

  def close(self):
    self._writer.close()

extractor._open_record_writer = FullDiskWriter
from absl import app
from tools import extract
from vggish import cli
app.run(extract.main, flags_parser=cli.parse_flags)
'''


def test_full_disk_is_one_line_with_status_4_and_the_rerun_resumes(
    tmp_path, recipe_checkpoint):
  clips = tmp_path / 'clips'
  _write_clips(clips, 5)
  out = tmp_path / 'out'
  args = ['--output', out, '--checkpoint', recipe_checkpoint, '--records_per_shard', 2,
          '--noprogress', clips]
  full = subprocess.run([sys.executable, '-c', _FULL_DISK_MAIN, *map(str, args)],
                        cwd=REPO_ROOT, env=_env(VGGISH_TEST_GOOD_WRITES='3'),
                        capture_output=True, text=True, timeout=120)
  assert full.returncode == 4, full.stderr
  assert 'Traceback' not in full.stderr
  # TensorFlow's own start-up log lines come first; ours is one line, the last.
  lines = [line for line in full.stderr.splitlines() if line.startswith('error:')]
  assert len(lines) == 1 and full.stderr.strip().endswith(lines[0]), full.stderr
  assert lines[0] == (
      f'error: cannot write {out}/embeddings-00001.tfrecord.tmp: No space left on device; '
      f'free some space (or use another --output directory) and rerun the same command: '
      f'it resumes, keeping every input already extracted')
  # The first shard is complete and recorded; nothing half-written is left.
  assert sorted(_check_consistent(out)) == ['clip00', 'clip01']
  assert not [n for n in os.listdir(out) if n.endswith(manifest_lib.TEMP_SUFFIX)]

  resumed = _run(*args)
  assert resumed.returncode == 0, resumed.stderr
  assert '3 files extracted' in resumed.stdout and '2 already done' in resumed.stdout
  assert sorted(_check_consistent(out)) == [f'clip{i:02d}' for i in range(5)]


@pytest.mark.slow  # Three runs of the CLI, each importing TensorFlow: ~20-35 s.
def test_kill_interrupt_and_resume_give_every_input_exactly_once(
    tmp_path, recipe_checkpoint):
  audio = tmp_path / 'audio'
  _write_clips(audio, 40)
  (audio / 'broken.wav').write_bytes(b'RIFF\x00\x00\x00\x00WAVEnot really')
  out = tmp_path / 'out'
  args = ('--output', out, '--checkpoint', recipe_checkpoint, '--batch_size', 2,
          '--records_per_shard', 3, '--noprogress', audio)

  # SIGKILL: nothing runs at exit; the next start must cope.
  rc, _ = _run_until_a_new_shard_then_signal(args, out, signal.SIGKILL)
  assert rc == -signal.SIGKILL
  after_kill = _check_consistent(out)
  assert 3 <= len(after_kill) < 40, 'the kill came too late to test anything'

  # Ctrl-C: the files in hand are finished and saved, exit status 130.
  rc, stderr = _run_until_a_new_shard_then_signal(args, out, signal.SIGINT)
  assert rc == 130, stderr[-2000:]
  assert 'rerun the same command to resume' in stderr
  assert not [n for n in os.listdir(out) if n.endswith(manifest_lib.TEMP_SUFFIX)]
  after_interrupt = _check_consistent(out)
  assert len(after_kill) < len(after_interrupt) < 40
  assert len(manifest_lib.Manifest(str(out)).done_ids()) == len(after_interrupt)

  resumed = _run(*args)
  assert resumed.returncode == 3, resumed.stderr  # broken.wav failed.
  assert '1 failed' in resumed.stdout
  assert not [n for n in os.listdir(out) if n.endswith(manifest_lib.TEMP_SUFFIX)]
  assert sorted(_check_consistent(out)) == [f'clip{i:02d}' for i in range(40)]
  rows = manifest_lib.Manifest(str(out)).rows
  assert len(rows) == 41
  assert rows['broken'].status == manifest_lib.FAILED
  assert 'cannot be read as audio' in rows['broken'].error
  assert all(row.status == manifest_lib.OK for key, row in rows.items()
             if key != 'broken')
