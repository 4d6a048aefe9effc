"""The ground floor: errors, the host machine and its devices, the statistics of a share."""
