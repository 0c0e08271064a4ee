"""The meta-architecture registry: what ``--meta_architecture`` can name.

A meta-architecture is a family of models with its own options class: the
semantic DeepLab models (v1 LargeFOV / MSc, v2 ASPP, v3 / v3+; one
``ModelOptions``, the head picked by ``ModelOptions.meta_architecture``) and
the DeeperLab parser (``DeeperLabOptions``). Each family's module registers
itself here with ``register``; everything that has to tell families apart (the
model flags, the options JSON beside a checkpoint, the training tasks, the
scripts) asks this registry instead of naming a family. A new family is a new
module that calls ``register`` and one import in ``models/__init__.py``.
"""
import dataclasses
from typing import Any, Callable, Dict, List, Mapping, Optional, Sequence, Tuple

from deeplab_tf.models.options import OptionsError


@dataclasses.dataclass(frozen=True)
class MetaArchitecture:
  """One family of models.

  Attributes:
    family: short name ('deeplab', 'deeperlab'), used in messages and by the
      training-task registry.
    names: the ``--meta_architecture`` values (and ``model_options.json``
      ``meta_architecture`` entries) that select this family.
    options_class: its options dataclass; has ``to_dict`` / ``from_dict``.
    build_model: ``(options, fine_tune_batch_norm=, sync_batch_norm=) ->
      keras.Model`` of the training forward pass.
    last_layer_scopes: ``(last_layers_contain_logits_only) -> [scope]``, the
      original ``get_extra_layer_scopes`` of the family.
    options_from_values: ``(flag values: {name: value}, crop_size,
      num_classes) -> options``; the model flags of the scripts are read
      by name from a plain dict, so this stays free of absl.
    flag_names: the model flags the family reads (others set on the command
      line are refused for it by the training script).
    description: one line for ``--help``.
  """
  family: str
  names: Tuple[str, ...]
  options_class: type
  build_model: Callable[..., Any]
  last_layer_scopes: Callable[[bool], List[str]]
  options_from_values: Callable[..., Any]
  flag_names: Tuple[str, ...] = ()
  description: str = ''


_REGISTRY: List[MetaArchitecture] = []


def register(entry: MetaArchitecture) -> MetaArchitecture:
  """Adds a family; its names must be new (registering twice is refused)."""
  taken = {name for e in _REGISTRY for name in e.names}
  clash = sorted(set(entry.names) & taken)
  if clash or any(e.family == entry.family for e in _REGISTRY):
    raise ValueError('meta-architecture %r (names %s) is already registered'
                     % (entry.family, clash or list(entry.names)))
  _REGISTRY.append(entry)
  return entry


def entries() -> Tuple[MetaArchitecture, ...]:
  return tuple(_REGISTRY)


def names() -> List[str]:
  """Every ``--meta_architecture`` value, in registration order."""
  return [name for e in _REGISTRY for name in e.names]


def for_name(name: str) -> MetaArchitecture:
  for entry in _REGISTRY:
    if name in entry.names:
      return entry
  raise OptionsError('Unknown meta_architecture %r; expected one of %s.'
                     % (name, names()))


def for_family(family: str) -> MetaArchitecture:
  for entry in _REGISTRY:
    if entry.family == family:
      return entry
  raise OptionsError('Unknown model family %r; registered: %s.'
                     % (family, [e.family for e in _REGISTRY]))


def for_options(options) -> MetaArchitecture:
  """The family whose options class ``options`` is an instance of."""
  for entry in _REGISTRY:
    if isinstance(options, entry.options_class):
      return entry
  raise OptionsError('%s is not the options of a registered meta-architecture '
                     '(%s).' % (type(options).__name__, ', '.join(
                         e.options_class.__name__ for e in _REGISTRY)))


def for_dict(values: Mapping[str, Any]) -> MetaArchitecture:
  """The family of a ``to_dict()`` dict (``model_options.json``).

  The dict's ``meta_architecture`` picks it; a dict without one is the
  semantic DeepLab's (``ModelOptions`` dicts written before DeeperLab
  existed, and the conformance cases).
  """
  return for_name(values.get('meta_architecture') or _REGISTRY[0].names[0])


def options_from_dict(values: Mapping[str, Any]):
  """Options from a ``to_dict()`` dict, of the family ``for_dict`` names."""
  return for_dict(values).options_class.from_dict(values)


def options_from_flag_values(values: Mapping[str, Any], crop_size=None,
                             num_classes: Optional[int] = None,
                             allowed: Optional[Sequence[str]] = None):
  """Options of the family ``values['meta_architecture']`` names.

  Args:
    values: model flag values by name (``{'model_variant': ..., ...}``).
    crop_size: the script's crop (None: any size).
    num_classes: the dataset's class count (None: ``values['num_classes']``).
    allowed: families this caller can use (None: any); another family is
      refused with a line naming the script that takes it.
  """
  entry = for_name(values['meta_architecture'])
  if allowed is not None and entry.family not in allowed:
    raise OptionsError(
        '--meta_architecture=%s selects the %s family (%s), which this '
        'script does not build; it builds %s (--meta_architecture one of %s).'
        % (values['meta_architecture'], entry.family,
           entry.options_class.__name__, ' and '.join(allowed),
           [n for f in allowed for n in for_family(f).names]))
  return entry.options_from_values(values, crop_size=crop_size,
                                   num_classes=num_classes)


def describe() -> Dict[str, str]:
  """name -> description, for flag help."""
  return {name: e.description for e in _REGISTRY for name in e.names}
