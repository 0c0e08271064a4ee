"""deeplab_tf: DeepLab v1/v2/v3/v3+/DeeperLab on TensorFlow 2 / Keras 3."""
import importlib.metadata

from setuptools import find_packages, setup

# Any TensorFlow distribution satisfies us: keep the one already installed
# (tensorflow-cpu on CPU machines, tensorflow[and-cuda] on GPU machines, ...)
# instead of pulling the full 'tensorflow' wheel next to it.
_TF_DISTRIBUTIONS = ('tensorflow', 'tensorflow-cpu', 'tensorflow-gpu',
                     'tensorflow-intel', 'tensorflow-macos', 'tf-nightly',
                     'tf-nightly-cpu')


def _tensorflow_requirement():
  for dist in _TF_DISTRIBUTIONS:
    try:
      importlib.metadata.version(dist)
    except importlib.metadata.PackageNotFoundError:
      continue
    return dist + '>=2.16'
  return 'tensorflow>=2.16'


setup(
    name='deeplab_tf',
    version='0.1.0',
    description='Faithful TensorFlow 2 / Keras reproduction of Google DeepLab',
    packages=find_packages(include=['deeplab_tf', 'deeplab_tf.*']),
    # The Dense Prediction Cell JSON files (--dense_prediction_cell_json).
    package_data={'deeplab_tf.models.heads': ['*.json']},
    python_requires='>=3.9',
    install_requires=[
        _tensorflow_requirement(),
        'tensorflow-datasets',
        # tf.summary needs it; TensorFlow 2.21 no longer installs it.
        'tensorboard',
        'numpy',
        'absl-py',
        'opencv-python-headless',
    ],
    extras_require={
        'test': ['pytest'],
        # Only datasets/build_voc2012_data.py --sbd_dir (SBD train_aug) reads
        # MATLAB .mat files; nothing else needs scipy.
        'sbd': ['scipy'],
        # Only the CRF comparison tests and benchmarks/crf_speed.py use it as
        # a reference; deeplab_tf.crf itself is TensorFlow only.
        'crf_reference': ['pydensecrf2'],
    },
    entry_points={
        'console_scripts': [
            'deeplab-conformance=deeplab_tf.conformance.__main__:run',
            'deeplab-convert-checkpoint=deeplab_tf.convert_checkpoint:run',
            'deeplab-model-stats=deeplab_tf.model_stats:run',
            'deeplab-train=deeplab_tf.train:run',
            'deeplab-recipe=deeplab_tf.recipe:run',
            'deeplab-eval=deeplab_tf.eval:run',
            'deeplab-vis=deeplab_tf.vis:run',
            'deeplab-export=deeplab_tf.export_model:run',
            'deeplab-demo=deeplab_tf.demo:run',
            'deeplab-eval-deeperlab=deeplab_tf.eval_deeperlab:run',
        ],
    },
)
