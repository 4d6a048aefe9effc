"""The ground floor: errors, the host machine and its devices."""
