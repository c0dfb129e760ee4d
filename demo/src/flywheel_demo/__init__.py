"""``make demo``: Flywheel's learning loop shown end to end on the local stack."""
