"""Where training runs: the original train.py deployment flags on tf.distribute.

The original deploys with slim's ``model_deploy``: ``--num_clones`` copies of
the model in one process (on GPUs, or all on the CPU with
``--clone_on_cpu``), each fed ``train_batch_size / num_clones`` images, their
gradients combined (``training/total_loss.py`` keeps its arithmetic); and
``--num_replicas`` worker processes with ``--num_ps_tasks`` parameter
servers, reached through ``--master`` and numbered by ``--task``.

Here clones are the replicas of a ``MirroredStrategy`` (``--clone_on_cpu``:
that many logical CPU devices, so the batch split, per-clone BatchNorm
statistics and the gradient sum are the original's on a machine without
GPUs). Worker replicas are synchronous ``MultiWorkerMirroredStrategy``
workers described by TF_CONFIG; the original's asynchronous parameter-server
training, and a TF1 session target, have no counterpart and are refused with
what to use instead. ``--strategy`` (ours) names a strategy directly.
"""
import dataclasses
import json
import os
from typing import List, Optional

from deeplab_tf.core.errors import DeeplabError

STRATEGIES = ('default', 'mirrored', 'multi_worker_mirrored', 'tpu')


class DeploymentError(DeeplabError, ValueError):
  """Deployment flags that cannot run here; the message says what to use."""


@dataclasses.dataclass
class DeploymentSettings:
  """The original train.py deployment flags (original defaults) and ours."""
  strategy: str = 'default'           # ours: the tf.distribute strategy
  tpu: Optional[str] = None           # ours: TPU name for strategy 'tpu'
  num_clones: int = 1
  clone_on_cpu: bool = False
  num_replicas: int = 1
  startup_delay_steps: int = 15
  num_ps_tasks: int = 0
  master: str = ''
  task: int = 0


def check(settings: DeploymentSettings, num_gpus: int,
          tf_config: Optional[dict] = None) -> None:
  """Raises DeploymentError for flags with no meaning here (pure: no TF).

  ``num_gpus``: GPUs this process sees; ``tf_config``: the parsed TF_CONFIG
  environment variable (None if unset).
  """
  s = settings
  if s.strategy not in STRATEGIES:
    raise DeploymentError('--strategy must be one of %s; got %r.'
                          % (', '.join(STRATEGIES), s.strategy))
  if s.num_clones < 1 or s.num_replicas < 1 or s.num_ps_tasks < 0 or s.task < 0:
    raise DeploymentError(
        '--num_clones and --num_replicas must be >= 1, --num_ps_tasks and '
        '--task >= 0; got %d, %d, %d, %d.'
        % (s.num_clones, s.num_replicas, s.num_ps_tasks, s.task))
  if s.master:
    raise DeploymentError(
        '--master=%s: there is no TF1 session target here. For a TPU use '
        '--strategy=tpu --tpu=ADDRESS; for several machines, one process '
        'per worker with --strategy=multi_worker_mirrored and TF_CONFIG.'
        % s.master)
  if s.num_ps_tasks:
    raise DeploymentError(
        '--num_ps_tasks=%d: asynchronous parameter-server training (the '
        'original\'s between-graph replicas) is not built; run synchronous '
        'workers with --strategy=multi_worker_mirrored and TF_CONFIG, '
        'without parameter servers.' % s.num_ps_tasks)
  if s.num_clones > 1 or s.clone_on_cpu:
    if s.strategy != 'default':
      raise DeploymentError(
          '--num_clones / --clone_on_cpu choose the local devices themselves; '
          'drop --strategy=%s (or use --strategy alone).' % s.strategy)
    if not s.clone_on_cpu and num_gpus < s.num_clones:
      raise DeploymentError(
          '--num_clones=%d needs %d GPUs; this process sees %d. Add '
          '--clone_on_cpu to run the clones on the CPU (as the original).'
          % (s.num_clones, s.num_clones, num_gpus))
  if s.num_replicas > 1:
    if s.strategy != 'multi_worker_mirrored':
      raise DeploymentError(
          '--num_replicas=%d: worker replicas run here as synchronous '
          'tf.distribute workers: start one process per worker with '
          '--strategy=multi_worker_mirrored and a TF_CONFIG naming %d '
          'workers (its task index is the original --task).'
          % (s.num_replicas, s.num_replicas))
    workers = cluster_workers(tf_config)
    if workers != s.num_replicas:
      raise DeploymentError(
          '--num_replicas=%d but TF_CONFIG names %d workers.'
          % (s.num_replicas, workers))
    index = (tf_config or {}).get('task', {}).get('index', 0)
    if s.task and s.task != index:
      raise DeploymentError('--task=%d but TF_CONFIG says this is worker %d.'
                            % (s.task, index))
  elif s.task:
    raise DeploymentError(
        '--task=%d needs several worker replicas (--num_replicas > 1 with '
        '--strategy=multi_worker_mirrored and TF_CONFIG).' % s.task)


def cluster_workers(tf_config: Optional[dict]) -> int:
  """Number of workers (chief included) a TF_CONFIG dict names (0 if none)."""
  cluster = (tf_config or {}).get('cluster', {})
  return len(cluster.get('worker', [])) + len(cluster.get('chief', []))


def tf_config_from_env() -> Optional[dict]:
  text = os.environ.get('TF_CONFIG')
  if not text:
    return None
  try:
    return json.loads(text)
  except ValueError as e:
    raise DeploymentError('TF_CONFIG is not valid JSON: %s' % e) from None


def clone_devices(settings: DeploymentSettings) -> List[str]:
  """The devices of the clones (empty: let --strategy decide)."""
  if settings.clone_on_cpu:
    return ['/cpu:%d' % i for i in range(settings.num_clones)]
  if settings.num_clones > 1:
    return ['/gpu:%d' % i for i in range(settings.num_clones)]
  return []


def make_strategy(settings: DeploymentSettings):
  """The tf.distribute strategy of ``settings`` (checked first).

  ``--clone_on_cpu`` splits the CPU into ``num_clones`` logical devices; that
  must happen before TensorFlow starts its runtime, i.e. before any tensor
  op in the process.
  """
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  check(settings, len(tf.config.list_physical_devices('GPU')),
        tf_config_from_env())
  if settings.clone_on_cpu:
    cpu = tf.config.list_physical_devices('CPU')[0]
    configs = tf.config.get_logical_device_configuration(cpu)
    if not configs or len(configs) != settings.num_clones:
      try:
        tf.config.set_logical_device_configuration(
            cpu, [tf.config.LogicalDeviceConfiguration()] * settings.num_clones)
      except RuntimeError as e:
        raise DeploymentError(
            '--clone_on_cpu: the CPU cannot be split into %d devices once '
            'TensorFlow has started (%s).' % (settings.num_clones, e)) from None
    devices = clone_devices(settings)
    if settings.num_clones == 1:
      return tf.distribute.OneDeviceStrategy(devices[0])
    return tf.distribute.MirroredStrategy(devices=devices)
  if settings.num_clones > 1:
    return tf.distribute.MirroredStrategy(devices=clone_devices(settings))
  if settings.strategy == 'default':
    return tf.distribute.get_strategy()
  if settings.strategy == 'mirrored':
    return tf.distribute.MirroredStrategy()
  if settings.strategy == 'multi_worker_mirrored':
    return tf.distribute.MultiWorkerMirroredStrategy()
  resolver = tf.distribute.cluster_resolver.TPUClusterResolver(tpu=settings.tpu)
  tf.config.experimental_connect_to_cluster(resolver)
  tf.tpu.experimental.initialize_tpu_system(resolver)
  return tf.distribute.TPUStrategy(resolver)
