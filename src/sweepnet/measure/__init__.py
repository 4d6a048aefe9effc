"""The numbers of one trained network: forward passes, decision grids, topology."""
