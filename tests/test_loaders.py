"""trainer.loaders: the sampler's batch-norm statistics. (Falling back past a damaged
checkpoint is tested with the folder's other failures, in test_reliability.)"""

import numpy as np

from trainer import latent, loaders


def test_the_sampler_normalizes_with_statistics_of_its_own_weights(tiny_trained):
    generator, config = loaders.load_sampler(tiny_trained.checkpoint_dir)
    z = latent.standing_batch(config.latent_dim, config.latent_distribution)
    # Measured on the standing batch: inference there matches the batch's own statistics.
    np.testing.assert_allclose(generator(z, training=False), generator(z, training=True), atol=1e-5)
