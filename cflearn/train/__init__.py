"""Stage 3, training: the learner factory (:mod:`._learner`: data + preset -> a fastai ``Learner``),
``cflearn.fit`` (:mod:`._fit`), the feature check (:mod:`._select`, :mod:`._feature_trust`) and
data-parallel training (:mod:`._distributed`, :mod:`._launch`)."""
