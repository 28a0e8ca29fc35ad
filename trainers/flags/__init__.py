"""Flag definitions (fit_flags.py) and flagfiles (*.flags) of the trainers."""

import os

DIRECTORY = os.path.dirname(os.path.abspath(__file__))  # the shipped flagfiles: --flagfile=NAME finds them
