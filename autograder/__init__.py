"""Grading tools for the course, built on nbgrader (configuration: nbgrader_config.py)."""
