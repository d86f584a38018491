"""``unidit fit|sample|eval tts``."""
