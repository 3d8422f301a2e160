"""The controller's parts, one concern each (docs/controller.md has the module map).

appliance/controller.py keeps only the event loop and the public verbs; everything it decides
with lives here, and each module is testable without starting a thread.
"""
