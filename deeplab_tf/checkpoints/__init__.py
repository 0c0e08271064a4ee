"""Checkpoints: original TF1 (model-zoo) checkpoints loaded and written by
variable name (``tf1``), and the one checkpoint-folder protocol every script
follows (``folders``: finding a checkpoint, the options written beside it,
``training_done.json``)."""
from deeplab_tf.checkpoints.folders import CHECKPOINT_PREFIX
from deeplab_tf.checkpoints.folders import checkpoint_step
from deeplab_tf.checkpoints.folders import find_checkpoint
from deeplab_tf.checkpoints.folders import latest_checkpoint
from deeplab_tf.checkpoints.folders import NoCheckpointError
from deeplab_tf.checkpoints.folders import OPTIONS_FILE
from deeplab_tf.checkpoints.folders import options_file
from deeplab_tf.checkpoints.folders import read_options_dict
from deeplab_tf.checkpoints.folders import TRAINING_DONE_FILE
from deeplab_tf.checkpoints.tf1 import CheckpointMismatchError
from deeplab_tf.checkpoints.tf1 import is_tf1_checkpoint
from deeplab_tf.checkpoints.tf1 import load_tf1_checkpoint
from deeplab_tf.checkpoints.tf1 import LoadReport
from deeplab_tf.checkpoints.tf1 import model_variables
from deeplab_tf.checkpoints.tf1 import NamedVariables
from deeplab_tf.checkpoints.tf1 import original_name
from deeplab_tf.checkpoints.tf1 import restore_model
from deeplab_tf.checkpoints.tf1 import save_tf1_checkpoint
