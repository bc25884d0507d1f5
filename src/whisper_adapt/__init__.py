"""whisper-adapt: teach Whisper an organization's vocabulary, then transcribe its meetings on premises."""

__version__ = "0.1.0"
