"""Installs the trainer package and its `dcgan-mnist` command."""

import os

from setuptools import find_packages, setup

HERE = os.path.dirname(os.path.abspath(__file__))
with open(os.path.join(HERE, "requirements.txt"), encoding="utf-8") as f:
    REQUIREMENTS = [line.strip() for line in f if line.strip() and not line.startswith("#")]

setup(
    name="dcgan-mnist-trainer",
    version="0.1.0",
    description="Train, resume, monitor and sample a DCGAN on MNIST from the command line.",
    packages=find_packages(include=["trainer", "trainer.*"]),
    package_data={"trainer.evaluation": ["*.weights.h5"]},  # the shipped classifiers
    python_requires=">=3.9",
    install_requires=REQUIREMENTS,
    extras_require={"test": ["pytest>=7", "pytest-xdist>=3", "hypothesis>=6", "ruff==0.17.6"]},
    entry_points={"console_scripts": ["dcgan-mnist=trainer.task:main"]},
)
