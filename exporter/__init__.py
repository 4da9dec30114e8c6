"""tgexport: Telegram archive dumps in, one validated, analysis-ready dataset out."""

__version__ = "0.1.0"
