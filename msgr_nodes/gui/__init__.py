"""The visual editor. ``state`` holds what is edited (no GUI import, unit-tested); ``app`` lays out
the window and wires the rooms ``canvas``, ``inspector``, ``preview``, ``dialogs`` and ``runner``.
Every dearpygui call happens on the GUI thread; only the run controller has a thread of its own."""
