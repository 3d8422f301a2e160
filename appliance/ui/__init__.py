"""The touchscreen kiosk (PySide6). The only package that imports Qt.

It renders ApplianceStatus snapshots and calls the controller's few verbs; everything it
decides is in `presentation` (pure), the widgets only paint.
"""
