"""Stage 6, what a run shows: loss plots (:mod:`._plots`) and the HTML report (:mod:`._report`)."""
