"""The paper's experiments: Table 1's rows and formatting (``table1``), its ablations under one budget
(``ablate``, scored on ``heldout``), notebook 06's decisive experiment inside and outside the drop
mask (``decide``), the figures (``results`` computes once, ``attention`` scores Fig. 3,
``figures`` draws), and the cost report of ``agan bench`` (``bench``: inference; ``bench_train``: the
trainer's own step and the synthesiser)."""
