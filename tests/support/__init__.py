"""Test support shared by every test package: ``support.upstream`` is the scripted model provider."""
