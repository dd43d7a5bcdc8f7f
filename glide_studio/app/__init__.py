"""The app layer: Qt without widgets (document, history, jobs on a worker thread, files, settings)."""

from glide_studio.app.qt_compat import make_none_immortal

make_none_immortal()
