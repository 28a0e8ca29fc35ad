"""Flag definitions (fit_flags.py) and flagfiles (*.flags) of the trainers."""
