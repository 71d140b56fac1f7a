"""trainer.generation: batches from a loaded generator. (The digit labels a conditional
generator is asked for are tested with the conditional model, in test_conditional.)"""

from trainer import generation, loaders


def test_generation_is_batched_with_bounded_memory(tiny_trained):
    generator, config = loaders.load_sampler(tiny_trained.checkpoint_dir)
    sizes = [len(b) for b in generation.generate(generator, 1234, config.latent_dim, seed=0)]
    assert sizes == [500, 500, 234]
