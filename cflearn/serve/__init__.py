"""Stage 4, answers from a trained model: the model with its vocabularies (:mod:`._collab`), scoring
(:mod:`._scoring`), ``predict``, ``recommend``, fold-in and cold start, and the model file
(:mod:`._export`: ``save`` / ``load``). Nothing here imports the trainer."""
