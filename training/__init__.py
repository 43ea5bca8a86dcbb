"""`flow.py train`: tune retrieval on captioned videos (CLIP4Clip's loss; query adapter, AIM adapters,
VoP prompts). The trained parts and the tuned file's format are in executors/models/tuned_model.py, below
this layer, because the encoders load tuned files like any model."""
