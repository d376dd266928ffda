"""The application layer: what a command does, as functions a notebook can call.

Each command of the CLI parses and validates its options, then calls one
function here with a settings dict (``qselect.app.select.run``,
``qselect.app.compare.run``, ...). The steps the commands share (data, parent
training, calibration batch, selection by any method, evaluation) live in
``qselect.app.pipeline``.
"""
