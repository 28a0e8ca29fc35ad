"""esci-tf: multilingual cross-encoder rankers for the Amazon ESCI product search task."""

__version__ = "0.1.0"
