"""Stage 5, evaluation: ``evaluate`` (:mod:`._evaluate`) beside the baselines (:mod:`._baselines`); the
metrics registry is the public :mod:`cflearn.metrics`."""
