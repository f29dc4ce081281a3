"""Batch jobs over logs of any size: adapt every user or task of a log and store them in a state bank."""
