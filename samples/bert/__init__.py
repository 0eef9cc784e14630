"""BERT question answering for Triton: I/O contract, model repository writer, upload."""
