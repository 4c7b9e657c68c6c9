"""Scripted interactive programs standing in for coding agents in tests."""
