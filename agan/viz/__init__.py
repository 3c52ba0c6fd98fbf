"""Plots, image grids, Table 1's formatting (``plots``) and notebook 08's interactive explorer (``explorer``)."""
