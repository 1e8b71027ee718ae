"""Fine-tuning: VGGish from a checkpoint and a head, trained end to end on audio.

The model (`classifier.heads.build_finetune_model`) takes log-mel examples,
so each audio file goes through upstream's numpy frontend once, before
training (the frontend has no weights); VGGish, a ReLU on its embedding and
the head then train together. The backbone gets its own, smaller learning
rate (`TrainOptions.backbone_learning_rate`), and parts of it can be frozen:

  freeze='none'      everything trains
  freeze='conv'      the convolutional stack is frozen, fc1_1, fc1_2, fc2 train
  freeze='conv_fc1'  only fc2 trains in the backbone
  freeze='all'       VGGish is a fixed feature extractor (only the head trains)

Freezing the conv stack keeps the generic low-level features learnt on
millions of clips and removes most of the compute of the backward pass.
"""

import logging
from typing import Optional

from classifier import heads
from vggish.params import DEFAULT_PARAMS, Params

FREEZE_CHOICES = ('none', 'conv', 'conv_fc1', 'all')
_CONV_LAYERS = ('conv1', 'conv2', 'conv3_1', 'conv3_2', 'conv4_1', 'conv4_2')
_FC1_LAYERS = ('fc1_1', 'fc1_2')


def freeze_backbone(backbone, freeze: str) -> None:
  """Marks VGGish layers non-trainable according to `freeze` (see module doc).

  Raises:
    ValueError: for an unknown choice.
  """
  if freeze not in FREEZE_CHOICES:
    raise ValueError(f'freeze must be one of {FREEZE_CHOICES}, got {freeze!r}')
  frozen = {
      'none': (),
      'conv': _CONV_LAYERS,
      'conv_fc1': _CONV_LAYERS + _FC1_LAYERS,
      'all': None,
  }[freeze]
  if frozen is None:
    backbone.trainable = False
    return
  backbone.trainable = True
  for name in frozen:
    backbone.get_layer(name).trainable = False


def build_model(num_classes: int, checkpoint, head: str = 'mean_mlp',
                freeze: str = 'conv', spec_augment: bool = False,
                seed: Optional[int] = None, head_options: Optional[dict] = None,
                params: Params = DEFAULT_PARAMS, allow_tf32: bool = False,
                name: str = 'vggish_finetune'):
  """VGGish (from `checkpoint`) + ReLU + a head, on log-mel examples.

  Args:
    num_classes: output classes.
    checkpoint: VGGish weights (a slim checkpoint or `.weights.h5`; see
      `vggish.model.VGGish`). None starts from random weights (only sensible
      for tests).
    head: one of `classifier.heads.HEADS`.
    freeze: one of `FREEZE_CHOICES`.
    spec_augment: add SpecAugment-style masking (training only).
    seed: seed of the masking.
    head_options: overrides of the head's defaults.
    params: VGGish hyperparameters.
    allow_tf32: allow TensorFloat-32 on Ampere and later GPUs (faster; off by
      default, see `vggish.device`).
    name: the model's name (distinct per member of an ensemble).

  Returns:
    (model, backbone): the full model and its VGGish part, whose trainable
    variables get the backbone learning rate.
  """
  from vggish import model as vggish_model  # Slow import; only needed here.

  backbone = vggish_model.VGGish(
      weights=None if checkpoint is None else str(checkpoint), params=params,
      allow_tf32=allow_tf32)
  if checkpoint is None:
    logging.warning('fine-tuning from a randomly initialized VGGish')
  freeze_backbone(backbone, freeze)
  head_model = heads.build_head(num_classes, head,
                                embedding_size=params.embedding_size,
                                **(head_options or {}))
  augment = (heads.SpecAugment(seed=seed, name='spec_augment')
             if spec_augment else None)
  model = heads.build_finetune_model(backbone, head_model, augment, name=name)
  return model, backbone
