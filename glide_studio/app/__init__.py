"""The app layer: Qt without widgets (document, history, jobs on a worker thread, files, settings)."""
