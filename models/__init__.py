"""Models: encoders, students, S-GRPO, distillation, ONNX export and the runtime.

Only ``models.runtime`` (onnxruntime + numpy) is needed by the worker; the rest
imports torch and lives in the ``train`` extra.
"""
