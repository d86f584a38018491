"""The text-to-video app: ``unidit fit|sample|eval t2v``."""
