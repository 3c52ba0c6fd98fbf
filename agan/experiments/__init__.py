"""The paper's experiments: Table 1's ablations (``ablate``), its figures (``figures``) and the cost report of
``agan bench`` (``bench``)."""
