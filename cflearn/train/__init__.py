"""Stage 3, training: ``cflearn.collab_learner`` (:mod:`._learner`: settle the preset, choose its side
features when it asks (:mod:`._select`, :mod:`._feature_trust`), then assemble a fastai ``Learner``
(:mod:`._factory`)), ``cflearn.fit`` (:mod:`._fit`) and data-parallel training (:mod:`._distributed`,
:mod:`._launch`)."""
