"""Models: encoders, agents, students, ONNX export and the runtime.

The worker needs only the torch-free modules: ``models.runtime`` (the scorer),
``models.video_runtime`` (the Video Agent on onnxruntime), and what they import
(``manifest``, ``encoders``, ``decode``, ``video_core``, ``video_vocab``).
Training and export (``scorer``, ``students``, ``train_scorer``, ``export``,
``encoder_export``, ``video_agent``, ``agents_pipeline``, ``default_model``)
import torch and live in the ``train`` extra. See docs/agents.md.
"""
