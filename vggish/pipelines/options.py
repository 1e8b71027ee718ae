"""The command-line flags both extraction front doors share, and what they mean.

`tools.extract` and `tools.extract_beam` take the same inputs and settings;
they are defined once here (`define_flags`) and read by the same functions
(`params`, `find_inputs`). Flags that only one front door has stay in its
module (`--num_workers` decoding threads in `tools.extract`: on Dataflow that
name is the worker count).
"""

import dataclasses
import sys
from typing import Callable, List, Sequence

from absl import flags

from vggish import audio_io
from vggish import corpus
from vggish import files as files_lib
from vggish.params import DEFAULT_BATCH_SIZE, DEFAULT_PARAMS, SHORT_CLIP_POLICIES, Params


# Exit statuses of the extraction CLIs (2, a usage error, is `vggish.cli.EXIT_USAGE`).
EXIT_OK = 0
EXIT_SOME_FAILED = 3
EXIT_OUTPUT = 4
EXIT_PIPELINE = 5  # tools.extract_beam: the Beam job itself failed.
EXIT_INTERRUPTED = 130


class UsageError(ValueError):
  """A mistake in the command line."""


@dataclasses.dataclass(frozen=True)
class ExtractionFlags:
  """The shared flags' holders (`.value` after parsing)."""
  output: flags.FlagHolder
  checkpoint: flags.FlagHolder
  pca_params: flags.FlagHolder
  postprocess: flags.FlagHolder
  input_csv: flags.FlagHolder
  audio_dir: flags.FlagHolder
  label_map: flags.FlagHolder
  hop_seconds: flags.FlagHolder
  short_clip_policy: flags.FlagHolder
  records_per_shard: flags.FlagHolder
  batch_size: flags.FlagHolder
  nonfinite: flags.FlagHolder
  allow_tf32: flags.FlagHolder


def define_flags() -> ExtractionFlags:
  """Defines the shared flags on absl's global `FLAGS`; call once per CLI."""
  return ExtractionFlags(
      output=flags.DEFINE_string('output', None, 'Output directory (created if needed).'),
      checkpoint=flags.DEFINE_string(
          'checkpoint', None, 'VGGish checkpoint (slim V1/V2 or .weights.h5); '
          'default: vggish_model.ckpt in the workspace checkpoint directory.'),
      pca_params=flags.DEFINE_string(
          'pca_params', None, 'PCA parameters for --postprocess; default: '
          'vggish_pca_params.npz in the workspace checkpoint directory.'),
      postprocess=flags.DEFINE_bool(
          'postprocess', False, 'Write PCA-whitened 8-bit embeddings (the '
          'released AudioSet features) instead of raw float32 embeddings.'),
      input_csv=flags.DEFINE_string(
          'input_csv', None, 'CSV with a `fname` column and optionally `labels` '
          '(comma-separated names), Freesound style.'),
      audio_dir=flags.DEFINE_string(
          'audio_dir', None, 'Directory the CSV\'s fname values are relative '
          'to; default: the CSV\'s directory.'),
      label_map=flags.DEFINE_string(
          'label_map', None, 'Label map in AudioSet class_labels_indices.csv '
          'format (index,mid,display_name); default: built from the CSV\'s labels.'),
      hop_seconds=flags.DEFINE_float(
          'hop_seconds', DEFAULT_PARAMS.example_hop_seconds,
          'Seconds between example starts (a multiple of 0.01; 0.96 = no '
          'overlap, as upstream).'),
      short_clip_policy=flags.DEFINE_enum(
          'short_clip_policy', 'pad', SHORT_CLIP_POLICIES,
          'Clips shorter than one example (0.975 s): pad with zeros, repeat, or '
          'drop (drop records them as failed).'),
      records_per_shard=flags.DEFINE_integer(
          'records_per_shard', 1000, 'Inputs per TFRecord shard (at most).',
          lower_bound=1),
      batch_size=flags.DEFINE_integer(
          'batch_size', DEFAULT_BATCH_SIZE, 'Examples per model call.', lower_bound=1),
      nonfinite=flags.DEFINE_enum(
          'nonfinite', 'fail', audio_io.NONFINITE_POLICIES,
          'Audio with NaN/Inf samples: fail the file (reason in the manifest), '
          'or replace them with zeros (a warning in the manifest).'),
      allow_tf32=flags.DEFINE_bool(
          'allow_tf32', False, 'Let Ampere+ GPUs compute in TensorFloat-32: '
          'faster, but embeddings move by ~1e-3 and bytes by more than one '
          'step. Off: faithful float32.'),
  )


def params(extraction_flags: ExtractionFlags) -> Params:
  """The frontend settings the flags ask for.

  Raises:
    UsageError: --hop_seconds is not a positive multiple of the frame hop.
  """
  hop = extraction_flags.hop_seconds.value
  frames = hop * DEFAULT_PARAMS.features_sample_rate
  if not hop > 0 or round(frames) < 1 or abs(frames - round(frames)) > 1e-6:
    raise UsageError(
        f'--hop_seconds must be a positive multiple of '
        f'{DEFAULT_PARAMS.stft_hop_seconds} s (the frame hop), got {hop}')
  return dataclasses.replace(
      DEFAULT_PARAMS, example_hop_seconds=hop,
      short_clip_policy=extraction_flags.short_clip_policy.value)


def find_inputs(extraction_flags: ExtractionFlags, args: Sequence[str],
                discover: Callable[[Sequence[str]], List[corpus.AudioInput]] = (
                    corpus.discover_inputs),
                files: files_lib.LocalFiles = files_lib.LOCAL
                ) -> List[corpus.AudioInput]:
  """The inputs that INPUT arguments and --input_csv/--audio_dir name.

  Args:
    extraction_flags: the parsed flags.
    args: the positional INPUT arguments (files, directories, globs).
    discover: finds inputs for `args` (`vggish.corpus.discover_inputs`, or
      `vggish.pipelines.filesystem.discover_inputs` for remote paths).
    files: where the CSV is read (`vggish.files`).

  Raises:
    UsageError: no inputs given, or --audio_dir without --input_csv.
    ValueError: nothing found, none exists, or two files would share an id.

  Returns:
    The inputs, each id once.
  """
  input_csv = extraction_flags.input_csv.value
  audio_dir = extraction_flags.audio_dir.value
  if not args and not input_csv:
    raise UsageError('give INPUT files, directories or globs, or --input_csv')
  if audio_dir and not input_csv:
    raise UsageError('--audio_dir needs --input_csv')
  items = discover(args) if args else []
  if input_csv:
    items += corpus.read_input_csv(input_csv, audio_dir, files)
  if not items:
    raise UsageError(f'no audio files found in {" ".join(args)}')
  corpus.check_some_exist(items)
  # A file both in a folder given and in the CSV is taken once.
  return corpus.unique_ids(items)


def report(result, rerun: str) -> int:
  """Prints a run's summary (stdout) and its warnings and failures (stderr).

  Args:
    result: a `vggish.pipelines.steps.ExtractResult`.
    rerun: how to retry failed inputs or resume, for the messages ('rerun the
      same command').

  Returns:
    The exit status: `EXIT_INTERRUPTED`, `EXIT_SOME_FAILED` or `EXIT_OK`.
  """
  rate = result.num_examples / result.wall_seconds if result.wall_seconds else 0.0
  print(f'{result.output_dir}: {result.num_ok} files extracted '
        f'({result.num_examples} embeddings, {result.audio_seconds:.1f} s of audio '
        f'in {result.wall_seconds:.1f} s, {rate:.1f} examples/s), {result.num_failed} '
        f'failed, {result.num_skipped} already done; shards written: '
        f'{len(result.shards)}')
  manifest = f'{result.output_dir.rstrip("/")}/manifest.csv'
  if result.warnings:
    print(f'{len(result.warnings)} extracted input(s) have a warning (e.g. '
          f'{result.warnings[0][0]}: {result.warnings[0][1]}); see the warning '
          f'column of {manifest}', file=sys.stderr)
  if result.interrupted:
    print(f'interrupted: {rerun} to resume', file=sys.stderr)
    return EXIT_INTERRUPTED
  if result.num_failed:
    print(f'{result.num_failed} input(s) failed; reasons in {manifest} ({rerun} to '
          f'retry them)', file=sys.stderr)
    return EXIT_SOME_FAILED
  return EXIT_OK
