"""Distillation: the explanation student and (``enf distill``) teacher soft labels."""
