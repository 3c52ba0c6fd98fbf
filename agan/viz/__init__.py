"""Plots and image grids (``plots``), the repository's folders (``paths``) and notebook 08's interactive
explorer (``explorer``) with its own-photo part (``photos``: derain your photo, the upload
button). Table 1's formatting is ``agan.experiments.table1``."""
