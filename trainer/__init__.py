"""A DCGAN trainer for MNIST: `python -m trainer.task --help`."""

import os

# Hide TensorFlow's C++ start-up chatter (CUDA probing, CPU feature notes) in every entry
# point, before any module imports TensorFlow; a value the user set wins.
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
