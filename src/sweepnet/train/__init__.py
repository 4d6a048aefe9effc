"""One network's training step and its separation certificate."""
