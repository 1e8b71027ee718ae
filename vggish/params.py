"""Hyperparameters of VGGish, as one frozen dataclass with upstream's defaults.

Every function that depends on a hyperparameter takes a `Params` argument
(defaulting to `DEFAULT_PARAMS`), so there is no mutable module state. Use
`dataclasses.replace(DEFAULT_PARAMS, example_hop_seconds=0.48)` to derive a
variant.
"""

import dataclasses

SHORT_CLIP_POLICIES = ('drop', 'pad', 'repeat')


@dataclasses.dataclass(frozen=True)
class Params:
  """VGGish hyperparameters (defaults are those of the original release)."""

  # Frontend.
  sample_rate: int = 16000
  stft_window_seconds: float = 0.025
  stft_hop_seconds: float = 0.010
  num_mel_bins: int = 64
  mel_min_hz: float = 125.0
  mel_max_hz: float = 7500.0
  log_offset: float = 0.01  # Added before log() to avoid log(0).
  example_window_seconds: float = 0.96  # Each example is 96 frames of 10 ms.
  example_hop_seconds: float = 0.96  # Upstream: no overlap between examples.
  # What to do with clips shorter than one example: 'drop' (upstream: zero
  # examples), 'pad' (zero-pad to one example) or 'repeat' (tile the clip).
  short_clip_policy: str = 'drop'

  # Model.
  embedding_size: int = 128

  # Postprocessor.
  pca_eigen_vectors_name: str = 'pca_eigen_vectors'
  pca_means_name: str = 'pca_means'
  quantize_min_val: float = -2.0
  quantize_max_val: float = +2.0

  # Training defaults of the original release.
  init_stddev: float = 0.01
  learning_rate: float = 1e-4
  adam_epsilon: float = 1e-8

  def __post_init__(self):
    if self.short_clip_policy not in SHORT_CLIP_POLICIES:
      raise ValueError(
          f'short_clip_policy must be one of {SHORT_CLIP_POLICIES}, '
          f'got {self.short_clip_policy!r}')
    if self.sample_rate <= 0:
      raise ValueError(f'sample_rate must be positive, got {self.sample_rate}')
    if self.example_hop_seconds <= 0:
      raise ValueError(
          f'example_hop_seconds must be positive, got {self.example_hop_seconds}')

  # Derived sizes. Upstream rounds seconds * rate to the nearest integer.
  @property
  def stft_window_length_samples(self) -> int:  # 400
    return int(round(self.sample_rate * self.stft_window_seconds))

  @property
  def stft_hop_length_samples(self) -> int:  # 160
    return int(round(self.sample_rate * self.stft_hop_seconds))

  @property
  def fft_length(self) -> int:  # 512: next power of two of the window.
    return 2 ** int(_ceil_log2(self.stft_window_length_samples))

  @property
  def num_spectrogram_bins(self) -> int:  # 257
    return self.fft_length // 2 + 1

  @property
  def features_sample_rate(self) -> float:  # 100 frames per second.
    return 1.0 / self.stft_hop_seconds

  @property
  def example_window_length(self) -> int:  # 96 frames
    return int(round(self.example_window_seconds * self.features_sample_rate))

  @property
  def example_hop_length(self) -> int:  # 96 frames
    return int(round(self.example_hop_seconds * self.features_sample_rate))

  @property
  def min_samples_per_example(self) -> int:  # 15 600 samples = 0.975 s
    return (self.stft_window_length_samples +
            (self.example_window_length - 1) * self.stft_hop_length_samples)


def _ceil_log2(n: int) -> int:
  return (int(n) - 1).bit_length()


DEFAULT_PARAMS = Params()

# Examples per model call in extraction. On a 2-core CPU the model's rate per
# example is about flat from batch 16 up (tools.benchmark sweeps it); larger
# batches only hold more files' examples.
DEFAULT_BATCH_SIZE = 32

# The model's computation precision: float32 is the faithful default;
# bfloat16 (Keras' mixed_bfloat16 policy: float32 weights, bfloat16 math,
# float32 output) is an opt-in fast mode (see `vggish.model.VGGish`).
FLOAT32 = 'float32'
BFLOAT16 = 'bfloat16'
PRECISIONS = (FLOAT32, BFLOAT16)


def check_precision(precision: str) -> str:
  """Returns `precision`, or raises ValueError if it is not one of `PRECISIONS`."""
  if precision not in PRECISIONS:
    raise ValueError(f'precision must be one of {", ".join(PRECISIONS)}, got '
                     f'{precision!r}')
  return precision
