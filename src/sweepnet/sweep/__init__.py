"""What a sweep is: the spec, the datasets, the models and the optimizers."""
