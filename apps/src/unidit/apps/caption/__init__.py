"""The image captioning app: ``unidit fit|sample|eval caption``."""
