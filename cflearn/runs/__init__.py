"""Stage 7, runs: ``cflearn fit``'s whole job (:mod:`._fitrun`: read, settle, train, evaluate, write) into
run folders that are all or nothing (:mod:`._runs`)."""
