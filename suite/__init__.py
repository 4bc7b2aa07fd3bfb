"""What a user runs: ``python -m suite.run``, ``python -m suite.check``; results helpers."""
