"""The results folder: every path inside it, its writer and its readers."""
