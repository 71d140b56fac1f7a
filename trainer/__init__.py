"""DCGAN trainer for MNIST: train, resume, monitor and sample from the command line."""
