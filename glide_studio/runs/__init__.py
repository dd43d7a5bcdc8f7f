"""A run as the app and the command line both see it: its one record, its models, its drain.

Sits above the pipelines and the checkpoints (which know nothing of each other) and below the app and the
CLI, so both load, run and record a request the same way.
"""
