"""How good the digits are: the MNIST classifier that judges them, the metrics, the
`--evaluate` and `--probe` modes, and the per-epoch quality check training calls."""
