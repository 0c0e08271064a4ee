"""The task registry: which training task trains each model family.

A task class owns what differs between model families (see the package
docstring); its module registers a ``TaskEntry`` for the family name of
``models.meta_architectures``. The trainer, the training script and the
evaluation of options JSONs look tasks up here, so a new family adds its task
module and one import in ``tasks/__init__.py``, and no shared file names it.
"""
import dataclasses
from typing import Any, List, Optional, Tuple

from deeplab_tf.models import meta_architectures


@dataclasses.dataclass(frozen=True)
class TaskFlag:
  """A training flag a task adds to train.py (defined there; absl-free here).

  ``kind`` is the absl definer: 'float', 'integer', 'list', 'string' or
  'boolean'; ``lower_bound`` applies to numbers.
  """
  name: str
  kind: str
  default: Any
  help: str
  lower_bound: Optional[float] = None


@dataclasses.dataclass(frozen=True)
class TaskEntry:
  """One family's training task.

  Attributes:
    family: the ``meta_architectures`` family it trains.
    task_class: has ``create(options, loss, task_settings, ignore_label)``,
      ``settings_from_flag_values(values, descriptor)`` and
      ``make_dataset_fn(descriptor, split, dataset_dir, inputs,
      global_batch_size, task_settings)`` besides the per-step methods.
    flags: the flags the task adds to train.py.
    own_flags: names of flags (its own and shared ones) that only this
      family reads: train.py refuses them for another family instead of
      ignoring them silently.
    description: the family, in words, for messages.
  """
  family: str
  task_class: type
  flags: Tuple[TaskFlag, ...] = ()
  own_flags: Tuple[str, ...] = ()
  description: str = ''

  def all_own_flags(self) -> Tuple[str, ...]:
    return tuple(dict.fromkeys(
        tuple(f.name for f in self.flags) + self.own_flags))


_TASKS: List[TaskEntry] = []


def register(entry: TaskEntry) -> TaskEntry:
  meta_architectures.for_family(entry.family)   # the family must exist
  if any(e.family == entry.family for e in _TASKS):
    raise ValueError('a task for family %r is already registered'
                     % entry.family)
  _TASKS.append(entry)
  return entry


def entries() -> Tuple[TaskEntry, ...]:
  return tuple(_TASKS)


def for_family(family: str) -> TaskEntry:
  for entry in _TASKS:
    if entry.family == family:
      return entry
  raise ValueError('No training task for model family %r; registered: %s.'
                   % (family, [e.family for e in _TASKS]))


def for_options(options) -> TaskEntry:
  return for_family(meta_architectures.for_options(options).family)


def task_for(options, loss=None, task_settings=None,
             ignore_label: Optional[int] = None):
  """The task object that trains ``options``' model.

  Args:
    options: the model's options (any registered family).
    loss: the original train.py loss settings (``LossSettings``; None: its
      defaults), read by the semantic task.
    task_settings: the family's own settings (e.g. DeeperLab's); None: its
      defaults.
    ignore_label: the dataset's ignore label (overrides the settings').
  """
  try:
    entry = for_options(options)
  except ValueError:
    raise TypeError('Trainer options must be the options of a registered '
                    'model family (%s); got %s.' % (', '.join(
                        e.options_class.__name__
                        for e in meta_architectures.entries()),
                                                    type(options).__name__)
                    ) from None
  if loss is None:
    from deeplab_tf.training.losses import LossSettings  # pylint: disable=g-import-not-at-top
    loss = LossSettings()
  return entry.task_class.create(options, loss, task_settings, ignore_label)
