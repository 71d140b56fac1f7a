"""Developers' measuring tools (`python -m trainer.tools.bench`, `layer_profile`,
`stop_latency`); nothing in the trainer imports them."""
