"""Stage 1, data: reading ratings tables (:mod:`._read`), finding their columns, encoding IDs both ways
(:mod:`._vocab`), splits, side features and the loaders training reads (:mod:`._loaders`); the public
door is :func:`cflearn.from_df` (:mod:`._data`)."""
