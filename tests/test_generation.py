"""trainer.generation: batches from a loaded generator. (The digit labels a conditional
generator is asked for are tested with the conditional model, in test_conditional.)"""

import numpy as np

from trainer import generation, loaders


def test_generation_is_batched_with_bounded_memory(tiny_trained):
    generator, config = loaders.load_sampler(tiny_trained.checkpoint_dir)
    sizes = [len(b) for b in generation.generate(generator, 1234, config.latent_dim, seed=0)]
    assert sizes == [500, 500, 234]


def test_labels_in_shares_ask_for_each_class_as_often_as_the_data_holds_it():
    data_labels = np.array([0] * 60 + [1] * 30 + [2] * 10)
    labels = generation.labels_in_shares(10, data_labels, 3)
    assert labels.tolist() == [0] * 6 + [1] * 3 + [2]
    # Rounded by largest remainder: 7 of 60/30/10 is 4.2, 2.1, 0.7.
    assert np.bincount(generation.labels_in_shares(7, data_labels, 3)).tolist() == [4, 2, 1]
    # A class the data lacks is never asked for.
    assert np.bincount(generation.labels_in_shares(5, np.array([0, 2]), 3), minlength=3)[1] == 0
