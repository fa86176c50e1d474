"""The whole study in one command: study file, pipeline, model bundle, prediction."""
