"""Parameter-efficient adaptation: methods, data (with the encoder-output cache), the loop, adapters."""
