"""The text-to-audio app: ``unidit fit|sample|eval t2a``."""
